package sched

import (
	"fmt"
	"math"
	"slices"
)

// unipc is diffusers' UniPCMultistepScheduler (Zhao et al. 2023): a
// predictor (UniP) and, from the second step on, a corrector (UniC) that
// reuses the new model output.
type unipc struct {
	dpmSolver
	lowerOrderNums int
	thisOrder      int
	lastSample     Vec
}

func newUniPC(cfg Config) (Scheduler, error) {
	const class = "UniPCMultistepScheduler"
	if err := validateCommon(class, &cfg); err != nil {
		return nil, err
	}
	if err := validateSpacing(class, &cfg); err != nil {
		return nil, err
	}
	if err := validatePrediction(class, &cfg); err != nil {
		return nil, err
	}
	if err := validateSigmaKind(class, &cfg); err != nil {
		return nil, err
	}
	if err := validateNoFlow(class, &cfg); err != nil {
		return nil, err
	}
	if err := validateThreshold(class, &cfg); err != nil {
		return nil, err
	}
	if cfg.SolverOrder < 1 {
		return nil, fmt.Errorf("sched: %s: solver_order is %d; expected at least 1", class, cfg.SolverOrder)
	}
	switch cfg.SolverType {
	case "midpoint", "heun", "logrho":
		cfg.SolverType = "bh2"
	}
	if err := oneOf(class, "solver_type", cfg.SolverType, "bh1", "bh2"); err != nil {
		return nil, err
	}
	if err := oneOf(class, "final_sigmas_type", cfg.FinalSigmasType, "zero", "sigma_min"); err != nil {
		return nil, err
	}
	if !cfg.PredictX0 && cfg.FinalSigmasType == "zero" {
		// diffusers accepts this and ends the run in 0*inf = NaN.
		return nil, fmt.Errorf("sched: %s: predict_x0 false with final_sigmas_type zero ends in NaN; use final_sigmas_type sigma_min", class)
	}
	if len(cfg.SolverP) > 0 && string(cfg.SolverP) != "null" {
		return nil, fmt.Errorf("sched: %s: solver_p (a second scheduler as predictor) is not supported", class)
	}
	s := &unipc{dpmSolver: dpmSolver{base: newBase(class, cfg)}}
	s.bind(s)
	s.train = newTrainSchedule(&cfg, cfg.RescaleBetasZeroSNR, true)
	return s, nil
}

func (s *unipc) SetTimesteps(steps int) error {
	if err := s.checkSteps(steps); err != nil {
		return err
	}
	c := &s.cfg
	n := c.NumTrainTimesteps
	ts, err := multistepTimesteps(c.TimestepSpacing, n, n, steps, c.StepsOffset)
	if err != nil {
		return err
	}
	final := func(conv []float64) float32 {
		switch {
		case c.FinalSigmasType == "zero":
			return 0
		case conv != nil: // the converted schedule's own last sigma
			return float32(conv[len(conv)-1])
		default:
			return s.sigmaMinFinal()
		}
	}
	sigmas, ts := s.multistepSchedule(ts, steps, multistepOptions{configBounds: true, roundKarras: true, finalSigma: final})
	s.sigmas, s.timesteps, s.ts32 = sigmas, ts, false
	s.numSteps = len(ts)
	s.freeState()
	s.freeHistory(c.SolverOrder)
	s.lowerOrderNums, s.thisOrder = 0, 0
	s.resetRun()
	return nil
}

func (s *unipc) freeState() {
	s.freeHistory(len(s.modelOutputs))
	s.free(s.lastSample)
	s.lastSample = nil
}

// convert is UniPC's convert_model_output: x0 with predict_x0, else epsilon,
// as a new Vec.
func (s *unipc) convert(out, sample Vec) (Vec, error) {
	c := &s.cfg
	sigma, err := s.sigmaAt(s.stepIndex)
	if err != nil {
		return nil, err
	}
	alpha, sig := alphaSigma(sigma)
	var res Expr
	if c.PredictX0 {
		switch c.PredictionType {
		case "epsilon":
			res = V(sample).Sub(C(sig).Mul(V(out))).Div(C(alpha))
		case "sample":
			res = V(out)
		case "v_prediction":
			res = C(alpha).Mul(V(sample)).Sub(C(sig).Mul(V(out)))
		}
		if c.Thresholding {
			return s.threshold(res)
		}
		return s.eval(res)
	}
	switch c.PredictionType {
	case "epsilon":
		res = V(out)
	case "sample":
		res = V(sample).Sub(C(alpha).Mul(V(out))).Div(C(sig))
	case "v_prediction":
		res = C(alpha).Mul(V(out)).Add(C(sig).Mul(V(sample)))
	}
	return s.eval(res)
}

func (s *unipc) StepVec(modelOutput Vec, t float64, sample Vec, noise Noise) (Vec, error) {
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := checkLen(s.class, sample, "model output", modelOutput); err != nil {
		return nil, err
	}
	if err := s.initStepIndex(t, true); err != nil {
		return nil, err
	}
	c := &s.cfg
	i := s.stepIndex
	if i >= len(s.timesteps) {
		return nil, fmt.Errorf("sched: %s: step %d is past the end of the schedule; call SetTimesteps for a new run", s.class, i)
	}
	useCorrector := i > 0 && !slices.Contains(c.DisableCorrector, i-1) && s.lastSample != nil
	m, err := s.convert(modelOutput, sample)
	if err != nil {
		return nil, err
	}
	// The sample the predictor starts from, which the next step's corrector
	// needs: the corrected sample, or a copy of the caller's.
	var start Vec
	if useCorrector {
		start, err = s.corrector(m, s.lastSample, sample, s.thisOrder)
	} else {
		start, err = s.copyVec(sample)
	}
	if err != nil {
		s.free(m)
		return nil, err
	}
	s.push(m)
	order := c.SolverOrder
	if c.LowerOrderFinal {
		order = min(order, len(s.timesteps)-i)
	}
	s.thisOrder = min(order, s.lowerOrderNums+1)
	s.free(s.lastSample)
	s.lastSample = start
	prev, err := s.predictor(start, s.thisOrder)
	if err != nil {
		return nil, err
	}
	if s.lowerOrderNums < c.SolverOrder {
		s.lowerOrderNums++
	}
	s.stepIndex++
	return prev, nil
}

// bh holds the quantities UniP and UniC share.
type bh struct {
	hh, hPhi1, bh float32
	r             [][]float32 // R[i][k] = rks[k]^i
	b             []float32
}

// bhCoefficients builds R and b of the UniPC B(h) update for the given rks
// (whose last element is 1) and h.
func (s *unipc) bhCoefficients(rks []float32, h float32, order int) bh {
	var out bh
	out.hh = h
	if s.cfg.PredictX0 {
		out.hh = -h
	}
	out.hPhi1 = expm132(out.hh)
	hPhiK := out.hPhi1/out.hh - 1
	factorial := 1
	if s.cfg.SolverType == "bh1" {
		out.bh = out.hh
	} else {
		out.bh = expm132(out.hh)
	}
	for i := 1; i <= order; i++ {
		row := make([]float32, len(rks))
		for k, r := range rks {
			row[k] = float32(math.Pow(float64(r), float64(i-1)))
		}
		out.r = append(out.r, row)
		out.b = append(out.b, hPhiK*float32(factorial)/out.bh)
		factorial *= i + 1
		hPhiK = hPhiK/out.hh - float32(1/float64(factorial))
	}
	return out
}

// solve solves the n×n system a·x = y (Gaussian elimination with partial
// pivoting in float64; torch.linalg.solve).
func solve(a [][]float32, y []float32, n int) ([]float32, error) {
	m := make([][]float64, n)
	for i := range m {
		m[i] = make([]float64, n+1)
		for j := 0; j < n; j++ {
			m[i][j] = float64(a[i][j])
		}
		m[i][n] = float64(y[i])
	}
	for col := 0; col < n; col++ {
		p := col
		for r := col + 1; r < n; r++ {
			if math.Abs(m[r][col]) > math.Abs(m[p][col]) {
				p = r
			}
		}
		if m[p][col] == 0 {
			return nil, fmt.Errorf("sched: UniPCMultistepScheduler: singular %dx%d system (repeated sigmas?)", n, n)
		}
		m[col], m[p] = m[p], m[col]
		for r := col + 1; r < n; r++ {
			f := m[r][col] / m[col][col]
			for k := col; k <= n; k++ {
				m[r][k] -= f * m[col][k]
			}
		}
	}
	x := make([]float64, n)
	for i := n - 1; i >= 0; i-- {
		v := m[i][n]
		for k := i + 1; k < n; k++ {
			v -= m[i][k] * x[k]
		}
		x[i] = v / m[i][i]
	}
	return toF32(x), nil
}

// predictor is multistep_uni_p_bh_update.
func (s *unipc) predictor(x Vec, order int) (Vec, error) {
	i := s.stepIndex
	a, sg, l, err := s.points(i+1, i)
	if err != nil {
		return nil, err
	}
	alphaT, alphaS0, sigT, sigS0 := a[0], a[1], sg[0], sg[1]
	h := l[0] - l[1]
	m0 := s.history(0)
	var rks []float32
	var d1s []Expr
	for k := 1; k < order; k++ {
		_, _, lk, err := s.points(i - k)
		if err != nil {
			return nil, err
		}
		rk := (lk[0] - l[1]) / h
		rks = append(rks, rk)
		d1s = append(d1s, V(s.history(k)).Sub(V(m0)).Div(C(rk)))
	}
	rks = append(rks, 1)
	co := s.bhCoefficients(rks, h, order)
	var rhos []float32
	if len(d1s) > 0 {
		if order == 2 {
			rhos = []float32{0.5}
		} else {
			sub := make([][]float32, order-1)
			for r := range sub {
				sub[r] = co.r[r][:order-1]
			}
			if rhos, err = solve(sub, co.b[:order-1], order-1); err != nil {
				return nil, err
			}
		}
	}
	var c0, c1 float32
	if s.cfg.PredictX0 {
		c0, c1 = sigT/sigS0, -(alphaT * co.hPhi1)
	} else {
		c0, c1 = alphaT/alphaS0, -(sigT * co.hPhi1)
	}
	xt := lincomb([]float32{c0, c1}, V(x), V(m0))
	if len(d1s) == 0 {
		return s.eval(xt)
	}
	res := einsum(rhos, d1s)
	scale := alphaT * co.bh
	if !s.cfg.PredictX0 {
		scale = sigT * co.bh
	}
	return s.eval(xt.Sub(C(scale).Mul(res)))
}

// corrector is multistep_uni_c_bh_update: it corrects thisSample, the
// predictor's result from lastSample, with the model output at it.
func (s *unipc) corrector(modelT, lastSample, thisSample Vec, order int) (Vec, error) {
	i := s.stepIndex
	a, sg, l, err := s.points(i, i-1)
	if err != nil {
		return nil, err
	}
	alphaT, alphaS0, sigT, sigS0 := a[0], a[1], sg[0], sg[1]
	h := l[0] - l[1]
	m0 := s.history(0)
	if m0 == nil {
		return nil, fmt.Errorf("sched: %s: corrector without a previous model output", s.class)
	}
	var rks []float32
	var d1s []Expr
	for k := 1; k < order; k++ {
		_, _, lk, err := s.points(i - (k + 1))
		if err != nil {
			return nil, err
		}
		rk := (lk[0] - l[1]) / h
		rks = append(rks, rk)
		d1s = append(d1s, V(s.history(k)).Sub(V(m0)).Div(C(rk)))
	}
	rks = append(rks, 1)
	co := s.bhCoefficients(rks, h, order)
	var rhos []float32
	if order == 1 {
		rhos = []float32{0.5}
	} else if rhos, err = solve(co.r, co.b, order); err != nil {
		return nil, err
	}
	var c0, c1, scale float32
	if s.cfg.PredictX0 {
		c0, c1, scale = sigT/sigS0, -(alphaT * co.hPhi1), alphaT*co.bh
	} else {
		c0, c1, scale = alphaT/alphaS0, -(sigT * co.hPhi1), sigT*co.bh
	}
	xt := lincomb([]float32{c0, c1}, V(lastSample), V(m0))
	last := rhos[len(rhos)-1]
	d := C(last).Mul(V(modelT).Sub(V(m0)))
	if len(d1s) > 0 {
		d = einsum(rhos[:len(rhos)-1], d1s).Add(d)
	}
	return s.eval(xt.Sub(C(scale).Mul(d)))
}

// einsum is torch.einsum("k,bkc...->bc...", rhos, D1s): sum_k rhos[k]*d[k].
func einsum(rhos []float32, d []Expr) Expr { return lincomb(rhos[:len(d)], d...) }

// deis is diffusers' DEISMultistepScheduler (Zhang & Chen 2022), log-rho
// variant.
type deis struct {
	dpmSolver
	lowerOrderNums int
}

func newDEIS(cfg Config) (Scheduler, error) {
	const class = "DEISMultistepScheduler"
	if err := validateCommon(class, &cfg); err != nil {
		return nil, err
	}
	if err := validateSpacing(class, &cfg); err != nil {
		return nil, err
	}
	if err := validatePrediction(class, &cfg); err != nil {
		return nil, err
	}
	if err := validateSigmaKind(class, &cfg); err != nil {
		return nil, err
	}
	if err := validateNoFlow(class, &cfg); err != nil {
		return nil, err
	}
	if err := validateThreshold(class, &cfg); err != nil {
		return nil, err
	}
	if cfg.SolverOrder < 1 || cfg.SolverOrder > 3 {
		return nil, fmt.Errorf("sched: %s: solver_order is %d; expected 1, 2 or 3", class, cfg.SolverOrder)
	}
	switch cfg.AlgorithmType {
	case "dpmsolver", "dpmsolver++":
		cfg.AlgorithmType = "deis"
	}
	if err := oneOf(class, "algorithm_type", cfg.AlgorithmType, "deis"); err != nil {
		return nil, err
	}
	switch cfg.SolverType {
	case "midpoint", "heun", "bh1", "bh2":
		cfg.SolverType = "logrho"
	}
	if err := oneOf(class, "solver_type", cfg.SolverType, "logrho"); err != nil {
		return nil, err
	}
	s := &deis{dpmSolver: dpmSolver{base: newBase(class, cfg)}}
	s.bind(s)
	s.train = newTrainSchedule(&cfg, false, false)
	return s, nil
}

func (s *deis) SetTimesteps(steps int) error {
	if err := s.checkSteps(steps); err != nil {
		return err
	}
	c := &s.cfg
	n := c.NumTrainTimesteps
	ts, err := multistepTimesteps(c.TimestepSpacing, n, n, steps, c.StepsOffset)
	if err != nil {
		return err
	}
	final := func(conv []float64) float32 {
		if conv != nil {
			return float32(conv[len(conv)-1])
		}
		return s.sigmaMinFinal()
	}
	sigmas, ts := s.multistepSchedule(ts, steps, multistepOptions{roundKarras: true, finalSigma: final})
	s.sigmas, s.timesteps, s.ts32 = sigmas, ts, false
	s.numSteps = len(ts)
	s.freeHistory(c.SolverOrder)
	s.lowerOrderNums = 0
	s.resetRun()
	return nil
}

func (s *deis) freeState() { s.freeHistory(len(s.modelOutputs)) }

// convert is DEIS's convert_model_output: the noise implied by the x0
// prediction, as a new Vec.
func (s *deis) convert(out, sample Vec) (Vec, error) {
	c := &s.cfg
	sigma, err := s.sigmaAt(s.stepIndex)
	if err != nil {
		return nil, err
	}
	alpha, sig := alphaSigma(sigma)
	var x0 Expr
	switch c.PredictionType {
	case "epsilon":
		x0 = V(sample).Sub(C(sig).Mul(V(out))).Div(C(alpha))
	case "sample":
		x0 = V(out)
	case "v_prediction":
		x0 = C(alpha).Mul(V(sample)).Sub(C(sig).Mul(V(out)))
	}
	if c.Thresholding {
		v, err := s.threshold(x0)
		if err != nil {
			return nil, err
		}
		defer s.free(v)
		x0 = V(v)
	}
	return s.eval(V(sample).Sub(C(alpha).Mul(x0)).Div(C(sig)))
}

func (s *deis) StepVec(modelOutput Vec, t float64, sample Vec, noise Noise) (Vec, error) {
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := checkLen(s.class, sample, "model output", modelOutput); err != nil {
		return nil, err
	}
	if err := s.initStepIndex(t, true); err != nil {
		return nil, err
	}
	c := &s.cfg
	i := s.stepIndex
	n := len(s.timesteps)
	lowerFinal := i == n-1 && c.LowerOrderFinal && n < 15
	lowerSecond := i == n-2 && c.LowerOrderFinal && n < 15
	m, err := s.convert(modelOutput, sample)
	if err != nil {
		return nil, err
	}
	s.push(m)
	var prev Vec
	switch {
	case c.SolverOrder == 1 || s.lowerOrderNums < 1 || lowerFinal:
		prev, err = s.firstOrder(m, sample, i)
	case c.SolverOrder == 2 || s.lowerOrderNums < 2 || lowerSecond:
		prev, err = s.secondOrder(sample)
	default:
		prev, err = s.thirdOrder(sample)
	}
	if err != nil {
		return nil, err
	}
	if s.lowerOrderNums < c.SolverOrder {
		s.lowerOrderNums++
	}
	s.stepIndex++
	return prev, nil
}

func (s *deis) firstOrder(m, sample Vec, i int) (Vec, error) {
	a, sg, l, err := s.points(i+1, i)
	if err != nil {
		return nil, err
	}
	h := l[0] - l[1]
	return s.eval(lincomb([]float32{a[0] / a[1], -(sg[0] * (exp32(h) - 1))}, V(sample), V(m)))
}

// rhos returns sigma_t/alpha_t at the sigma indices.
func (s *deis) rhos(idx ...int) ([]float32, float32, float32, error) {
	a, sg, _, err := s.points(idx...)
	if err != nil {
		return nil, 0, 0, err
	}
	r := make([]float32, len(idx))
	for k := range r {
		r[k] = sg[k] / a[k]
	}
	return r, a[0], a[1], nil
}

func (s *deis) secondOrder(sample Vec) (Vec, error) {
	i := s.stepIndex
	r, alphaT, alphaS0, err := s.rhos(i+1, i, i-1)
	if err != nil {
		return nil, err
	}
	rt, r0, r1 := r[0], r[1], r[2]
	ind := func(t, b, c float32) float32 {
		return t * (-log32(c) + log32(t) - 1) / (log32(b) - log32(c))
	}
	coef1 := ind(rt, r0, r1) - ind(r0, r0, r1)
	coef2 := ind(rt, r1, r0) - ind(r0, r1, r0)
	m0, m1 := s.history(0), s.history(1)
	return s.eval(C(alphaT).Mul(V(sample).Div(C(alphaS0)).Add(C(coef1).Mul(V(m0))).Add(C(coef2).Mul(V(m1)))))
}

func (s *deis) thirdOrder(sample Vec) (Vec, error) {
	i := s.stepIndex
	r, alphaT, alphaS0, err := s.rhos(i+1, i, i-1, i-2)
	if err != nil {
		return nil, err
	}
	rt, r0, r1, r2 := r[0], r[1], r[2], r[3]
	ind := func(t, b, c, d float32) float32 {
		lt, lb, lc, ld := log32(t), log32(b), log32(c), log32(d)
		num := t * (lc*(ld-lt+1) - ld*lt + ld + lt*lt - 2*lt + 2)
		den := (lb - lc) * (lb - ld)
		return num / den
	}
	coef1 := ind(rt, r0, r1, r2) - ind(r0, r0, r1, r2)
	coef2 := ind(rt, r1, r2, r0) - ind(r0, r1, r2, r0)
	coef3 := ind(rt, r2, r0, r1) - ind(r0, r2, r0, r1)
	m0, m1, m2 := s.history(0), s.history(1), s.history(2)
	return s.eval(C(alphaT).Mul(V(sample).Div(C(alphaS0)).Add(C(coef1).Mul(V(m0))).Add(C(coef2).Mul(V(m1))).Add(C(coef3).Mul(V(m2)))))
}

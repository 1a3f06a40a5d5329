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
	lastSample     []float32
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
	s.modelOutputs = make([][]float32, c.SolverOrder)
	s.lowerOrderNums, s.thisOrder, s.lastSample = 0, 0, nil
	s.resetRun()
	return nil
}

// convert is UniPC's convert_model_output: x0 with predict_x0, else epsilon.
func (s *unipc) convert(out, sample []float32) ([]float32, error) {
	c := &s.cfg
	sigma, err := s.sigmaAt(s.stepIndex)
	if err != nil {
		return nil, err
	}
	alpha, sig := alphaSigma(sigma)
	n := len(sample)
	res := make([]float32, n)
	if c.PredictX0 {
		switch c.PredictionType {
		case "epsilon":
			for i := range res {
				res[i] = (sample[i] - sig*out[i]) / alpha
			}
		case "sample":
			copy(res, out)
		case "v_prediction":
			for i := range res {
				res[i] = alpha*sample[i] - sig*out[i]
			}
		}
		if c.Thresholding {
			return thresholdSample(s.class, res, s.batch, c.DynamicThresholdingRatio, c.SampleMaxValue)
		}
		return res, nil
	}
	switch c.PredictionType {
	case "epsilon":
		copy(res, out)
	case "sample":
		for i := range res {
			res[i] = (sample[i] - alpha*out[i]) / sig
		}
	case "v_prediction":
		for i := range res {
			res[i] = alpha*out[i] + sig*sample[i]
		}
	}
	return res, nil
}

func (s *unipc) Step(modelOutput []float32, t float64, sample []float32, noise Noise) ([]float32, error) {
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := checkLen(s.class, len(sample), "model output", modelOutput); err != nil {
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
	if useCorrector {
		if sample, err = s.corrector(m, s.lastSample, sample, s.thisOrder); err != nil {
			return nil, err
		}
	}
	s.push(m)
	order := c.SolverOrder
	if c.LowerOrderFinal {
		order = min(order, len(s.timesteps)-i)
	}
	s.thisOrder = min(order, s.lowerOrderNums+1)
	s.lastSample = sample
	prev, err := s.predictor(sample, s.thisOrder)
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
func (s *unipc) predictor(x []float32, order int) ([]float32, error) {
	i := s.stepIndex
	a, sg, l, err := s.points(i+1, i)
	if err != nil {
		return nil, err
	}
	alphaT, alphaS0, sigT, sigS0 := a[0], a[1], sg[0], sg[1]
	h := l[0] - l[1]
	m0 := s.history(0)
	var rks []float32
	var d1s [][]float32
	for k := 1; k < order; k++ {
		_, _, lk, err := s.points(i - k)
		if err != nil {
			return nil, err
		}
		rk := (lk[0] - l[1]) / h
		rks = append(rks, rk)
		mk := s.history(k)
		d := make([]float32, len(x))
		for j := range d {
			d[j] = (mk[j] - m0[j]) / rk
		}
		d1s = append(d1s, d)
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
	xt := lincomb([]float32{c0, c1}, x, m0)
	if len(d1s) == 0 {
		return xt, nil
	}
	res := einsum(rhos, d1s)
	scale := alphaT * co.bh
	if !s.cfg.PredictX0 {
		scale = sigT * co.bh
	}
	for j := range xt {
		xt[j] -= scale * res[j]
	}
	return xt, nil
}

// corrector is multistep_uni_c_bh_update: it corrects thisSample, the
// predictor's result from lastSample, with the model output at it.
func (s *unipc) corrector(modelT, lastSample, thisSample []float32, order int) ([]float32, error) {
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
	var d1s [][]float32
	for k := 1; k < order; k++ {
		_, _, lk, err := s.points(i - (k + 1))
		if err != nil {
			return nil, err
		}
		rk := (lk[0] - l[1]) / h
		rks = append(rks, rk)
		mk := s.history(k)
		d := make([]float32, len(thisSample))
		for j := range d {
			d[j] = (mk[j] - m0[j]) / rk
		}
		d1s = append(d1s, d)
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
	xt := lincomb([]float32{c0, c1}, lastSample, m0)
	var corr []float32
	if len(d1s) > 0 {
		corr = einsum(rhos[:len(rhos)-1], d1s)
	}
	last := rhos[len(rhos)-1]
	for j := range xt {
		d := last * (modelT[j] - m0[j])
		if corr != nil {
			d = corr[j] + d
		}
		xt[j] -= scale * d
	}
	return xt, nil
}

// einsum is torch.einsum("k,bkc...->bc...", rhos, D1s): sum_k rhos[k]*d[k].
func einsum(rhos []float32, d [][]float32) []float32 {
	out := make([]float32, len(d[0]))
	for j := range out {
		acc := rhos[0] * d[0][j]
		for k := 1; k < len(d); k++ {
			acc += rhos[k] * d[k][j]
		}
		out[j] = acc
	}
	return out
}

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
	s.modelOutputs = make([][]float32, c.SolverOrder)
	s.lowerOrderNums = 0
	s.resetRun()
	return nil
}

// convert is DEIS's convert_model_output: the noise implied by the x0 prediction.
func (s *deis) convert(out, sample []float32) ([]float32, error) {
	c := &s.cfg
	sigma, err := s.sigmaAt(s.stepIndex)
	if err != nil {
		return nil, err
	}
	alpha, sig := alphaSigma(sigma)
	x0 := make([]float32, len(sample))
	switch c.PredictionType {
	case "epsilon":
		for i := range x0 {
			x0[i] = (sample[i] - sig*out[i]) / alpha
		}
	case "sample":
		copy(x0, out)
	case "v_prediction":
		for i := range x0 {
			x0[i] = alpha*sample[i] - sig*out[i]
		}
	}
	if c.Thresholding {
		if x0, err = thresholdSample(s.class, x0, s.batch, c.DynamicThresholdingRatio, c.SampleMaxValue); err != nil {
			return nil, err
		}
	}
	eps := make([]float32, len(sample))
	for i := range eps {
		eps[i] = (sample[i] - alpha*x0[i]) / sig
	}
	return eps, nil
}

func (s *deis) Step(modelOutput []float32, t float64, sample []float32, noise Noise) ([]float32, error) {
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := checkLen(s.class, len(sample), "model output", modelOutput); err != nil {
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
	var prev []float32
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

func (s *deis) firstOrder(m, sample []float32, i int) ([]float32, error) {
	a, sg, l, err := s.points(i+1, i)
	if err != nil {
		return nil, err
	}
	h := l[0] - l[1]
	return lincomb([]float32{a[0] / a[1], -(sg[0] * (exp32(h) - 1))}, sample, m), nil
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

func (s *deis) secondOrder(sample []float32) ([]float32, error) {
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
	out := make([]float32, len(sample))
	for j := range out {
		out[j] = alphaT * (sample[j]/alphaS0 + coef1*m0[j] + coef2*m1[j])
	}
	return out, nil
}

func (s *deis) thirdOrder(sample []float32) ([]float32, error) {
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
	out := make([]float32, len(sample))
	for j := range out {
		out[j] = alphaT * (sample[j]/alphaS0 + coef1*m0[j] + coef2*m1[j] + coef3*m2[j])
	}
	return out, nil
}

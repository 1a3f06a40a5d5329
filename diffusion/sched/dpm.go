package sched

import (
	"fmt"
	"math"
)

// This file holds the exponential-integrator solvers that work in lambda =
// log(alpha/sigma): DPM-Solver(++) multistep and single-step. UniPC and DEIS,
// which share their schedule, are in unipc.go.

// alphaSigma converts a sigma of the variance-exploding parametrisation into
// alpha_t = 1/sqrt(sigma^2+1) and sigma_t = sigma*alpha_t (float32).
func alphaSigma(sigma float32) (alpha, sig float32) {
	alpha = 1 / sqrt32(sigma*sigma+1)
	return alpha, sigma * alpha
}

// lambdaOf is log(alpha_t) - log(sigma_t).
func lambdaOf(alpha, sigma float32) float32 { return log32(alpha) - log32(sigma) }

// lincomb is c[0]*v[0] + c[1]*v[1] + ..., added left to right in float32.
// Subtracting c*v is adding (-c)*v: negation is exact, so the result is the
// same as diffusers' expressions written with minus signs.
func lincomb(c []float32, v ...Expr) Expr {
	acc := C(c[0]).Mul(v[0])
	for k := 1; k < len(v); k++ {
		acc = acc.Add(C(c[k]).Mul(v[k]))
	}
	return acc
}

// scaledDiff is s * (a - b).
func scaledDiff(s float32, a, b Vec) Expr { return C(s).Mul(V(a).Sub(V(b))) }

// multistepOptions are the per-class differences of the multistep schedules.
type multistepOptions struct {
	configBounds bool // Karras bounds from sigma_min/sigma_max (UniPC)
	luLambdas    bool // use_lu_lambdas is available (DPM multistep)
	roundKarras  bool // Karras (and Lu) timesteps are rounded
	finalSigma   func(converted []float64) float32
}

// multistepSchedule converts integer timesteps (already spaced) into the
// sigmas and timesteps of the DPM-Solver, UniPC and DEIS classes. It returns the
// sigmas including the final one, and the timesteps as int64 values.
func (b *base) multistepSchedule(ts []float64, steps int, opt multistepOptions) ([]float32, []float64) {
	c := &b.cfg
	train := b.train.trainSigmas()
	logSigmas := logSigmas32(train)
	desc := reversed(toF64(train))
	mapBack := func(sig []float64, round bool) []float64 {
		out := make([]float64, len(sig))
		for i, s := range sig {
			out[i] = sigmaToT(s, logSigmas)
			if round {
				out[i] = math.RoundToEven(out[i])
			}
		}
		return out
	}
	var sig []float64
	converted := true
	switch {
	case c.UseKarrasSigmas:
		lo, hi := sigmaBounds(c, opt.configBounds, desc)
		sig = karrasSigmas(lo, hi, steps)
		ts = mapBack(sig, opt.roundKarras)
	case opt.luLambdas && c.UseLuLambdas:
		lambdas := reversed(logSigmas)
		lmin, lmax := float64(lambdas[len(lambdas)-1]), float64(lambdas[0])
		ramp := npLinspace(0, 1, steps)
		sig = make([]float64, steps)
		for i, r := range ramp {
			sig[i] = math.Exp(lmax + r*(lmin-lmax))
		}
		ts = mapBack(sig, opt.roundKarras)
	case c.UseExponentialSigmas:
		lo, hi := sigmaBounds(c, opt.configBounds, desc)
		sig = exponentialSigmas(lo, hi, steps)
		ts = mapBack(sig, false)
	case c.UseBetaSigmas:
		lo, hi := sigmaBounds(c, opt.configBounds, desc)
		sig = betaSigmas(lo, hi, steps)
		ts = mapBack(sig, false)
	default:
		sig = interpSigmas(ts, train)
		converted = false
	}
	var last float32
	if converted {
		last = opt.finalSigma(sig)
	} else {
		last = opt.finalSigma(nil)
	}
	out := append(toF32(sig), last)
	ints := make([]float64, len(ts))
	for i, t := range ts {
		ints[i] = math.Trunc(t) // torch .to(torch.int64)
	}
	return out, ints
}

// sigmaMinFinal is ((1 - alphas_cumprod[0]) / alphas_cumprod[0]) ** 0.5.
func (b *base) sigmaMinFinal() float32 {
	a := b.train.alphasCumprod[0]
	return sqrt32((1 - a) / a)
}

// lambdaClippedIndex is torch.searchsorted(torch.flip(lambda_t), lambda_min_clipped):
// how many training timesteps, from the noisiest, have lambda below the clip.
func (b *base) lambdaClippedIndex() int {
	clip := float32(b.cfg.LambdaMinClipped)
	ac := b.train.alphasCumprod
	n := 0
	for i := len(ac) - 1; i >= 0; i-- {
		l := lambdaOf(sqrt32(ac[i]), sqrt32(1-ac[i]))
		if !(l < clip) {
			break
		}
		n++
	}
	return n
}

// maybeV is V(v), or no expression for a nil v (the noise of a
// deterministic step, which its expressions do not use).
func maybeV(v Vec) Expr {
	if v == nil {
		return Expr{}
	}
	return V(v)
}

// dpmSolver holds what the DPM-Solver classes share.
type dpmSolver struct {
	base
	modelOutputs []Vec // the last solver_order converted outputs, oldest first
}

func validateDPM(class string, cfg *Config, algorithms ...string) error {
	if err := validateCommon(class, cfg); err != nil {
		return err
	}
	if err := validatePrediction(class, cfg); err != nil {
		return err
	}
	if err := validateSigmaKind(class, cfg); err != nil {
		return err
	}
	if err := validateNoFlow(class, cfg); err != nil {
		return err
	}
	if err := validateThreshold(class, cfg); err != nil {
		return err
	}
	if cfg.SolverOrder < 1 || cfg.SolverOrder > 3 {
		return fmt.Errorf("sched: %s: solver_order is %d; expected 1, 2 or 3", class, cfg.SolverOrder)
	}
	// Like diffusers, accept the algorithm and solver names of the sibling classes.
	if cfg.AlgorithmType == "deis" {
		cfg.AlgorithmType = "dpmsolver++"
	}
	if err := oneOf(class, "algorithm_type", cfg.AlgorithmType, algorithms...); err != nil {
		return err
	}
	switch cfg.SolverType {
	case "logrho", "bh1", "bh2":
		cfg.SolverType = "midpoint"
	}
	if err := oneOf(class, "solver_type", cfg.SolverType, "midpoint", "heun"); err != nil {
		return err
	}
	if err := oneOf(class, "final_sigmas_type", cfg.FinalSigmasType, "zero", "sigma_min"); err != nil {
		return err
	}
	if cfg.AlgorithmType != "dpmsolver++" && cfg.AlgorithmType != "sde-dpmsolver++" && cfg.FinalSigmasType == "zero" {
		return fmt.Errorf("sched: %s: final_sigmas_type zero is not supported with algorithm_type %s; use sigma_min", class, cfg.AlgorithmType)
	}
	if cfg.VarianceType == "learned" || cfg.VarianceType == "learned_range" {
		return fmt.Errorf("sched: %s: variance_type %s (models that predict their variance) is not supported", class, cfg.VarianceType)
	}
	return nil
}

func (s *dpmSolver) InitNoiseSigma() float64 { return 1 }

func (s *dpmSolver) ScaleModelInputVec(sample Vec, t float64) (Vec, error) {
	return s.identityInput(sample)
}

func (s *dpmSolver) AddNoiseVec(x0, noise Vec, t float64) (Vec, error) {
	return s.alphaSigmaAddNoise(x0, noise, t)
}

// freeHistory frees the model output history and makes a new one of n
// entries.
func (s *dpmSolver) freeHistory(n int) {
	s.free(s.modelOutputs...)
	s.modelOutputs = make([]Vec, n)
}

// alphaSigmaAddNoise is add_noise of the multistep solvers: alpha_t*x0 + sigma_t*noise.
func (b *base) alphaSigmaAddNoise(x0, noise Vec, t float64) (Vec, error) {
	if b.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := checkLen(b.class, x0, "noise", noise); err != nil {
		return nil, err
	}
	idx, err := b.addNoiseIndex(t, true)
	if err != nil {
		return nil, err
	}
	sigma, err := b.sigmaAt(idx)
	if err != nil {
		return nil, err
	}
	alpha, sig := alphaSigma(sigma)
	return b.eval(C(alpha).Mul(V(x0)).Add(C(sig).Mul(V(noise))))
}

// convert is convert_model_output: the data prediction x0 for the ++
// algorithms, the noise prediction for the others, as a new Vec.
func (s *dpmSolver) convert(out, sample Vec) (Vec, error) {
	c := &s.cfg
	sigma, err := s.sigmaAt(s.stepIndex)
	if err != nil {
		return nil, err
	}
	alpha, sig := alphaSigma(sigma)
	if c.AlgorithmType == "dpmsolver++" || c.AlgorithmType == "sde-dpmsolver++" {
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
			return s.threshold(x0)
		}
		return s.eval(x0)
	}
	var eps Expr
	switch c.PredictionType {
	case "epsilon":
		eps = V(out)
	case "sample":
		eps = V(sample).Sub(C(alpha).Mul(V(out))).Div(C(sig))
	case "v_prediction":
		eps = C(alpha).Mul(V(out)).Add(C(sig).Mul(V(sample)))
	}
	if c.Thresholding {
		x0, err := s.threshold(V(sample).Sub(C(sig).Mul(eps)).Div(C(alpha)))
		if err != nil {
			return nil, err
		}
		defer s.free(x0)
		eps = V(sample).Sub(C(alpha).Mul(V(x0))).Div(C(sig))
	}
	return s.eval(eps)
}

// push appends a converted output to the history, freeing the oldest.
func (s *dpmSolver) push(m Vec) {
	s.free(s.modelOutputs[0])
	copy(s.modelOutputs, s.modelOutputs[1:])
	s.modelOutputs[len(s.modelOutputs)-1] = m
}

// history returns the k-th most recent converted output (0 = newest).
func (s *dpmSolver) history(k int) Vec { return s.modelOutputs[len(s.modelOutputs)-1-k] }

// sigmasAt returns alpha, sigma and lambda at the sigma indices.
func (s *dpmSolver) points(idx ...int) (alpha, sig, lambda []float32, err error) {
	for _, i := range idx {
		v, err := s.sigmaAt(i)
		if err != nil {
			return nil, nil, nil, err
		}
		a, sg := alphaSigma(v)
		alpha, sig, lambda = append(alpha, a), append(sig, sg), append(lambda, lambdaOf(a, sg))
	}
	return alpha, sig, lambda, nil
}

// firstOrder is dpm_solver_first_order_update from sigma index s to t (= DDIM).
func (s *dpmSolver) firstOrder(mv, x, z Vec, ti, si int) (Vec, error) {
	m, sample, noise := V(mv), V(x), maybeV(z)
	a, sg, l, err := s.points(ti, si)
	if err != nil {
		return nil, err
	}
	alphaT, alphaS, sigT, sigS := a[0], a[1], sg[0], sg[1]
	h := l[0] - l[1]
	switch s.cfg.AlgorithmType {
	case "dpmsolver++":
		return s.eval(lincomb([]float32{sigT / sigS, -(alphaT * (exp32(-h) - 1))}, sample, m))
	case "dpmsolver":
		return s.eval(lincomb([]float32{alphaT / alphaS, -(sigT * (exp32(h) - 1))}, sample, m))
	case "sde-dpmsolver++":
		e := exp32(-2 * h)
		return s.eval(lincomb([]float32{sigT / sigS * exp32(-h), alphaT * (1 - e), sigT * sqrt32(1-e)}, sample, m, noise))
	default: // sde-dpmsolver
		return s.eval(lincomb([]float32{alphaT / alphaS, -(2 * (sigT * (exp32(h) - 1))), sigT * sqrt32(exp32(2*h)-1)}, sample, m, noise))
	}
}

// dpmMultistep is diffusers' DPMSolverMultistepScheduler (DPM-Solver++ 2M,
// 3M, their SDE variants, and the original DPM-Solver).
type dpmMultistep struct {
	dpmSolver
	lowerOrderNums int
}

func newDPMMultistep(cfg Config) (Scheduler, error) {
	const class = "DPMSolverMultistepScheduler"
	if err := validateDPM(class, &cfg, "dpmsolver", "dpmsolver++", "sde-dpmsolver", "sde-dpmsolver++"); err != nil {
		return nil, err
	}
	if err := validateSpacing(class, &cfg); err != nil {
		return nil, err
	}
	s := &dpmMultistep{dpmSolver: dpmSolver{base: newBase(class, cfg)}}
	s.bind(s)
	s.train = newTrainSchedule(&cfg, cfg.RescaleBetasZeroSNR, true)
	return s, nil
}

func (s *dpmMultistep) SetTimesteps(steps int) error {
	if err := s.checkSteps(steps); err != nil {
		return err
	}
	c := &s.cfg
	last := c.NumTrainTimesteps - s.lambdaClippedIndex()
	ts, err := multistepTimesteps(c.TimestepSpacing, c.NumTrainTimesteps, last, steps, c.StepsOffset)
	if err != nil {
		return err
	}
	if len(ts) == 0 {
		return fmt.Errorf("sched: %s: lambda_min_clipped %v leaves no timestep", s.class, float64(c.LambdaMinClipped))
	}
	sigmas, ts := s.multistepSchedule(ts, steps, multistepOptions{
		luLambdas:   true,
		roundKarras: c.BetaSchedule != "squaredcos_cap_v2",
		finalSigma:  s.finalSigmaType,
	})
	s.sigmas, s.timesteps, s.ts32 = sigmas, ts, false
	s.numSteps = len(ts)
	s.freeHistory(c.SolverOrder)
	s.lowerOrderNums = 0
	s.resetRun()
	return nil
}

func (s *dpmMultistep) freeState() { s.freeHistory(len(s.modelOutputs)) }

// finalSigmaType is the final sigma of final_sigmas_type.
func (s *dpmSolver) finalSigmaType([]float64) float32 {
	if s.cfg.FinalSigmasType == "sigma_min" {
		return s.sigmaMinFinal()
	}
	return 0
}

func (s *dpmMultistep) StepVec(modelOutput Vec, t float64, sample Vec, noise Noise) (Vec, error) {
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
	lowerFinal := i == n-1 && (c.EulerAtFinal || (c.LowerOrderFinal && n < 15) || c.FinalSigmasType == "zero")
	lowerSecond := i == n-2 && c.LowerOrderFinal && n < 15
	m, err := s.convert(modelOutput, sample)
	if err != nil {
		return nil, err
	}
	s.push(m)
	tmp := s.scratch()
	defer tmp.free()
	var z Vec
	if c.AlgorithmType == "sde-dpmsolver" || c.AlgorithmType == "sde-dpmsolver++" {
		if z, err = s.drawVec(noise, sample.Len(), tmp); err != nil {
			return nil, err
		}
	}
	var prev Vec
	switch {
	case c.SolverOrder == 1 || s.lowerOrderNums < 1 || lowerFinal:
		prev, err = s.firstOrder(m, sample, z, i+1, i)
	case c.SolverOrder == 2 || s.lowerOrderNums < 2 || lowerSecond:
		prev, err = s.secondOrder(sample, z)
	default:
		prev, err = s.thirdOrder(sample, z)
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

// secondOrder is multistep_dpm_solver_second_order_update.
func (s *dpmMultistep) secondOrder(x, z Vec) (Vec, error) {
	sample, noise := V(x), maybeV(z)
	i := s.stepIndex
	a, sg, l, err := s.points(i+1, i, i-1)
	if err != nil {
		return nil, err
	}
	alphaT, alphaS0, sigT, sigS0 := a[0], a[1], sg[0], sg[1]
	m0, m1 := s.history(0), s.history(1)
	h, h0 := l[0]-l[1], l[1]-l[2]
	r0 := h0 / h
	d0, d1 := V(m0), scaledDiff(1/r0, m0, m1)
	midpoint := s.cfg.SolverType == "midpoint"
	switch s.cfg.AlgorithmType {
	case "dpmsolver++":
		e := alphaT * (exp32(-h) - 1)
		if midpoint {
			return s.eval(lincomb([]float32{sigT / sigS0, -e, -(0.5 * e)}, sample, d0, d1))
		}
		return s.eval(lincomb([]float32{sigT / sigS0, -e, alphaT * ((exp32(-h)-1)/h + 1)}, sample, d0, d1))
	case "dpmsolver":
		e := sigT * (exp32(h) - 1)
		if midpoint {
			return s.eval(lincomb([]float32{alphaT / alphaS0, -e, -(0.5 * e)}, sample, d0, d1))
		}
		return s.eval(lincomb([]float32{alphaT / alphaS0, -e, -(sigT * ((exp32(h)-1)/h - 1))}, sample, d0, d1))
	case "sde-dpmsolver++":
		e2 := exp32(-2 * h)
		e := alphaT * (1 - e2)
		noiseCoef := sigT * sqrt32(1-exp32(-2*h))
		if midpoint {
			return s.eval(lincomb([]float32{sigT / sigS0 * exp32(-h), e, 0.5 * e, noiseCoef}, sample, d0, d1, noise))
		}
		return s.eval(lincomb([]float32{sigT / sigS0 * exp32(-h), e, alphaT * ((1-e2)/(-2*h) + 1), noiseCoef}, sample, d0, d1, noise))
	default: // sde-dpmsolver
		e := sigT * (exp32(h) - 1)
		noiseCoef := sigT * sqrt32(exp32(2*h)-1)
		if midpoint {
			return s.eval(lincomb([]float32{alphaT / alphaS0, -(2 * e), -e, noiseCoef}, sample, d0, d1, noise))
		}
		return s.eval(lincomb([]float32{alphaT / alphaS0, -(2 * e), -(2 * (sigT * ((exp32(h)-1)/h - 1))), noiseCoef}, sample, d0, d1, noise))
	}
}

// thirdOrder is multistep_dpm_solver_third_order_update.
func (s *dpmMultistep) thirdOrder(x, z Vec) (Vec, error) {
	sample, noise := V(x), maybeV(z)
	i := s.stepIndex
	a, sg, l, err := s.points(i+1, i, i-1, i-2)
	if err != nil {
		return nil, err
	}
	alphaT, alphaS0, sigT, sigS0 := a[0], a[1], sg[0], sg[1]
	m0, m1, m2 := s.history(0), s.history(1), s.history(2)
	h, h0, h1 := l[0]-l[1], l[1]-l[2], l[2]-l[3]
	r0, r1 := h0/h, h1/h
	d0 := V(m0)
	d10, d11 := scaledDiff(1/r0, m0, m1), scaledDiff(1/r1, m1, m2)
	k1, k2 := r0/(r0+r1), 1/(r0+r1)
	diff := d10.Sub(d11)
	d1 := d10.Add(C(k1).Mul(diff))
	d2 := C(k2).Mul(diff)
	switch s.cfg.AlgorithmType {
	case "dpmsolver++":
		e := exp32(-h) - 1
		return s.eval(lincomb([]float32{sigT / sigS0, -(alphaT * e), alphaT * (e/h + 1), -(alphaT * ((exp32(-h)-1+h)/(h*h) - 0.5))},
			sample, d0, d1, d2))
	case "dpmsolver":
		e := exp32(h) - 1
		return s.eval(lincomb([]float32{alphaT / alphaS0, -(sigT * e), -(sigT * (e/h - 1)), -(sigT * ((exp32(h)-1-h)/(h*h) - 0.5))},
			sample, d0, d1, d2))
	case "sde-dpmsolver++":
		e2 := exp32(-2 * h)
		return s.eval(lincomb([]float32{
			sigT / sigS0 * exp32(-h),
			alphaT * (1 - e2),
			alphaT * ((1-e2)/(-2*h) + 1),
			alphaT * ((1-e2-2*h)/((2*h)*(2*h)) - 0.5),
			sigT * sqrt32(1-exp32(-2*h)),
		}, sample, d0, d1, d2, noise))
	default:
		return nil, fmt.Errorf("sched: %s: third-order updates are not defined for algorithm_type %s; use solver_order 2", s.class, s.cfg.AlgorithmType)
	}
}

// dpmSinglestep is diffusers' DPMSolverSinglestepScheduler.
type dpmSinglestep struct {
	dpmSolver
	orderList []int
	saved     Vec // the sample at the start of the current single step
}

func newDPMSinglestep(cfg Config) (Scheduler, error) {
	const class = "DPMSolverSinglestepScheduler"
	if err := validateDPM(class, &cfg, "dpmsolver", "dpmsolver++", "sde-dpmsolver++"); err != nil {
		return nil, err
	}
	s := &dpmSinglestep{dpmSolver: dpmSolver{base: newBase(class, cfg)}}
	s.bind(s)
	s.train = newTrainSchedule(&cfg, false, false)
	return s, nil
}

// orders is get_order_list: the order of each single step.
func (s *dpmSinglestep) orders(steps int) []int {
	c := &s.cfg
	order := c.SolverOrder
	rep := func(pattern []int, k int) []int {
		var out []int
		for i := 0; i < k; i++ {
			out = append(out, pattern...)
		}
		return out
	}
	var o []int
	if c.LowerOrderFinal {
		switch order {
		case 3:
			switch steps % 3 {
			case 0:
				o = append(rep([]int{1, 2, 3}, steps/3-1), 1, 2, 1)
			case 1:
				o = append(rep([]int{1, 2, 3}, steps/3), 1)
			default:
				o = append(rep([]int{1, 2, 3}, steps/3), 1, 2)
			}
		case 2:
			if steps%2 == 0 {
				o = append(rep([]int{1, 2}, steps/2-1), 1, 1)
			} else {
				o = append(rep([]int{1, 2}, steps/2), 1)
			}
		default:
			o = rep([]int{1}, steps)
		}
	} else {
		switch order {
		case 3:
			o = rep([]int{1, 2, 3}, steps/3)
		case 2:
			o = rep([]int{1, 2}, steps/2)
		default:
			o = rep([]int{1}, steps)
		}
	}
	if c.FinalSigmasType == "zero" && len(o) > 0 {
		o[len(o)-1] = 1
	}
	return o
}

func (s *dpmSinglestep) SetTimesteps(steps int) error {
	if err := s.checkSteps(steps); err != nil {
		return err
	}
	c := &s.cfg
	clipped := s.lambdaClippedIndex()
	v := npLinspace(0, float64(c.NumTrainTimesteps-1-clipped), steps+1)
	for i := range v {
		v[i] = math.RoundToEven(v[i])
	}
	ts := reversed(v)[:steps]
	sigmas, ts := s.multistepSchedule(ts, steps, multistepOptions{roundKarras: true, finalSigma: s.finalSigmaType})
	s.sigmas, s.timesteps, s.ts32 = sigmas, ts, false
	s.numSteps = steps
	s.freeState()
	s.freeHistory(c.SolverOrder)
	// diffusers turns lower_order_final on (in the config) when the steps do
	// not divide into whole single steps, or the last sigma is zero.
	if !c.LowerOrderFinal && (steps%c.SolverOrder != 0 || c.FinalSigmasType == "zero") {
		c.LowerOrderFinal = true
	}
	s.orderList = s.orders(steps)
	s.resetRun()
	return nil
}

func (s *dpmSinglestep) freeState() {
	s.freeHistory(len(s.modelOutputs))
	s.free(s.saved)
	s.saved = nil
}

func (s *dpmSinglestep) StepVec(modelOutput Vec, t float64, sample Vec, noise Noise) (Vec, error) {
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := checkLen(s.class, sample, "model output", modelOutput); err != nil {
		return nil, err
	}
	if err := s.initStepIndex(t, true); err != nil {
		return nil, err
	}
	i := s.stepIndex
	if i >= len(s.orderList) {
		return nil, fmt.Errorf("sched: %s: step %d is past the end of the schedule; call SetTimesteps for a new run", s.class, i)
	}
	m, err := s.convert(modelOutput, sample)
	if err != nil {
		return nil, err
	}
	s.push(m)
	tmp := s.scratch()
	defer tmp.free()
	var z Vec
	if s.cfg.AlgorithmType == "sde-dpmsolver++" {
		if z, err = s.drawVec(noise, sample.Len(), tmp); err != nil {
			return nil, err
		}
	}
	order := s.orderList[i]
	for order > 1 && s.history(order-1) == nil {
		order--
	}
	if order == 1 {
		v, err := s.copyVec(sample)
		if err != nil {
			return nil, err
		}
		s.free(s.saved)
		s.saved = v
	}
	if s.saved == nil {
		return nil, fmt.Errorf("sched: %s: a higher-order single step has no starting sample", s.class)
	}
	var prev Vec
	switch order {
	case 1:
		prev, err = s.firstOrder(s.history(0), s.saved, z, i+1, i)
	case 2:
		prev, err = s.secondOrder(s.saved, z)
	default:
		prev, err = s.thirdOrder(s.saved, z)
	}
	if err != nil {
		return nil, err
	}
	s.stepIndex++
	return prev, nil
}

// secondOrder is singlestep_dpm_solver_second_order_update: from the sample
// at sigma index i-1, with the outputs at i-1 and i.
func (s *dpmSinglestep) secondOrder(x, z Vec) (Vec, error) {
	sample, noise := V(x), maybeV(z)
	i := s.stepIndex
	a, sg, l, err := s.points(i+1, i, i-1)
	if err != nil {
		return nil, err
	}
	alphaT, alphaS1, sigT, sigS1 := a[0], a[2], sg[0], sg[2]
	m0, m1 := s.history(0), s.history(1)
	h, h0 := l[0]-l[2], l[1]-l[2]
	r0 := h0 / h
	d0, d1 := V(m1), scaledDiff(1/r0, m0, m1)
	midpoint := s.cfg.SolverType == "midpoint"
	switch s.cfg.AlgorithmType {
	case "dpmsolver++":
		e := alphaT * (exp32(-h) - 1)
		if midpoint {
			return s.eval(lincomb([]float32{sigT / sigS1, -e, -(0.5 * e)}, sample, d0, d1))
		}
		return s.eval(lincomb([]float32{sigT / sigS1, -e, alphaT * ((exp32(-h)-1)/h + 1)}, sample, d0, d1))
	case "dpmsolver":
		e := sigT * (exp32(h) - 1)
		if midpoint {
			return s.eval(lincomb([]float32{alphaT / alphaS1, -e, -(0.5 * e)}, sample, d0, d1))
		}
		return s.eval(lincomb([]float32{alphaT / alphaS1, -e, -(sigT * ((exp32(h)-1)/h - 1))}, sample, d0, d1))
	default: // sde-dpmsolver++
		e2 := exp32(-2 * h)
		e := alphaT * (1 - e2)
		noiseCoef := sigT * sqrt32(1-exp32(-2*h))
		if midpoint {
			return s.eval(lincomb([]float32{sigT / sigS1 * exp32(-h), e, 0.5 * e, noiseCoef}, sample, d0, d1, noise))
		}
		return s.eval(lincomb([]float32{sigT / sigS1 * exp32(-h), e, alphaT * ((1-e2)/(-2*h) + 1), noiseCoef}, sample, d0, d1, noise))
	}
}

// thirdOrder is singlestep_dpm_solver_third_order_update: from the sample at
// sigma index i-2, with the outputs at i-2, i-1 and i.
func (s *dpmSinglestep) thirdOrder(x, z Vec) (Vec, error) {
	sample, noise := V(x), maybeV(z)
	i := s.stepIndex
	a, sg, l, err := s.points(i+1, i, i-1, i-2)
	if err != nil {
		return nil, err
	}
	alphaT, alphaS2, sigT, sigS2 := a[0], a[3], sg[0], sg[3]
	m0, m1, m2 := s.history(0), s.history(1), s.history(2)
	h, h0, h1 := l[0]-l[3], l[1]-l[3], l[2]-l[3]
	r0, r1 := h0/h, h1/h
	d0 := V(m2)
	d10, d11 := scaledDiff(1/r1, m1, m2), scaledDiff(1/r0, m0, m2)
	d1 := C(r0).Mul(d10).Sub(C(r1).Mul(d11)).Div(C(r0 - r1))
	d2 := C(2).Mul(d11.Sub(d10)).Div(C(r0 - r1))
	midpoint := s.cfg.SolverType == "midpoint"
	switch s.cfg.AlgorithmType {
	case "dpmsolver++":
		e := exp32(-h) - 1
		if midpoint {
			return s.eval(lincomb([]float32{sigT / sigS2, -(alphaT * e), alphaT * (e/h + 1)}, sample, d0, d11))
		}
		return s.eval(lincomb([]float32{sigT / sigS2, -(alphaT * e), alphaT * (e/h + 1), -(alphaT * ((exp32(-h)-1+h)/(h*h) - 0.5))},
			sample, d0, d1, d2))
	case "dpmsolver":
		e := exp32(h) - 1
		if midpoint {
			return s.eval(lincomb([]float32{alphaT / alphaS2, -(sigT * e), -(sigT * (e/h - 1))}, sample, d0, d11))
		}
		return s.eval(lincomb([]float32{alphaT / alphaS2, -(sigT * e), -(sigT * (e/h - 1)), -(sigT * ((exp32(h)-1-h)/(h*h) - 0.5))},
			sample, d0, d1, d2))
	default: // sde-dpmsolver++
		e2 := exp32(-2 * h)
		noiseCoef := sigT * sqrt32(1-exp32(-2*h))
		if midpoint {
			return s.eval(lincomb([]float32{sigT / sigS2 * exp32(-h), alphaT * (1 - e2), alphaT * ((1-e2)/(-2*h) + 1), noiseCoef},
				sample, d0, d11, noise))
		}
		mh := -2 * h
		return s.eval(lincomb([]float32{sigT / sigS2 * exp32(-h), alphaT * (1 - e2), alphaT * ((1-e2)/(-2*h) + 1),
			alphaT * ((1-e2+mh)/(mh*mh) - 0.5), noiseCoef}, sample, d0, d1, d2, noise))
	}
}

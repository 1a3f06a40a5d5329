package sched

import (
	"fmt"
	"math"
)

// sigmaSchedule is the set_timesteps of the k-diffusion style classes (Euler,
// Euler ancestral, Heun, LMS, KDPM2): float32 timesteps by timestep_spacing,
// sigmas interpolated from the training sigmas at them, optionally replaced by
// a Karras, exponential or beta schedule (with timesteps mapped back), before
// the final sigma is appended.
type sigmaSchedule struct {
	timesteps []float64 // float32 values, or float64 for rounded Karras timesteps
	sigmas    []float64 // without the final sigma
	logSigmas []float32 // log of the training sigmas
	ts32      bool
}

// kdiffusionOptions selects the per-class differences of sigmaSchedule.
type kdiffusionOptions struct {
	configBounds bool // sigma_min/sigma_max come from the config (Euler)
	roundKarras  bool // Karras timesteps are rounded (KDPM2)
	// keepSigmasForExpBeta: exponential/beta sigmas do not replace the
	// interpolated ones, only the timesteps are mapped back (KDPM2).
	keepSigmasForExpBeta bool
	// logLinear: Euler's interpolation_type log_linear, steps+1 sigmas
	// log-uniform over the training range instead of interpolated ones.
	logLinear bool
	// float64Converted: timesteps mapped back from converted sigmas stay
	// float64 (KDPM2 keeps numpy's float64 array) instead of float32.
	float64Converted bool
}

func (b *base) sigmaSchedule(steps int, opt kdiffusionOptions) (sigmaSchedule, error) {
	c := &b.cfg
	raw, err := spacedTimesteps(c.TimestepSpacing, c.NumTrainTimesteps, steps, c.StepsOffset, false)
	if err != nil {
		return sigmaSchedule{}, err
	}
	ts := float32Timesteps(raw)
	train := b.train.trainSigmas()
	logSigmas := logSigmas32(train)
	sigmas := interpSigmas(ts, train)
	if opt.logLinear {
		lin := torchLinspace32(float64(logSigmas[len(logSigmas)-1]), float64(logSigmas[0]), steps+1)
		sigmas = make([]float64, len(lin))
		for i, v := range lin {
			sigmas[i] = float64(exp32(v))
		}
	}
	out := sigmaSchedule{timesteps: ts, sigmas: sigmas, logSigmas: logSigmas, ts32: true}
	mapBack := func(sig []float64) []float64 {
		t := make([]float64, len(sig))
		for i, s := range sig {
			t[i] = sigmaToT(s, logSigmas)
		}
		return t
	}
	switch {
	case c.UseKarrasSigmas:
		lo, hi := sigmaBounds(c, opt.configBounds, sigmas)
		out.sigmas = karrasSigmas(lo, hi, steps)
		out.timesteps = mapBack(out.sigmas)
		if opt.roundKarras {
			for i := range out.timesteps {
				out.timesteps[i] = math.RoundToEven(out.timesteps[i])
			}
			out.ts32 = false
		} else {
			out.timesteps = float32Timesteps(out.timesteps)
		}
	case c.UseExponentialSigmas, c.UseBetaSigmas:
		lo, hi := sigmaBounds(c, opt.configBounds, sigmas)
		var conv []float64
		if c.UseExponentialSigmas {
			conv = exponentialSigmas(lo, hi, steps)
		} else {
			conv = betaSigmas(lo, hi, steps)
		}
		if opt.keepSigmasForExpBeta {
			out.timesteps = mapBack(sigmas)
		} else {
			out.sigmas = conv
			out.timesteps = mapBack(conv)
		}
		if opt.float64Converted {
			out.ts32 = false
		} else {
			out.timesteps = float32Timesteps(out.timesteps)
		}
	}
	return out, nil
}

func validateKDiffusion(class string, c *Config, predictions ...string) error {
	if err := validateCommon(class, c); err != nil {
		return err
	}
	if err := validateSpacing(class, c); err != nil {
		return err
	}
	if err := validatePrediction(class, c, predictions...); err != nil {
		return err
	}
	return validateSigmaKind(class, c)
}

// euler is diffusers' EulerDiscreteScheduler (Karras et al. 2022, Algorithm 2
// without churn).
type euler struct {
	base
}

func newEuler(cfg Config) (Scheduler, error) {
	const class = "EulerDiscreteScheduler"
	if err := validateKDiffusion(class, &cfg); err != nil {
		return nil, err
	}
	if err := oneOf(class, "interpolation_type", cfg.InterpolationType, "linear", "log_linear"); err != nil {
		return nil, err
	}
	if err := oneOf(class, "timestep_type", cfg.TimestepType, "discrete", "continuous"); err != nil {
		return nil, err
	}
	if err := oneOf(class, "final_sigmas_type", cfg.FinalSigmasType, "zero", "sigma_min"); err != nil {
		return nil, err
	}
	s := &euler{base: newBase(class, cfg)}
	s.bind(s)
	s.train = newTrainSchedule(&cfg, cfg.RescaleBetasZeroSNR, true)
	s.initTrainSigmas()
	return s, nil
}

// initTrainSigmas sets the sigmas a class has before SetTimesteps (every
// training timestep, descending, then 0), which init_noise_sigma reads.
func (b *base) initTrainSigmas() {
	b.sigmas = append(reversed(b.train.trainSigmas()), 0)
}

func (s *euler) InitNoiseSigma() float64 { return maxSigmaInit(s.cfg.TimestepSpacing, s.sigmas) }

func (s *euler) freeState() {}

func (s *euler) continuousV() bool {
	return s.cfg.TimestepType == "continuous" && s.cfg.PredictionType == "v_prediction"
}

func (s *euler) SetTimesteps(steps int) error {
	if err := s.checkSteps(steps); err != nil {
		return err
	}
	c := &s.cfg
	sch, err := s.sigmaSchedule(steps, kdiffusionOptions{configBounds: true, logLinear: c.InterpolationType == "log_linear"})
	if err != nil {
		return err
	}
	sigmas := sch.sigmas
	var last float32
	if c.FinalSigmasType == "sigma_min" {
		a := s.train.alphasCumprod[0]
		last = sqrt32((1 - a) / a)
	}
	s.sigmas = append(toF32(sigmas), last)
	if s.continuousV() {
		ts := make([]float64, len(s.sigmas)-1)
		for i := range ts {
			ts[i] = float64(float32(0.25) * log32(s.sigmas[i]))
		}
		s.timesteps, s.ts32 = ts, true
	} else {
		s.timesteps, s.ts32 = float32Timesteps(sch.timesteps), true
	}
	s.numSteps = steps
	s.resetRun()
	return nil
}

func (s *euler) ScaleModelInputVec(sample Vec, t float64) (Vec, error) {
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := s.initStepIndex(t, false); err != nil {
		return nil, err
	}
	sigma, err := s.sigmaAt(s.stepIndex)
	if err != nil {
		return nil, err
	}
	return s.scaleBySigma(sample, sigma)
}

func (s *euler) StepVec(modelOutput Vec, t float64, sample Vec, noise Noise) (Vec, error) {
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := checkLen(s.class, sample, "model output", modelOutput); err != nil {
		return nil, err
	}
	if err := s.initStepIndex(t, false); err != nil {
		return nil, err
	}
	sigma, err := s.sigmaAt(s.stepIndex)
	if err != nil {
		return nil, err
	}
	next, err := s.sigmaAt(s.stepIndex + 1)
	if err != nil {
		return nil, err
	}
	sigmaHat := sigma // s_churn = 0: gamma = 0, sigma_hat = sigma
	x0, err := sigmaX0(s.class, s.cfg.PredictionType, sigma, sample, modelOutput)
	if err != nil {
		return nil, err
	}
	dt := next - sigmaHat
	prev, err := s.eval(eulerUpdate(sample, sample, x0, sigmaHat, dt))
	if err != nil {
		return nil, err
	}
	s.stepIndex++
	return prev, nil
}

func (s *euler) AddNoiseVec(x0, noise Vec, t float64) (Vec, error) {
	return s.sigmaAddNoise(x0, noise, t)
}

// eulerAncestral is diffusers' EulerAncestralDiscreteScheduler.
type eulerAncestral struct {
	base
}

func newEulerAncestral(cfg Config) (Scheduler, error) {
	const class = "EulerAncestralDiscreteScheduler"
	if err := validateKDiffusion(class, &cfg, "epsilon", "v_prediction"); err != nil {
		return nil, err
	}
	if cfg.UseKarrasSigmas || cfg.UseExponentialSigmas || cfg.UseBetaSigmas {
		return nil, fmt.Errorf("sched: %s does not support Karras, exponential or beta sigmas", class)
	}
	s := &eulerAncestral{base: newBase(class, cfg)}
	s.bind(s)
	s.train = newTrainSchedule(&cfg, cfg.RescaleBetasZeroSNR, true)
	s.initTrainSigmas()
	return s, nil
}

func (s *eulerAncestral) freeState() {}

func (s *eulerAncestral) InitNoiseSigma() float64 {
	return maxSigmaInit(s.cfg.TimestepSpacing, s.sigmas)
}

func (s *eulerAncestral) SetTimesteps(steps int) error {
	if err := s.checkSteps(steps); err != nil {
		return err
	}
	sch, err := s.sigmaSchedule(steps, kdiffusionOptions{})
	if err != nil {
		return err
	}
	s.sigmas = append(toF32(sch.sigmas), 0)
	s.timesteps, s.ts32 = sch.timesteps, true
	s.numSteps = steps
	s.resetRun()
	return nil
}

func (s *eulerAncestral) ScaleModelInputVec(sample Vec, t float64) (Vec, error) {
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := s.initStepIndex(t, false); err != nil {
		return nil, err
	}
	sigma, err := s.sigmaAt(s.stepIndex)
	if err != nil {
		return nil, err
	}
	return s.scaleBySigma(sample, sigma)
}

func (s *eulerAncestral) StepVec(modelOutput Vec, t float64, sample Vec, noise Noise) (Vec, error) {
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := checkLen(s.class, sample, "model output", modelOutput); err != nil {
		return nil, err
	}
	if err := s.initStepIndex(t, false); err != nil {
		return nil, err
	}
	from, err := s.sigmaAt(s.stepIndex)
	if err != nil {
		return nil, err
	}
	to, err := s.sigmaAt(s.stepIndex + 1)
	if err != nil {
		return nil, err
	}
	x0, err := sigmaX0(s.class, s.cfg.PredictionType, from, sample, modelOutput)
	if err != nil {
		return nil, err
	}
	up := sqrt32(to * to * (from*from - to*to) / (from * from))
	down := sqrt32(to*to - up*up)
	dt := down - from
	tmp := s.scratch()
	defer tmp.free()
	z, err := s.drawVec(noise, sample.Len(), tmp)
	if err != nil {
		return nil, err
	}
	prev, err := s.eval(eulerUpdate(sample, sample, x0, from, dt).Add(V(z).Mul(C(up))))
	if err != nil {
		return nil, err
	}
	s.stepIndex++
	return prev, nil
}

func (s *eulerAncestral) AddNoiseVec(x0, noise Vec, t float64) (Vec, error) {
	return s.sigmaAddNoise(x0, noise, t)
}

// heun is diffusers' HeunDiscreteScheduler (Karras et al. 2022, Algorithm 1):
// every step but the last evaluates the model twice.
type heun struct {
	base
	prevDerivative Vec // nil in the first-order state
	dt             float32
	savedSample    Vec
}

func newHeun(cfg Config) (Scheduler, error) {
	const class = "HeunDiscreteScheduler"
	if err := validateCommon(class, &cfg, "exp"); err != nil {
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
	s := &heun{base: newBase(class, cfg)}
	s.bind(s)
	s.train = newTrainSchedule(&cfg, false, false)
	// The constructor runs set_timesteps(num_train_timesteps).
	if err := s.SetTimesteps(cfg.NumTrainTimesteps); err != nil {
		return nil, err
	}
	s.numSteps = 0
	return s, nil
}

func (s *heun) Order() int { return 2 }

func (s *heun) InitNoiseSigma() float64 { return maxSigmaInit(s.cfg.TimestepSpacing, s.sigmas) }

// interleave returns v[:1] + each of v[1:]... twice + tail, the layout of the
// second-order classes.
func interleave[T any](v []T, tail []T) []T {
	out := []T{v[0]}
	for _, x := range v[1:] {
		out = append(out, x, x)
	}
	return append(out, tail...)
}

func (s *heun) SetTimesteps(steps int) error {
	if err := s.checkSteps(steps); err != nil {
		return err
	}
	sch, err := s.sigmaSchedule(steps, kdiffusionOptions{})
	if err != nil {
		return err
	}
	sig := append(toF32(sch.sigmas), 0)
	s.sigmas = interleave(sig[:len(sig)-1], sig[len(sig)-1:])
	s.timesteps = float32Timesteps(interleave(sch.timesteps, nil))
	s.ts32 = true
	s.numSteps = steps
	s.freeState()
	s.resetRun()
	return nil
}

func (s *heun) freeState() {
	s.free(s.prevDerivative, s.savedSample)
	s.prevDerivative, s.savedSample, s.dt = nil, nil, 0
}

func (s *heun) ScaleModelInputVec(sample Vec, t float64) (Vec, error) {
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := s.initStepIndex(t, false); err != nil {
		return nil, err
	}
	sigma, err := s.sigmaAt(s.stepIndex)
	if err != nil {
		return nil, err
	}
	return s.scaleBySigma(sample, sigma)
}

func (s *heun) StepVec(modelOutput Vec, t float64, sample Vec, noise Noise) (Vec, error) {
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := checkLen(s.class, sample, "model output", modelOutput); err != nil {
		return nil, err
	}
	if err := s.initStepIndex(t, false); err != nil {
		return nil, err
	}
	first := s.prevDerivative == nil
	i := s.stepIndex
	if !first {
		i--
	}
	sigma, err := s.sigmaAt(i)
	if err != nil {
		return nil, err
	}
	next, err := s.sigmaAt(i + 1)
	if err != nil {
		return nil, err
	}
	sigmaHat := sigma
	sigmaInput := sigmaHat
	if !first {
		sigmaInput = next
	}
	x0, err := sigmaX0(s.class, s.cfg.PredictionType, sigmaInput, sample, modelOutput)
	if err != nil {
		return nil, err
	}
	if s.cfg.ClipSample {
		x0 = clampRange(x0, s.cfg.ClipSampleRange)
	}
	var prev Vec
	if first {
		d, err := s.eval(V(sample).Sub(x0).Div(C(sigmaHat)))
		if err != nil {
			return nil, err
		}
		dt := next - sigmaHat
		if prev, err = s.eval(V(sample).Add(V(d).Mul(C(dt)))); err != nil {
			s.free(d)
			return nil, err
		}
		saved, err := s.copyVec(sample)
		if err != nil {
			s.free(d, prev)
			return nil, err
		}
		s.prevDerivative, s.dt, s.savedSample = d, dt, saved
	} else {
		d := V(s.prevDerivative).Add(V(sample).Sub(x0).Div(C(next))).Div(C(2))
		if prev, err = s.eval(V(s.savedSample).Add(d.Mul(C(s.dt)))); err != nil {
			return nil, err
		}
		s.freeState()
	}
	s.stepIndex++
	return prev, nil
}

func (s *heun) AddNoiseVec(x0, noise Vec, t float64) (Vec, error) {
	return s.sigmaAddNoise(x0, noise, t)
}

// lms is diffusers' LMSDiscreteScheduler: linear multistep over the sigmas,
// up to fourth order, with coefficients integrated exactly.
type lms struct {
	base
	derivatives []Vec
}

func newLMS(cfg Config) (Scheduler, error) {
	const class = "LMSDiscreteScheduler"
	if err := validateKDiffusion(class, &cfg); err != nil {
		return nil, err
	}
	s := &lms{base: newBase(class, cfg)}
	s.bind(s)
	s.train = newTrainSchedule(&cfg, false, false)
	if err := s.SetTimesteps(cfg.NumTrainTimesteps); err != nil {
		return nil, err
	}
	s.numSteps = 0
	return s, nil
}

func (s *lms) InitNoiseSigma() float64 { return maxSigmaInit(s.cfg.TimestepSpacing, s.sigmas) }

func (s *lms) SetTimesteps(steps int) error {
	if err := s.checkSteps(steps); err != nil {
		return err
	}
	sch, err := s.sigmaSchedule(steps, kdiffusionOptions{})
	if err != nil {
		return err
	}
	s.sigmas = append(toF32(sch.sigmas), 0)
	s.timesteps, s.ts32 = float32Timesteps(sch.timesteps), true
	s.numSteps = steps
	s.freeState()
	s.resetRun()
	return nil
}

func (s *lms) freeState() {
	s.free(s.derivatives...)
	s.derivatives = nil
}

func (s *lms) ScaleModelInputVec(sample Vec, t float64) (Vec, error) {
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := s.initStepIndex(t, false); err != nil {
		return nil, err
	}
	sigma, err := s.sigmaAt(s.stepIndex)
	if err != nil {
		return nil, err
	}
	return s.scaleBySigma(sample, sigma)
}

// lmsCoefficient integrates the Lagrange basis polynomial of the current_order
// node over [sigmas[t], sigmas[t+1]] (diffusers uses scipy's quad; the
// integrand is a polynomial of degree < 4, which 3-point Gauss-Legendre
// quadrature integrates exactly).
func (s *lms) lmsCoefficient(order, t, current int) float64 {
	sig := func(i int) float64 { return float64(s.sigmas[i]) }
	f := func(tau float64) float64 {
		prod := 1.0
		for k := 0; k < order; k++ {
			if k == current {
				continue
			}
			prod *= (tau - sig(t-k)) / (sig(t-current) - sig(t-k))
		}
		return prod
	}
	a, b := sig(t), sig(t+1)
	mid, half := (a+b)/2, (b-a)/2
	x := math.Sqrt(3.0 / 5.0)
	return half * (5.0/9*f(mid-half*x) + 8.0/9*f(mid) + 5.0/9*f(mid+half*x))
}

func (s *lms) StepVec(modelOutput Vec, t float64, sample Vec, noise Noise) (Vec, error) {
	const maxOrder = 4
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := checkLen(s.class, sample, "model output", modelOutput); err != nil {
		return nil, err
	}
	if err := s.initStepIndex(t, false); err != nil {
		return nil, err
	}
	sigma, err := s.sigmaAt(s.stepIndex)
	if err != nil {
		return nil, err
	}
	if _, err := s.sigmaAt(s.stepIndex + 1); err != nil {
		return nil, err
	}
	x0, err := sigmaX0(s.class, s.cfg.PredictionType, sigma, sample, modelOutput)
	if err != nil {
		return nil, err
	}
	d, err := s.eval(V(sample).Sub(x0).Div(C(sigma)))
	if err != nil {
		return nil, err
	}
	s.derivatives = append(s.derivatives, d)
	if len(s.derivatives) > maxOrder {
		s.free(s.derivatives[0])
		s.derivatives = append(s.derivatives[:0], s.derivatives[1:]...)
	}
	order := min(s.stepIndex+1, maxOrder)
	coefs := make([]float32, order)
	for k := range coefs {
		coefs[k] = float32(s.lmsCoefficient(order, s.stepIndex, k))
	}
	// sum(coeff * derivative for coeff, derivative in zip(coeffs, reversed(derivatives)))
	sum := C(0) // the loop's zeros, so that -0 sums stay +0 as they did
	n := len(s.derivatives)
	for k := 0; k < order && k < n; k++ {
		sum = sum.Add(C(coefs[k]).Mul(V(s.derivatives[n-1-k])))
	}
	prev, err := s.eval(V(sample).Add(sum))
	if err != nil {
		return nil, err
	}
	s.stepIndex++
	return prev, nil
}

func (s *lms) AddNoiseVec(x0, noise Vec, t float64) (Vec, error) {
	return s.sigmaAddNoise(x0, noise, t)
}

// kdpm2 is diffusers' KDPM2DiscreteScheduler (DPM-Solver-2 in k-diffusion):
// each step evaluates the model at sigma and at the geometric midpoint.
type kdpm2 struct {
	base
	ancestral      bool
	sigmasInterpol []float32
	sigmasUp       []float32
	sigmasDown     []float32
	savedSample    Vec // nil in the first-order state
}

func newKDPM2(cfg Config) (Scheduler, error) {
	return newKDPM2Class("KDPM2DiscreteScheduler", cfg, false)
}

func newKDPM2Ancestral(cfg Config) (Scheduler, error) {
	return newKDPM2Class("KDPM2AncestralDiscreteScheduler", cfg, true)
}

func newKDPM2Class(class string, cfg Config, ancestral bool) (Scheduler, error) {
	if err := validateKDiffusion(class, &cfg, "epsilon", "v_prediction"); err != nil {
		return nil, err
	}
	s := &kdpm2{base: newBase(class, cfg), ancestral: ancestral}
	s.bind(s)
	s.train = newTrainSchedule(&cfg, false, false)
	if err := s.SetTimesteps(cfg.NumTrainTimesteps); err != nil {
		return nil, err
	}
	s.numSteps = 0
	return s, nil
}

func (s *kdpm2) Order() int { return 2 }

func (s *kdpm2) InitNoiseSigma() float64 { return maxSigmaInit(s.cfg.TimestepSpacing, s.sigmas) }

func (s *kdpm2) SetTimesteps(steps int) error {
	if err := s.checkSteps(steps); err != nil {
		return err
	}
	sch, err := s.sigmaSchedule(steps, kdiffusionOptions{roundKarras: true, keepSigmasForExpBeta: !s.ancestral, float64Converted: true})
	if err != nil {
		return err
	}
	sig := append(toF32(sch.sigmas), 0)
	n := len(sig)
	var interp []float32
	logOf := func(v []float32) []float32 {
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = log32(x)
		}
		return out
	}
	if s.ancestral {
		up := make([]float32, n)
		down := make([]float32, n)
		for i := range sig {
			var next float32
			if i+1 < n {
				next = sig[i+1]
			}
			up[i] = sqrt32(next * next * (sig[i]*sig[i] - next*next) / (sig[i] * sig[i]))
			down[i] = sqrt32(next*next - up[i]*up[i])
		}
		down[n-1] = 0
		ls, ld := logOf(sig), logOf(down)
		interp = make([]float32, n)
		for i := range interp {
			interp[i] = exp32(lerp32(ls[i], ld[i], 0.5))
		}
		if n >= 2 {
			interp[n-2], interp[n-1] = 0, 0
		}
		s.sigmasUp = interleave(up, up[n-1:])
		s.sigmasDown = interleave(down, down[n-1:])
	} else {
		ls := logOf(sig)
		interp = make([]float32, n)
		for i := range interp {
			prev := ls[(i+n-1)%n] // sigmas.roll(1)
			interp[i] = exp32(lerp32(ls[i], prev, 0.5))
		}
		s.sigmasUp, s.sigmasDown = nil, nil
	}
	s.sigmas = interleave(sig, sig[n-1:])
	s.sigmasInterpol = interleave(interp, interp[n-1:])

	// timesteps: the step timesteps interleaved with those of the midpoints,
	// mapped back in float32 as diffusers does on torch tensors.
	tsInterp := make([]float64, n)
	for i, v := range interp {
		tsInterp[i] = float64(sigmaToT32(v, sch.logSigmas))
	}
	stepTs := sch.timesteps
	if sch.ts32 {
		tsInterp = float32Timesteps(tsInterp)
	}
	var mids []float64
	if s.ancestral {
		mids = tsInterp[:n-2]
	} else {
		mids = tsInterp[1 : n-1]
	}
	ts := []float64{stepTs[0]}
	for i := 1; i < len(stepTs); i++ {
		ts = append(ts, mids[i-1], stepTs[i])
	}
	s.timesteps, s.ts32 = ts, sch.ts32
	s.numSteps = steps
	s.freeState()
	s.resetRun()
	return nil
}

func (s *kdpm2) freeState() {
	s.free(s.savedSample)
	s.savedSample = nil
}

// saveSample keeps a copy of sample for the second half of a step.
func (s *kdpm2) saveSample(sample Vec) error {
	v, err := s.copyVec(sample)
	if err != nil {
		return err
	}
	s.free(s.savedSample)
	s.savedSample = v
	return nil
}

func (s *kdpm2) firstOrder() bool { return s.savedSample == nil }

func (s *kdpm2) ScaleModelInputVec(sample Vec, t float64) (Vec, error) {
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := s.initStepIndex(t, false); err != nil {
		return nil, err
	}
	var sigma float32
	var err error
	switch {
	case s.firstOrder():
		sigma, err = s.sigmaAt(s.stepIndex)
	case s.ancestral:
		sigma, err = s.interpolAt(s.stepIndex - 1)
	default:
		sigma, err = s.interpolAt(s.stepIndex)
	}
	if err != nil {
		return nil, err
	}
	return s.scaleBySigma(sample, sigma)
}

func (s *kdpm2) interpolAt(i int) (float32, error) {
	if i < 0 || i >= len(s.sigmasInterpol) {
		return 0, fmt.Errorf("sched: %s: step %d is past the end of the schedule; call SetTimesteps for a new run", s.class, i)
	}
	return s.sigmasInterpol[i], nil
}

func (s *kdpm2) StepVec(modelOutput Vec, t float64, sample Vec, noise Noise) (Vec, error) {
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := checkLen(s.class, sample, "model output", modelOutput); err != nil {
		return nil, err
	}
	if err := s.initStepIndex(t, false); err != nil {
		return nil, err
	}
	if s.ancestral {
		return s.stepAncestral(modelOutput, sample, noise)
	}
	first := s.firstOrder()
	i := s.stepIndex
	var sigma, interp, next float32
	var err error
	if first {
		if sigma, err = s.sigmaAt(i); err == nil {
			if interp, err = s.interpolAt(i + 1); err == nil {
				next, err = s.sigmaAt(i + 1)
			}
		}
	} else {
		if sigma, err = s.sigmaAt(i - 1); err == nil {
			if interp, err = s.interpolAt(i); err == nil {
				next, err = s.sigmaAt(i)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	sigmaHat := sigma
	sigmaInput := sigmaHat
	if !first {
		sigmaInput = interp
	}
	x0, err := sigmaX0(s.class, s.cfg.PredictionType, sigmaInput, sample, modelOutput)
	if err != nil {
		return nil, err
	}
	var prev Vec
	if first {
		dt := interp - sigmaHat
		if prev, err = s.eval(eulerUpdate(sample, sample, x0, sigmaHat, dt)); err != nil {
			return nil, err
		}
		if err = s.saveSample(sample); err != nil {
			s.free(prev)
			return nil, err
		}
	} else {
		dt := next - sigmaHat
		if prev, err = s.eval(eulerUpdate(s.savedSample, sample, x0, interp, dt)); err != nil {
			return nil, err
		}
		s.freeState()
	}
	s.stepIndex++
	return prev, nil
}

func (s *kdpm2) stepAncestral(modelOutput, sample Vec, noise Noise) (Vec, error) {
	first := s.firstOrder()
	i := s.stepIndex
	at := func(v []float32, j int) (float32, error) {
		if j < 0 || j >= len(v) {
			return 0, fmt.Errorf("sched: %s: step %d is past the end of the schedule; call SetTimesteps for a new run", s.class, j)
		}
		return v[j], nil
	}
	si := i
	if !first {
		si = i - 1
	}
	sigma, err := at(s.sigmas, si)
	if err != nil {
		return nil, err
	}
	interp, err := at(s.sigmasInterpol, si)
	if err != nil {
		return nil, err
	}
	up, err := at(s.sigmasUp, si)
	if err != nil {
		return nil, err
	}
	down, err := at(s.sigmasDown, i-1)
	if err != nil && !first {
		return nil, err
	}
	sigmaHat := sigma
	sigmaInput := sigmaHat
	if !first {
		sigmaInput = interp
	}
	x0, err := sigmaX0(s.class, s.cfg.PredictionType, sigmaInput, sample, modelOutput)
	if err != nil {
		return nil, err
	}
	var prev Vec
	if first {
		dt := interp - sigmaHat
		if prev, err = s.eval(eulerUpdate(sample, sample, x0, sigmaHat, dt)); err != nil {
			return nil, err
		}
		if err = s.saveSample(sample); err != nil {
			s.free(prev)
			return nil, err
		}
	} else {
		dt := down - sigmaHat
		tmp := s.scratch()
		defer tmp.free()
		z, err := s.drawVec(noise, sample.Len(), tmp)
		if err != nil {
			return nil, err
		}
		if prev, err = s.eval(eulerUpdate(s.savedSample, sample, x0, interp, dt).Add(V(z).Mul(C(up)))); err != nil {
			return nil, err
		}
		s.freeState()
	}
	s.stepIndex++
	return prev, nil
}

func (s *kdpm2) AddNoiseVec(x0, noise Vec, t float64) (Vec, error) {
	return s.sigmaAddNoise(x0, noise, t)
}

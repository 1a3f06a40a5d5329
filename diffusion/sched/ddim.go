package sched

import (
	"fmt"
	"math"
)

// ddim is diffusers' DDIMScheduler (Song et al. 2020).
type ddim struct {
	base
	finalAlphaCumprod float32
	eta               float32
}

func newDDIM(cfg Config) (Scheduler, error) {
	const class = "DDIMScheduler"
	if err := validateCommon(class, &cfg); err != nil {
		return nil, err
	}
	if err := validateSpacing(class, &cfg); err != nil {
		return nil, err
	}
	if err := validatePrediction(class, &cfg); err != nil {
		return nil, err
	}
	if err := validateThreshold(class, &cfg); err != nil {
		return nil, err
	}
	s := &ddim{base: newBase(class, cfg)}
	s.train = newTrainSchedule(&cfg, cfg.RescaleBetasZeroSNR, false)
	s.finalAlphaCumprod = finalAlpha(cfg.SetAlphaToOne, s.train.alphasCumprod)
	return s, nil
}

// finalAlpha is final_alpha_cumprod: 1 with set_alpha_to_one, else alphas_cumprod[0].
func finalAlpha(setAlphaToOne bool, ac []float32) float32 {
	if setAlphaToOne {
		return 1
	}
	return ac[0]
}

func (s *ddim) SetEta(eta float64) error {
	if !(eta >= 0) || math.IsInf(eta, 0) {
		return fmt.Errorf("sched: %s: eta is %v; expected a finite value >= 0", s.class, eta)
	}
	s.eta = float32(eta)
	return nil
}

func (s *ddim) InitNoiseSigma() float64 { return 1 }

func (s *ddim) SetTimesteps(steps int) error {
	if err := s.checkSteps(steps); err != nil {
		return err
	}
	ts, err := spacedTimesteps(s.cfg.TimestepSpacing, s.cfg.NumTrainTimesteps, steps, s.cfg.StepsOffset, true)
	if err != nil {
		return err
	}
	s.numSteps, s.timesteps = steps, ts
	s.resetRun()
	return nil
}

func (s *ddim) ScaleModelInput(sample []float32, t float64) ([]float32, error) {
	return append([]float32(nil), sample...), nil
}

// alphaAt is alphas_cumprod[t] for t >= 0, else final_alpha_cumprod.
func (s *base) alphaAt(t int, final float32) float32 {
	if t >= 0 {
		return s.train.alphasCumprod[t]
	}
	return final
}

func (s *ddim) Step(modelOutput []float32, t float64, sample []float32, noise Noise) ([]float32, error) {
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := checkLen(s.class, len(sample), "model output", modelOutput); err != nil {
		return nil, err
	}
	ti, err := s.trainIndex(t)
	if err != nil {
		return nil, err
	}
	prevT := ti - s.cfg.NumTrainTimesteps/s.numSteps
	a := s.train.alphasCumprod[ti]
	aPrev := s.alphaAt(prevT, s.finalAlphaCumprod)
	x0, eps, err := alphaPredictions(s.class, s.cfg.PredictionType, a, sample, modelOutput)
	if err != nil {
		return nil, err
	}
	if x0, err = s.clipOrThreshold(x0); err != nil {
		return nil, err
	}
	b, bPrev := 1-a, 1-aPrev
	variance := (bPrev / b) * (1 - a/aPrev)
	std := s.eta * sqrt32(variance)
	dirCoef := sqrt32(1 - aPrev - std*std)
	sa := sqrt32(aPrev)
	prev := make([]float32, len(sample))
	for i := range prev {
		prev[i] = sa*x0[i] + dirCoef*eps[i]
	}
	if s.eta > 0 {
		z, err := draw(s.class, noise, len(sample))
		if err != nil {
			return nil, err
		}
		for i := range prev {
			prev[i] += std * z[i]
		}
	}
	return prev, nil
}

func (s *ddim) AddNoise(x0, noise []float32, t float64) ([]float32, error) {
	return s.alphaAddNoise(x0, noise, t)
}

// ddpm is diffusers' DDPMScheduler (Ho et al. 2020).
type ddpm struct {
	base
}

func newDDPM(cfg Config) (Scheduler, error) {
	const class = "DDPMScheduler"
	if err := validateCommon(class, &cfg, "sigmoid", "laplace"); err != nil {
		return nil, err
	}
	if err := validateSpacing(class, &cfg); err != nil {
		return nil, err
	}
	if err := validatePrediction(class, &cfg); err != nil {
		return nil, err
	}
	if err := validateThreshold(class, &cfg); err != nil {
		return nil, err
	}
	if cfg.VarianceType == "" {
		cfg.VarianceType = "fixed_small"
	}
	if err := oneOf(class, "variance_type", cfg.VarianceType, "fixed_small", "fixed_small_log", "fixed_large"); err != nil {
		return nil, fmt.Errorf("%w (learned variances need a model that predicts them)", err)
	}
	s := &ddpm{base: newBase(class, cfg)}
	s.train = newTrainSchedule(&cfg, cfg.RescaleBetasZeroSNR, false)
	return s, nil
}

func (s *ddpm) InitNoiseSigma() float64 { return 1 }

func (s *ddpm) SetTimesteps(steps int) error {
	if err := s.checkSteps(steps); err != nil {
		return err
	}
	ts, err := spacedTimesteps(s.cfg.TimestepSpacing, s.cfg.NumTrainTimesteps, steps, s.cfg.StepsOffset, true)
	if err != nil {
		return err
	}
	s.numSteps, s.timesteps = steps, ts
	s.resetRun()
	return nil
}

func (s *ddpm) ScaleModelInput(sample []float32, t float64) ([]float32, error) {
	return append([]float32(nil), sample...), nil
}

// previousTimestep is the next timestep of the schedule after t, or -1.
func (s *base) previousTimestep(t float64) (int, error) {
	for i := range s.timesteps {
		if s.timesteps[i] == t {
			if i == len(s.timesteps)-1 {
				return -1, nil
			}
			return int(s.timesteps[i+1]), nil
		}
	}
	return 0, fmt.Errorf("sched: %s: timestep %v is not in the schedule", s.class, t)
}

func (s *ddpm) Step(modelOutput []float32, t float64, sample []float32, noise Noise) ([]float32, error) {
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := checkLen(s.class, len(sample), "model output", modelOutput); err != nil {
		return nil, err
	}
	ti, err := s.trainIndex(t)
	if err != nil {
		return nil, err
	}
	prevT, err := s.previousTimestep(t)
	if err != nil {
		return nil, err
	}
	a := s.train.alphasCumprod[ti]
	aPrev := s.alphaAt(prevT, 1)
	b, bPrev := 1-a, 1-aPrev
	curAlpha := a / aPrev
	curBeta := 1 - curAlpha
	x0, _, err := alphaPredictions(s.class, s.cfg.PredictionType, a, sample, modelOutput)
	if err != nil {
		return nil, err
	}
	if x0, err = s.clipOrThreshold(x0); err != nil {
		return nil, err
	}
	x0Coef := (sqrt32(aPrev) * curBeta) / b
	sampleCoef := sqrt32(curAlpha) * bPrev / b
	prev := make([]float32, len(sample))
	for i := range prev {
		prev[i] = x0Coef*x0[i] + sampleCoef*sample[i]
	}
	if ti > 0 {
		z, err := draw(s.class, noise, len(sample))
		if err != nil {
			return nil, err
		}
		variance := (1 - aPrev) / (1 - a) * curBeta
		variance = max(variance, float32(1e-20))
		var std float32
		switch s.cfg.VarianceType {
		case "fixed_small":
			std = sqrt32(variance)
		case "fixed_small_log":
			std = exp32(0.5 * log32(variance))
		case "fixed_large":
			std = sqrt32(curBeta)
		}
		for i := range prev {
			prev[i] += std * z[i]
		}
	}
	return prev, nil
}

func (s *ddpm) AddNoise(x0, noise []float32, t float64) ([]float32, error) {
	return s.alphaAddNoise(x0, noise, t)
}

// pndm is diffusers' PNDMScheduler (Liu et al. 2022): Runge-Kutta warm-up
// steps, then linear multistep (PLMS); with skip_prk_steps, PLMS only.
type pndm struct {
	base
	finalAlphaCumprod float32
	prkTimesteps      []float64
	counter           int
	curModelOutput    []float32
	curSample         []float32
	ets               [][]float32
}

func newPNDM(cfg Config) (Scheduler, error) {
	const class = "PNDMScheduler"
	if err := validateCommon(class, &cfg); err != nil {
		return nil, err
	}
	if err := validateSpacing(class, &cfg); err != nil {
		return nil, err
	}
	if err := validatePrediction(class, &cfg, "epsilon", "v_prediction"); err != nil {
		return nil, err
	}
	s := &pndm{base: newBase(class, cfg)}
	s.train = newTrainSchedule(&cfg, false, false)
	s.finalAlphaCumprod = finalAlpha(cfg.SetAlphaToOne, s.train.alphasCumprod)
	return s, nil
}

func (s *pndm) InitNoiseSigma() float64 { return 1 }

func (s *pndm) SetTimesteps(steps int) error {
	if err := s.checkSteps(steps); err != nil {
		return err
	}
	c := &s.cfg
	n := c.NumTrainTimesteps
	// _timesteps, ascending.
	var asc []float64
	switch c.TimestepSpacing {
	case "linspace":
		asc = npLinspace(0, float64(n-1), steps)
		for i := range asc {
			asc[i] = math.RoundToEven(asc[i])
		}
	case "leading":
		ratio := n / steps
		asc = make([]float64, steps)
		for i := range asc {
			asc[i] = float64(i*ratio + c.StepsOffset)
		}
	case "trailing":
		desc := npArange(float64(n), 0, -float64(n)/float64(steps))
		asc = reversed(desc)
		for i := range asc {
			asc[i] = math.RoundToEven(asc[i]) - 1
		}
	default:
		return fmt.Errorf("sched: %s: timestep_spacing %q is not one of leading, linspace, trailing", s.class, c.TimestepSpacing)
	}
	var prk, plms []float64
	if c.SkipPRKSteps {
		// _timesteps[:-1], _timesteps[-2:-1], _timesteps[-1:], reversed
		var v []float64
		if len(asc) > 1 {
			v = append(v, asc[:len(asc)-1]...)
			v = append(v, asc[len(asc)-2])
		}
		v = append(v, asc[len(asc)-1])
		plms = reversed(v)
	} else {
		const order = 4
		if len(asc) < order {
			return fmt.Errorf("sched: %s: PRK warm-up needs at least %d steps; got %d (set skip_prk_steps)", s.class, order, steps)
		}
		half := float64(n / steps / 2)
		last := asc[len(asc)-order:]
		var rep []float64 // repeat(2) + tile([0, half])
		for _, t := range last {
			rep = append(rep, t, t+half)
		}
		// prk_timesteps[:-1].repeat(2)[1:-1], reversed
		var r2 []float64
		for _, t := range rep[:len(rep)-1] {
			r2 = append(r2, t, t)
		}
		prk = reversed(r2[1 : len(r2)-1])
		plms = reversed(asc[:len(asc)-3])
	}
	s.prkTimesteps = prk
	s.timesteps = append(append([]float64{}, prk...), plms...)
	s.numSteps = steps
	s.ets = nil
	s.counter = 0
	s.curModelOutput = nil
	s.curSample = nil
	s.resetRun()
	return nil
}

func (s *pndm) ScaleModelInput(sample []float32, t float64) ([]float32, error) {
	return append([]float32(nil), sample...), nil
}

func (s *pndm) Step(modelOutput []float32, t float64, sample []float32, noise Noise) ([]float32, error) {
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := checkLen(s.class, len(sample), "model output", modelOutput); err != nil {
		return nil, err
	}
	if t != math.Trunc(t) {
		return nil, fmt.Errorf("sched: %s: timestep %v is not an integer", s.class, t)
	}
	if s.counter < len(s.prkTimesteps) && !s.cfg.SkipPRKSteps {
		return s.stepPRK(modelOutput, int(t), sample)
	}
	return s.stepPLMS(modelOutput, int(t), sample)
}

func (s *pndm) stepPRK(out []float32, t int, sample []float32) ([]float32, error) {
	n := s.cfg.NumTrainTimesteps
	diff := 0
	if s.counter%2 == 0 {
		diff = n / s.numSteps / 2
	}
	prevT := t - diff
	t = int(s.prkTimesteps[s.counter/4*4])
	if s.curModelOutput == nil {
		s.curModelOutput = make([]float32, len(out))
	}
	switch s.counter % 4 {
	case 0:
		for i := range out {
			s.curModelOutput[i] += float32(1.0/6) * out[i]
		}
		s.ets = append(s.ets, append([]float32(nil), out...))
		s.curSample = append([]float32(nil), sample...)
	case 1, 2:
		for i := range out {
			s.curModelOutput[i] += float32(1.0/3) * out[i]
		}
	case 3:
		m := make([]float32, len(out))
		for i := range out {
			m[i] = s.curModelOutput[i] + float32(1.0/6)*out[i]
		}
		out = m
		s.curModelOutput = nil
	}
	cur := sample
	if s.curSample != nil {
		cur = s.curSample
	}
	prev, err := s.prevSample(cur, t, prevT, out)
	if err != nil {
		return nil, err
	}
	s.counter++
	return prev, nil
}

func (s *pndm) stepPLMS(out []float32, t int, sample []float32) ([]float32, error) {
	if !s.cfg.SkipPRKSteps && len(s.ets) < 3 {
		return nil, fmt.Errorf("sched: %s: PLMS needs the 3 PRK warm-up steps first", s.class)
	}
	ratio := s.cfg.NumTrainTimesteps / s.numSteps
	prevT := t - ratio
	if s.counter != 1 {
		if len(s.ets) > 3 {
			s.ets = s.ets[len(s.ets)-3:]
		}
		s.ets = append(s.ets, append([]float32(nil), out...))
	} else {
		prevT = t
		t = t + ratio
	}
	e := s.ets
	m := make([]float32, len(out))
	switch {
	case len(e) == 1 && s.counter == 0:
		copy(m, out)
		s.curSample = append([]float32(nil), sample...)
	case len(e) == 1 && s.counter == 1:
		for i := range m {
			m[i] = (out[i] + e[0][i]) / 2
		}
		if s.curSample == nil {
			return nil, fmt.Errorf("sched: %s: the second PLMS step has no saved sample", s.class)
		}
		sample = s.curSample
		s.curSample = nil
	case len(e) == 2:
		for i := range m {
			m[i] = (3*e[1][i] - e[0][i]) / 2
		}
	case len(e) == 3:
		for i := range m {
			m[i] = (23*e[2][i] - 16*e[1][i] + 5*e[0][i]) / 12
		}
	default:
		k := len(e)
		for i := range m {
			m[i] = float32(1.0/24) * (55*e[k-1][i] - 59*e[k-2][i] + 37*e[k-3][i] - 9*e[k-4][i])
		}
	}
	prev, err := s.prevSample(sample, t, prevT, m)
	if err != nil {
		return nil, err
	}
	s.counter++
	return prev, nil
}

// prevSample is PNDM's _get_prev_sample (formula (9) of the paper).
func (s *pndm) prevSample(sample []float32, t, prevT int, out []float32) ([]float32, error) {
	if t < 0 || t >= len(s.train.alphasCumprod) {
		return nil, fmt.Errorf("sched: %s: timestep %d is outside [0, %d)", s.class, t, len(s.train.alphasCumprod))
	}
	a := s.train.alphasCumprod[t]
	aPrev := s.alphaAt(prevT, s.finalAlphaCumprod)
	b, bPrev := 1-a, 1-aPrev
	if s.cfg.PredictionType == "v_prediction" {
		sa, sb := sqrt32(a), sqrt32(b)
		m := make([]float32, len(out))
		for i := range m {
			m[i] = sa*out[i] + sb*sample[i]
		}
		out = m
	}
	sampleCoef := sqrt32(aPrev / a)
	denom := a*sqrt32(bPrev) + sqrt32(a*b*aPrev)
	diff := aPrev - a
	prev := make([]float32, len(sample))
	for i := range prev {
		prev[i] = sampleCoef*sample[i] - diff*out[i]/denom
	}
	return prev, nil
}

func (s *pndm) AddNoise(x0, noise []float32, t float64) ([]float32, error) {
	return s.alphaAddNoise(x0, noise, t)
}

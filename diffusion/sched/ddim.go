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
	s.bind(s)
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

func (s *ddim) freeState() {}

func (s *ddim) ScaleModelInputVec(sample Vec, t float64) (Vec, error) {
	return s.identityInput(sample)
}

// alphaAt is alphas_cumprod[t] for t >= 0, else final_alpha_cumprod.
func (s *base) alphaAt(t int, final float32) float32 {
	if t >= 0 {
		return s.train.alphasCumprod[t]
	}
	return final
}

func (s *ddim) StepVec(modelOutput Vec, t float64, sample Vec, noise Noise) (Vec, error) {
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := checkLen(s.class, sample, "model output", modelOutput); err != nil {
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
	tmp := s.scratch()
	defer tmp.free()
	if x0, err = s.clipOrThreshold(x0, tmp); err != nil {
		return nil, err
	}
	b, bPrev := 1-a, 1-aPrev
	variance := (bPrev / b) * (1 - a/aPrev)
	std := s.eta * sqrt32(variance)
	dirCoef := sqrt32(1 - aPrev - std*std)
	sa := sqrt32(aPrev)
	prev := C(sa).Mul(x0).Add(C(dirCoef).Mul(eps))
	if s.eta > 0 {
		z, err := s.drawVec(noise, sample.Len(), tmp)
		if err != nil {
			return nil, err
		}
		prev = prev.Add(C(std).Mul(V(z)))
	}
	return s.eval(prev)
}

func (s *ddim) AddNoiseVec(x0, noise Vec, t float64) (Vec, error) {
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
	s.bind(s)
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

func (s *ddpm) freeState() {}

func (s *ddpm) ScaleModelInputVec(sample Vec, t float64) (Vec, error) {
	return s.identityInput(sample)
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

func (s *ddpm) StepVec(modelOutput Vec, t float64, sample Vec, noise Noise) (Vec, error) {
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := checkLen(s.class, sample, "model output", modelOutput); err != nil {
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
	tmp := s.scratch()
	defer tmp.free()
	if x0, err = s.clipOrThreshold(x0, tmp); err != nil {
		return nil, err
	}
	x0Coef := (sqrt32(aPrev) * curBeta) / b
	sampleCoef := sqrt32(curAlpha) * bPrev / b
	prev := C(x0Coef).Mul(x0).Add(C(sampleCoef).Mul(V(sample)))
	if ti > 0 {
		z, err := s.drawVec(noise, sample.Len(), tmp)
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
		prev = prev.Add(C(std).Mul(V(z)))
	}
	return s.eval(prev)
}

func (s *ddpm) AddNoiseVec(x0, noise Vec, t float64) (Vec, error) {
	return s.alphaAddNoise(x0, noise, t)
}

// pndm is diffusers' PNDMScheduler (Liu et al. 2022): Runge-Kutta warm-up
// steps, then linear multistep (PLMS); with skip_prk_steps, PLMS only.
type pndm struct {
	base
	finalAlphaCumprod float32
	prkTimesteps      []float64
	counter           int
	curModelOutput    Vec
	curSample         Vec
	ets               []Vec
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
	s.bind(s)
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
	s.freeState()
	s.counter = 0
	s.resetRun()
	return nil
}

func (s *pndm) freeState() {
	s.free(s.ets...)
	s.free(s.curModelOutput, s.curSample)
	s.ets, s.curModelOutput, s.curSample = nil, nil, nil
}

func (s *pndm) ScaleModelInputVec(sample Vec, t float64) (Vec, error) {
	return s.identityInput(sample)
}

func (s *pndm) StepVec(modelOutput Vec, t float64, sample Vec, noise Noise) (Vec, error) {
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := checkLen(s.class, sample, "model output", modelOutput); err != nil {
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

// curOutput is the running sum of the PRK model outputs (zeros when none).
func (s *pndm) curOutput() Expr {
	if s.curModelOutput == nil {
		return C(0)
	}
	return V(s.curModelOutput)
}

// setCurOutput replaces the running sum by the value of e.
func (s *pndm) setCurOutput(e Expr) error {
	v, err := s.eval(e)
	if err != nil {
		return err
	}
	s.free(s.curModelOutput)
	s.curModelOutput = v
	return nil
}

// setCurSample replaces the saved sample by a copy of sample.
func (s *pndm) setCurSample(sample Vec) error {
	v, err := s.copyVec(sample)
	if err != nil {
		return err
	}
	s.free(s.curSample)
	s.curSample = v
	return nil
}

func (s *pndm) stepPRK(out Vec, t int, sample Vec) (Vec, error) {
	n := s.cfg.NumTrainTimesteps
	diff := 0
	if s.counter%2 == 0 {
		diff = n / s.numSteps / 2
	}
	prevT := t - diff
	t = int(s.prkTimesteps[s.counter/4*4])
	tmp := s.scratch()
	defer tmp.free()
	m := V(out)
	switch s.counter % 4 {
	case 0:
		if err := s.setCurOutput(s.curOutput().Add(C(float32(1.0 / 6)).Mul(V(out)))); err != nil {
			return nil, err
		}
		e, err := s.copyVec(out)
		if err != nil {
			return nil, err
		}
		s.ets = append(s.ets, e)
		if err := s.setCurSample(sample); err != nil {
			return nil, err
		}
	case 1, 2:
		if err := s.setCurOutput(s.curOutput().Add(C(float32(1.0 / 3)).Mul(V(out)))); err != nil {
			return nil, err
		}
	case 3:
		m = s.curOutput().Add(C(float32(1.0 / 6)).Mul(V(out)))
		tmp.add(s.curModelOutput) // freed after its last use below
		s.curModelOutput = nil
	}
	cur := sample
	if s.curSample != nil {
		cur = s.curSample
	}
	prev, err := s.prevSample(cur, t, prevT, m)
	if err != nil {
		return nil, err
	}
	s.counter++
	return prev, nil
}

func (s *pndm) stepPLMS(out Vec, t int, sample Vec) (Vec, error) {
	if !s.cfg.SkipPRKSteps && len(s.ets) < 3 {
		return nil, fmt.Errorf("sched: %s: PLMS needs the 3 PRK warm-up steps first", s.class)
	}
	ratio := s.cfg.NumTrainTimesteps / s.numSteps
	prevT := t - ratio
	if s.counter != 1 {
		if len(s.ets) > 3 {
			drop := len(s.ets) - 3
			s.free(s.ets[:drop]...)
			s.ets = append(s.ets[:0], s.ets[drop:]...)
		}
		e, err := s.copyVec(out)
		if err != nil {
			return nil, err
		}
		s.ets = append(s.ets, e)
	} else {
		prevT = t
		t = t + ratio
	}
	tmp := s.scratch()
	defer tmp.free()
	e := s.ets
	var m Expr
	switch {
	case len(e) == 1 && s.counter == 0:
		m = V(out)
		if err := s.setCurSample(sample); err != nil {
			return nil, err
		}
	case len(e) == 1 && s.counter == 1:
		m = V(out).Add(V(e[0])).Div(C(2))
		if s.curSample == nil {
			return nil, fmt.Errorf("sched: %s: the second PLMS step has no saved sample", s.class)
		}
		sample = tmp.add(s.curSample) // freed after its last use below
		s.curSample = nil
	case len(e) == 2:
		m = C(3).Mul(V(e[1])).Sub(V(e[0])).Div(C(2))
	case len(e) == 3:
		m = C(23).Mul(V(e[2])).Sub(C(16).Mul(V(e[1]))).Add(C(5).Mul(V(e[0]))).Div(C(12))
	default:
		k := len(e)
		m = C(float32(1.0 / 24)).Mul(C(55).Mul(V(e[k-1])).Sub(C(59).Mul(V(e[k-2]))).Add(C(37).Mul(V(e[k-3]))).Sub(C(9).Mul(V(e[k-4]))))
	}
	prev, err := s.prevSample(sample, t, prevT, m)
	if err != nil {
		return nil, err
	}
	s.counter++
	return prev, nil
}

// prevSample is PNDM's _get_prev_sample (formula (9) of the paper).
func (s *pndm) prevSample(sample Vec, t, prevT int, out Expr) (Vec, error) {
	if t < 0 || t >= len(s.train.alphasCumprod) {
		return nil, fmt.Errorf("sched: %s: timestep %d is outside [0, %d)", s.class, t, len(s.train.alphasCumprod))
	}
	a := s.train.alphasCumprod[t]
	aPrev := s.alphaAt(prevT, s.finalAlphaCumprod)
	b, bPrev := 1-a, 1-aPrev
	if s.cfg.PredictionType == "v_prediction" {
		sa, sb := sqrt32(a), sqrt32(b)
		out = C(sa).Mul(out).Add(C(sb).Mul(V(sample)))
	}
	sampleCoef := sqrt32(aPrev / a)
	denom := a*sqrt32(bPrev) + sqrt32(a*b*aPrev)
	diff := aPrev - a
	return s.eval(C(sampleCoef).Mul(V(sample)).Sub(C(diff).Mul(out).Div(C(denom))))
}

func (s *pndm) AddNoiseVec(x0, noise Vec, t float64) (Vec, error) {
	return s.alphaAddNoise(x0, noise, t)
}

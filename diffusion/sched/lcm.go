package sched

import (
	"fmt"
	"math"
)

// lcm is diffusers' LCMScheduler (latent consistency models): each step
// predicts the clean sample with the consistency boundary condition and, but
// for the last step, noises it again to the next timestep.
type lcm struct {
	base
	finalAlphaCumprod float32
	tcd               bool
	eta               float32 // TCD's gamma
}

func validateLCM(class string, cfg *Config) error {
	if err := validateCommon(class, cfg); err != nil {
		return err
	}
	if err := validatePrediction(class, cfg); err != nil {
		return err
	}
	if err := validateThreshold(class, cfg); err != nil {
		return err
	}
	if cfg.OriginalInferenceSteps < 1 || cfg.OriginalInferenceSteps > cfg.NumTrainTimesteps {
		return fmt.Errorf("sched: %s: original_inference_steps is %d; expected 1..num_train_timesteps (%d)", class, cfg.OriginalInferenceSteps, cfg.NumTrainTimesteps)
	}
	return nil
}

func newLCM(cfg Config) (Scheduler, error) {
	const class = "LCMScheduler"
	if err := validateLCM(class, &cfg); err != nil {
		return nil, err
	}
	s := &lcm{base: newBase(class, cfg)}
	s.bind(s)
	s.train = newTrainSchedule(&cfg, cfg.RescaleBetasZeroSNR, false)
	s.finalAlphaCumprod = finalAlpha(cfg.SetAlphaToOne, s.train.alphasCumprod)
	return s, nil
}

func newTCD(cfg Config) (Scheduler, error) {
	const class = "TCDScheduler"
	if err := validateLCM(class, &cfg); err != nil {
		return nil, err
	}
	s := &lcm{base: newBase(class, cfg), tcd: true, eta: 0.3}
	s.bind(s)
	s.train = newTrainSchedule(&cfg, cfg.RescaleBetasZeroSNR, false)
	s.finalAlphaCumprod = finalAlpha(cfg.SetAlphaToOne, s.train.alphasCumprod)
	return s, nil
}

// SetEta sets TCD's gamma (eta), the stochasticity of each step, in [0, 1].
func (s *lcm) SetEta(eta float64) error {
	if !s.tcd {
		return fmt.Errorf("sched: %s has no eta", s.class)
	}
	if !(eta >= 0 && eta <= 1) {
		return fmt.Errorf("sched: %s: eta (gamma) is %v; expected a value in [0, 1]", s.class, eta)
	}
	s.eta = float32(eta)
	return nil
}

func (s *lcm) InitNoiseSigma() float64 { return 1 }

func (s *lcm) SetTimesteps(steps int) error {
	if err := s.checkSteps(steps); err != nil {
		return err
	}
	c := &s.cfg
	orig := c.OriginalInferenceSteps
	k := c.NumTrainTimesteps / orig
	// lcm_origin_timesteps: (1..orig)*k - 1, reversed.
	origin := make([]int, orig)
	for i := range origin {
		origin[i] = (orig-i)*k - 1
	}
	if len(origin)/steps < 1 {
		return fmt.Errorf("sched: %s: %d steps is more than original_inference_steps = %d", s.class, steps, orig)
	}
	idx := npLinspaceOpen(0, float64(len(origin)), steps)
	ts := make([]float64, steps)
	for i, v := range idx {
		ts[i] = float64(origin[int(math.Floor(v))])
	}
	s.timesteps, s.ts32 = ts, false
	s.numSteps = steps
	s.resetRun()
	return nil
}

func (s *lcm) freeState() {}

func (s *lcm) ScaleModelInputVec(sample Vec, t float64) (Vec, error) {
	return s.identityInput(sample)
}

func (s *lcm) StepVec(modelOutput Vec, t float64, sample Vec, noise Noise) (Vec, error) {
	if s.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := checkLen(s.class, sample, "model output", modelOutput); err != nil {
		return nil, err
	}
	if err := s.initStepIndex(t, false); err != nil {
		return nil, err
	}
	ti, err := s.trainIndex(t)
	if err != nil {
		return nil, err
	}
	if s.stepIndex >= len(s.timesteps) {
		return nil, fmt.Errorf("sched: %s: step %d is past the end of the schedule; call SetTimesteps for a new run", s.class, s.stepIndex)
	}
	if s.tcd {
		return s.stepTCD(modelOutput, ti, sample, noise)
	}
	prevT := ti
	if s.stepIndex+1 < len(s.timesteps) {
		prevT = int(s.timesteps[s.stepIndex+1])
	}
	a := s.train.alphasCumprod[ti]
	aPrev := s.alphaAt(prevT, s.finalAlphaCumprod)
	x0, _, err := alphaPredictions(s.class, s.cfg.PredictionType, a, sample, modelOutput)
	if err != nil {
		return nil, err
	}
	tmp := s.scratch()
	defer tmp.free()
	if x0, err = s.clipOrThreshold(x0, tmp); err != nil {
		return nil, err
	}
	// get_scalings_for_boundary_condition_discrete, on the int64 timestep tensor.
	const sigmaData = float32(0.5)
	scaled := float32(ti) * float32(s.cfg.TimestepScaling)
	cSkip := sigmaData * sigmaData / (scaled*scaled + sigmaData*sigmaData)
	cOut := scaled / sqrt32(scaled*scaled+sigmaData*sigmaData)
	denoised := C(cOut).Mul(x0).Add(C(cSkip).Mul(V(sample)))
	if s.stepIndex != s.numSteps-1 {
		z, err := s.drawVec(noise, sample.Len(), tmp)
		if err != nil {
			return nil, err
		}
		sa, sb := sqrt32(aPrev), sqrt32(1-aPrev)
		denoised = C(sa).Mul(denoised).Add(C(sb).Mul(V(z)))
	}
	prev, err := s.eval(denoised)
	if err != nil {
		return nil, err
	}
	s.stepIndex++
	return prev, nil
}

// stepTCD is TCDScheduler.step (strategic stochastic sampling).
func (s *lcm) stepTCD(modelOutput Vec, ti int, sample Vec, noise Noise) (Vec, error) {
	prevT := 0
	if s.stepIndex+1 < len(s.timesteps) {
		prevT = int(s.timesteps[s.stepIndex+1])
	}
	// torch.floor((1 - eta) * prev_timestep) on an int64 tensor computes in float32.
	ts := int(math.Floor(float64(float32(1-float64(s.eta)) * float32(prevT))))
	a := s.train.alphasCumprod[ti]
	aPrev := s.alphaAt(prevT, s.finalAlphaCumprod)
	if ts < 0 || ts >= len(s.train.alphasCumprod) {
		return nil, fmt.Errorf("sched: %s: intermediate timestep %d is outside the training schedule", s.class, ts)
	}
	aS := s.train.alphasCumprod[ts]
	x0, eps, err := alphaPredictions(s.class, s.cfg.PredictionType, a, sample, modelOutput)
	if err != nil {
		return nil, err
	}
	sa, sb := sqrt32(aS), sqrt32(1-aS)
	noised := C(sa).Mul(x0).Add(C(sb).Mul(eps))
	tmp := s.scratch()
	defer tmp.free()
	if s.eta > 0 && s.stepIndex != s.numSteps-1 {
		z, err := s.drawVec(noise, sample.Len(), tmp)
		if err != nil {
			return nil, err
		}
		r := aPrev / aS
		c1, c2 := sqrt32(r), sqrt32(1-r)
		noised = C(c1).Mul(noised).Add(C(c2).Mul(V(z)))
	}
	prev, err := s.eval(noised)
	if err != nil {
		return nil, err
	}
	s.stepIndex++
	return prev, nil
}

func (s *lcm) AddNoiseVec(x0, noise Vec, t float64) (Vec, error) {
	return s.alphaAddNoise(x0, noise, t)
}

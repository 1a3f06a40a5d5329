// Package sched implements the diffusers noise schedulers Stable Diffusion
// pipelines use, configured by the same scheduler_config.json keys and
// reproducing diffusers' numbers: DDIM, DDPM, PNDM (PLMS), Euler, Euler
// ancestral, Heun, LMS, DPM-Solver++ (multistep, SDE, single-step), KDPM2,
// KDPM2 ancestral, UniPC, DEIS, LCM and TCD.
//
// Latents are flat []float32 slices (the NCHW tensor in row-major order). The
// arithmetic mirrors diffusers operation by operation: schedules in float64 as
// numpy computes them and then cast, tensors and per-step scalars in float32 as
// torch computes them on the CPU.
//
// The latent-sized arithmetic runs on an Arith (see arith.go): HostArith by default,
// or a device's, chosen with SetArith, whose Vecs the Vec methods
// (ScaleModelInputVec, StepVec, AddNoiseVec) take and return; the per-step
// scalars are always computed on the host. Every Vec a method returns is new
// and the caller's to free; the scheduler never frees or keeps the Vecs passed
// to it (it copies what its run state needs) and frees its own temporaries and
// state (SetTimesteps and SetArith free the state of the previous run). The
// []float32 methods wrap the Vec methods on HostArith.
//
// A run follows the diffusers pipeline loop:
//
//	s, _ := sched.Load("model/scheduler/scheduler_config.json")
//	_ = s.SetTimesteps(30)
//	x := noise scaled by s.InitNoiseSigma()
//	for _, t := range s.Timesteps() {
//		in, _ := s.ScaleModelInput(x, t)
//		eps := unet(in, t)
//		x, _ = s.Step(eps, t, x, rng) // rng draws the noise of ancestral/SDE steps
//	}
//
// Like diffusers' schedulers, a Scheduler is stateful (step counters, the
// history of multistep solvers) and not safe for concurrent use; SetTimesteps
// resets it.
//
// Agreement with diffusers: timesteps are bit-exact, including the fractional
// ones of Karras schedules, which depend on the last bit of numpy's float32 log
// (reproduced here); sigmas, model inputs and samples agree to float32
// round-off. The one known exception is KDPM2's interpolated midpoint
// timesteps, computed by diffusers with torch's vectorised float32 log/exp,
// which can differ by one float32 ulp.
package sched

import (
	"errors"
	"fmt"
	"math"
	"os"
)

// Noise supplies the standard normal draws of stochastic steps (ancestral,
// SDE, DDPM, DDIM with eta > 0, LCM, TCD). Randn returns the next n values of
// the stream, as torch.randn(shape, generator=g) would, so a torch-compatible
// generator reproduces diffusers' runs draw for draw.
type Noise interface {
	Randn(n int) []float32
}

// NoiseFunc adapts a function to Noise.
type NoiseFunc func(n int) []float32

// Randn calls f.
func (f NoiseFunc) Randn(n int) []float32 { return f(n) }

// Scheduler is one configured diffusers scheduler.
type Scheduler interface {
	// Class is the diffusers class name, e.g. "EulerDiscreteScheduler".
	Class() string
	// Config is the configuration the scheduler was built with.
	Config() Config
	// Order is diffusers' scheduler.order: 2 for Heun and KDPM2, whose steps take
	// two model evaluations (their timesteps list holds both), else 1.
	Order() int

	// SetTimesteps prepares a run of steps inference steps and resets all state.
	SetTimesteps(steps int) error
	// Timesteps is the model's timestep at each model evaluation, in order.
	Timesteps() []float64
	// Sigmas is the noise level at each timestep plus the final one, for the
	// classes that have sigmas (nil for DDIM, DDPM, PNDM, LCM and TCD).
	Sigmas() []float64
	// InitNoiseSigma is the standard deviation of the initial noise.
	InitNoiseSigma() float64
	// SetBeginIndex tells the scheduler which timestep a run starts at (the
	// pipelines' set_begin_index, used by image-to-image).
	SetBeginIndex(i int) error
	// SetBatchSize sets how many images a latent slice holds (default 1); only
	// dynamic thresholding, which works per image, depends on it.
	SetBatchSize(n int) error

	// ScaleModelInput returns the model input for timestep t.
	ScaleModelInput(sample []float32, t float64) ([]float32, error)
	// Step advances sample by one model evaluation at timestep t and returns the
	// new sample. noise is used only by stochastic steps; nil is an error there.
	Step(modelOutput []float32, t float64, sample []float32, noise Noise) ([]float32, error)
	// AddNoise noises x0 to the level of timestep t (image-to-image).
	AddNoise(x0, noise []float32, t float64) ([]float32, error)

	// SetArith chooses where latent arithmetic runs: HostArith (the default) or a
	// device's Arith. Call it before SetTimesteps; the Vec methods take and
	// return Vecs of that Arith.
	SetArith(a Arith)
	// ScaleModelInputVec, StepVec and AddNoiseVec are ScaleModelInput, Step and
	// AddNoise on Vecs of the scheduler's Arith.
	ScaleModelInputVec(sample Vec, t float64) (Vec, error)
	StepVec(modelOutput Vec, t float64, sample Vec, noise Noise) (Vec, error)
	AddNoiseVec(x0, noise Vec, t float64) (Vec, error)
}

// EtaScheduler is a scheduler whose step takes diffusers' eta argument: DDIM
// (0, the default, is deterministic; 1 is DDPM-like) and TCD (gamma, default 0.3).
type EtaScheduler interface {
	Scheduler
	SetEta(eta float64) error
}

// ErrNotSet is returned by the step operations before SetTimesteps.
var ErrNotSet = errors.New("sched: SetTimesteps has not been called")

// New builds a scheduler of a diffusers class from a full configuration (see
// DefaultConfig and ConfigFor). Configurations diffusers refuses are refused.
func New(className string, cfg Config) (Scheduler, error) {
	ci, err := lookupClass(className)
	if err != nil {
		return nil, err
	}
	return ci.build(cfg)
}

// FromConfig builds the scheduler a scheduler_config.json describes: the class
// named by _class_name, with its defaults for the keys the file lacks.
func FromConfig(data []byte) (Scheduler, error) {
	name, err := className(data)
	if err != nil {
		return nil, err
	}
	cfg, err := ConfigFor(name, data)
	if err != nil {
		return nil, err
	}
	return New(name, cfg)
}

// Load reads a scheduler_config.json and builds its scheduler.
func Load(path string) (Scheduler, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sched: %w", err)
	}
	s, err := FromConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// SetTimestepsStrength prepares an image-to-image run as diffusers' pipelines do
// (get_timesteps): of steps timesteps it keeps the last int(steps*strength)
// steps and starts the scheduler there. It returns the timesteps the run
// evaluates; the first is the one to pass to AddNoise.
func SetTimestepsStrength(s Scheduler, steps int, strength float64) ([]float64, error) {
	if !(strength > 0 && strength <= 1) {
		return nil, fmt.Errorf("sched: strength is %v; expected a value in (0, 1]", strength)
	}
	if err := s.SetTimesteps(steps); err != nil {
		return nil, err
	}
	start, err := strengthStart(steps, strength)
	if err != nil {
		return nil, err
	}
	begin := start * s.Order()
	ts := s.Timesteps()
	if begin >= len(ts) {
		return nil, fmt.Errorf("sched: strength %v leaves no step of %d", strength, steps)
	}
	if err := s.SetBeginIndex(begin); err != nil {
		return nil, err
	}
	return ts[begin:], nil
}

// strengthStart is the t_start of the pipelines' get_timesteps.
func strengthStart(steps int, strength float64) (int, error) {
	init := min(int(float64(steps)*strength), steps)
	if init < 1 {
		return 0, fmt.Errorf("sched: strength %v of %d steps leaves no step (int(steps*strength) = %d)", strength, steps, init)
	}
	return max(steps-init, 0), nil
}

// base holds what every class shares: the configuration, the training
// schedule, the inference timesteps, the step counters, and the Arith the
// latent arithmetic runs on.
type base struct {
	class string
	cfg   Config
	train trainSchedule
	arith Arith
	vec   vecMethods // the class itself, for the []float32 wrappers

	numSteps  int       // num_inference_steps; 0 before SetTimesteps
	timesteps []float64 // the schedule, as float64
	ts32      bool      // diffusers keeps the timesteps in float32 (compare as float32)
	sigmas    []float32 // nil for classes without sigmas

	stepIndex  int // -1 = None
	beginIndex int // -1 = None
	batch      int
}

func newBase(class string, cfg Config) base {
	return base{class: class, cfg: cfg, arith: HostArith{}, stepIndex: -1, beginIndex: -1, batch: 1}
}

// vecMethods is what each class implements on Vecs; base wraps it into the
// []float32 methods.
type vecMethods interface {
	ScaleModelInputVec(sample Vec, t float64) (Vec, error)
	StepVec(modelOutput Vec, t float64, sample Vec, noise Noise) (Vec, error)
	AddNoiseVec(x0, noise Vec, t float64) (Vec, error)
	// freeState frees the Vecs of the run state and forgets them.
	freeState()
}

// bind sets the class whose Vec methods the []float32 methods call; every
// constructor calls it.
func (b *base) bind(v vecMethods) { b.vec = v }

// SetArith sets the Arith of the latent arithmetic (nil is HostArith). The Vecs of
// the run state, which belong to the previous Arith, are freed and forgotten.
func (b *base) SetArith(a Arith) {
	if a == nil {
		a = HostArith{}
	}
	b.vec.freeState()
	b.arith = a
}

// hostOnly refuses the []float32 methods on a device Arith.
func (b *base) hostOnly() error {
	if _, ok := b.arith.(HostArith); !ok {
		return fmt.Errorf("sched: %s: the []float32 methods need the HostArith; this scheduler's is %T (use ScaleModelInputVec, StepVec and AddNoiseVec)", b.class, b.arith)
	}
	return nil
}

// hostResult unwraps a Host result.
func hostResult(v Vec, err error) ([]float32, error) {
	if err != nil {
		return nil, err
	}
	h, ok := v.(HostVec)
	if !ok {
		return nil, fmt.Errorf("sched: a host operation returned a %T", v)
	}
	return []float32(h), nil
}

// ScaleModelInput is ScaleModelInputVec on HostArith.
func (b *base) ScaleModelInput(sample []float32, t float64) ([]float32, error) {
	if err := b.hostOnly(); err != nil {
		return nil, err
	}
	return hostResult(b.vec.ScaleModelInputVec(HostVec(sample), t))
}

// Step is StepVec on HostArith.
func (b *base) Step(modelOutput []float32, t float64, sample []float32, noise Noise) ([]float32, error) {
	if err := b.hostOnly(); err != nil {
		return nil, err
	}
	return hostResult(b.vec.StepVec(HostVec(modelOutput), t, HostVec(sample), noise))
}

// AddNoise is AddNoiseVec on HostArith.
func (b *base) AddNoise(x0, noise []float32, t float64) ([]float32, error) {
	if err := b.hostOnly(); err != nil {
		return nil, err
	}
	return hostResult(b.vec.AddNoiseVec(HostVec(x0), HostVec(noise), t))
}

// eval evaluates e with the scheduler's Arith.
func (b *base) eval(e Expr) (Vec, error) { return b.arith.Eval(e) }

// copyVec returns a copy of v that the scheduler owns (run state must not
// hold the caller's Vecs, which the caller may free).
func (b *base) copyVec(v Vec) (Vec, error) { return b.arith.Eval(V(v)) }

// free frees the Vecs that are not nil.
func (b *base) free(vs ...Vec) {
	for _, v := range vs {
		if v != nil {
			b.arith.Free(v)
		}
	}
}

// scratch collects the temporaries of one operation, freed together at its end.
type scratch struct {
	a  Arith
	vs []Vec
}

func (b *base) scratch() *scratch { return &scratch{a: b.arith} }

// add registers v to be freed by free and returns it.
func (s *scratch) add(v Vec) Vec {
	if v != nil {
		s.vs = append(s.vs, v)
	}
	return v
}

func (s *scratch) free() {
	for _, v := range s.vs {
		s.a.Free(v)
	}
	s.vs = nil
}

// drawVec draws n normal values from noise and uploads them as a temporary of tmp.
func (b *base) drawVec(noise Noise, n int, tmp *scratch) (Vec, error) {
	z, err := draw(b.class, noise, n)
	if err != nil {
		return nil, err
	}
	v, err := b.arith.FromHost(z)
	if err != nil {
		return nil, err
	}
	return tmp.add(v), nil
}

func (b *base) Class() string { return b.class }
func (b *base) Config() Config {
	c := b.cfg
	c.TrainedBetas = append([]float64(nil), c.TrainedBetas...)
	c.DisableCorrector = append([]int(nil), c.DisableCorrector...)
	return c
}
func (b *base) Order() int { return 1 }

func (b *base) Timesteps() []float64 { return append([]float64(nil), b.timesteps...) }

func (b *base) Sigmas() []float64 {
	if b.sigmas == nil {
		return nil
	}
	return toF64(b.sigmas)
}

func (b *base) SetBeginIndex(i int) error {
	if b.numSteps == 0 {
		return ErrNotSet
	}
	if i < 0 || i >= len(b.timesteps) {
		return fmt.Errorf("sched: %s: begin index %d is outside the %d timesteps", b.class, i, len(b.timesteps))
	}
	b.beginIndex = i
	return nil
}

func (b *base) SetBatchSize(n int) error {
	if n < 1 {
		return fmt.Errorf("sched: batch size %d; expected at least 1", n)
	}
	b.batch = n
	return nil
}

// resetRun clears the per-run counters after new timesteps.
func (b *base) resetRun() {
	b.stepIndex, b.beginIndex = -1, -1
}

func (b *base) checkSteps(steps int) error {
	if steps < 1 {
		return fmt.Errorf("sched: %s: %d inference steps; expected at least 1", b.class, steps)
	}
	if steps > b.cfg.NumTrainTimesteps {
		return fmt.Errorf("sched: %s: %d inference steps is more than num_train_timesteps = %d", b.class, steps, b.cfg.NumTrainTimesteps)
	}
	return nil
}

// matches reports whether schedule entry i equals t as diffusers' tensor
// comparison sees it.
func (b *base) matches(i int, t float64) bool {
	if b.ts32 {
		return float32(b.timesteps[i]) == float32(t)
	}
	return b.timesteps[i] == t
}

// indexForTimestep is the Euler family's index_for_timestep: the first match,
// or the second when t occurs more than once (so a run that starts in the
// middle, as image-to-image does, does not skip a sigma).
func (b *base) indexForTimestep(t float64) (int, error) {
	var found []int
	for i := range b.timesteps {
		if b.matches(i, t) {
			found = append(found, i)
			if len(found) == 2 {
				break
			}
		}
	}
	switch len(found) {
	case 0:
		return 0, fmt.Errorf("sched: %s: timestep %v is not in the schedule", b.class, t)
	case 1:
		return found[0], nil
	default:
		return found[1], nil
	}
}

// indexForTimestepOrLast is the multistep solvers' variant, which falls back to
// the last index when t is not in the schedule.
func (b *base) indexForTimestepOrLast(t float64) int {
	i, err := b.indexForTimestep(t)
	if err != nil {
		return len(b.timesteps) - 1
	}
	return i
}

// initStepIndex sets the step counter at the first call of a run.
func (b *base) initStepIndex(t float64, orLast bool) error {
	if b.stepIndex >= 0 {
		return nil
	}
	if b.beginIndex >= 0 {
		b.stepIndex = b.beginIndex
		return nil
	}
	if orLast {
		b.stepIndex = b.indexForTimestepOrLast(t)
		return nil
	}
	i, err := b.indexForTimestep(t)
	if err != nil {
		return err
	}
	b.stepIndex = i
	return nil
}

// addNoiseIndex is the sigma index add_noise uses for timestep t.
func (b *base) addNoiseIndex(t float64, orLast bool) (int, error) {
	switch {
	case b.beginIndex < 0:
		if orLast {
			return b.indexForTimestepOrLast(t), nil
		}
		return b.indexForTimestep(t)
	case b.stepIndex >= 0:
		return b.stepIndex, nil
	default:
		return b.beginIndex, nil
	}
}

// sigmaAt reads sigmas[i], failing instead of panicking past the end (a
// scheduler stepped more often than its schedule allows).
func (b *base) sigmaAt(i int) (float32, error) {
	if i < 0 || i >= len(b.sigmas) {
		return 0, fmt.Errorf("sched: %s: step %d is past the end of the schedule (%d sigmas); call SetTimesteps for a new run", b.class, i, len(b.sigmas))
	}
	return b.sigmas[i], nil
}

// trainIndex converts a timestep to an index into the training schedule.
func (b *base) trainIndex(t float64) (int, error) {
	n := len(b.train.alphasCumprod)
	if t != math.Trunc(t) || t < 0 || t >= float64(n) {
		return 0, fmt.Errorf("sched: %s: timestep %v is not an integer in [0, %d)", b.class, t, n)
	}
	return int(t), nil
}

// checkLen checks that sample is not empty and the other operands of a step,
// given as name, Vec pairs, have its length.
func checkLen(class string, sample Vec, named ...any) error {
	if sample == nil || sample.Len() == 0 {
		return fmt.Errorf("sched: %s: empty sample", class)
	}
	n := sample.Len()
	for i := 0; i+1 < len(named); i += 2 {
		v, _ := named[i+1].(Vec)
		if v == nil {
			return fmt.Errorf("sched: %s: %s is nil", class, named[i])
		}
		if v.Len() != n {
			return fmt.Errorf("sched: %s: %s has %d values; the sample has %d", class, named[i], v.Len(), n)
		}
	}
	return nil
}

// draw takes n normal values from noise, checking that it gave them.
func draw(class string, noise Noise, n int) ([]float32, error) {
	if noise == nil {
		return nil, fmt.Errorf("sched: %s: this step draws noise but no Noise source was given", class)
	}
	v := noise.Randn(n)
	if len(v) != n {
		return nil, fmt.Errorf("sched: %s: the noise source returned %d values; expected %d", class, len(v), n)
	}
	return v, nil
}

// maxSigmaInit is the Euler family's init_noise_sigma: the largest sigma for
// linspace and trailing spacing, else sqrt(max^2 + 1).
func maxSigmaInit(spacing string, sigmas []float32) float64 {
	var m float32
	for i, s := range sigmas {
		if i == 0 || s > m || s != s {
			m = s
		}
	}
	if spacing == "linspace" || spacing == "trailing" {
		return float64(m)
	}
	return float64(sqrt32(m*m + 1))
}

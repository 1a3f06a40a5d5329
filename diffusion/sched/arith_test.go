package sched

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/internal/fixture"
)

// arithCase is one scheduler configuration run by the Arith tests: every
// fixture's, and the options the fixtures do not reach (prediction types,
// thresholding, clipping, solver orders and types, PRK warm-up, strength).
type arithCase struct {
	name     string
	class    string
	cfg      json.RawMessage // a fixture's full config; else extra keys on sdBase
	extra    string
	steps    int
	eta      float64 // < 0: not set
	batch    int
	strength float64 // 0: a full run
}

func (c arithCase) build(t *testing.T) Scheduler {
	t.Helper()
	var s Scheduler
	if c.cfg != nil {
		cfg, err := ConfigFor(c.class, c.cfg)
		require.NoError(t, err, c.name)
		s, err = New(c.class, cfg)
		require.NoError(t, err, c.name)
	} else {
		s = mustConfig(t, c.class, c.extra)
	}
	if c.eta >= 0 {
		require.NoError(t, s.(EtaScheduler).SetEta(c.eta), c.name)
	}
	require.NoError(t, s.SetBatchSize(c.batch), c.name)
	return s
}

// arithCases lists the configurations.
func arithCases(t *testing.T) []arithCase {
	t.Helper()
	var cases []arithCase
	files, err := filepath.Glob(filepath.Join(fixture.Dir(), "sched", "*.safetensors"))
	require.NoError(t, err)
	require.Len(t, files, 26, "the sched fixtures")
	for _, path := range files {
		f, err := safetensors.Open(path)
		require.NoError(t, err)
		c := readCase(t, f)
		f.Close()
		ac := arithCase{name: "fixture " + strings.TrimSuffix(filepath.Base(path), ".safetensors"),
			class: c.Class, cfg: c.Config, steps: c.Steps, eta: -1, batch: 1}
		for k, v := range c.StepKwargs {
			require.Equal(t, "eta", k)
			ac.eta = v
		}
		cases = append(cases, ac)
	}
	add := func(class, extra string, steps int, more ...func(*arithCase)) {
		c := arithCase{class: class, extra: extra, steps: steps, eta: -1, batch: 1}
		for _, m := range more {
			m(&c)
		}
		c.name = fmt.Sprintf("%s {%s} steps=%d eta=%v batch=%d strength=%v", class, extra, steps, c.eta, c.batch, c.strength)
		cases = append(cases, c)
	}
	eta := func(e float64) func(*arithCase) { return func(c *arithCase) { c.eta = e } }
	batch2 := func(c *arithCase) { c.batch = 2 }
	strength := func(s float64) func(*arithCase) { return func(c *arithCase) { c.strength = s } }
	pred := func(p string) string { return `"prediction_type": "` + p + `"` }
	join := func(parts ...string) string {
		var out []string
		for _, p := range parts {
			if p != "" {
				out = append(out, p)
			}
		}
		return strings.Join(out, ", ")
	}
	const thr = `"thresholding": true, "sample_max_value": 1.5, "dynamic_thresholding_ratio": 0.9`
	const noClip = `"clip_sample": false`
	const clip = `"clip_sample": true, "clip_sample_range": 0.8`

	for _, p := range []string{"epsilon", "v_prediction", "sample"} {
		add("DDIMScheduler", join(pred(p), noClip), 20)
		add("DDIMScheduler", join(pred(p), clip), 20, eta(0.5))
		add("DDIMScheduler", join(pred(p), noClip, thr), 20, eta(1), batch2)
		add("DDPMScheduler", join(pred(p), clip), 20)
		add("DDPMScheduler", join(pred(p), noClip, thr), 20, batch2)
		add("LCMScheduler", join(pred(p)), 4)
		add("LCMScheduler", join(pred(p), clip), 6)
		add("LCMScheduler", join(pred(p), thr), 4, batch2)
		add("TCDScheduler", join(pred(p)), 4)
		add("EulerDiscreteScheduler", pred(p), 20)
		add("HeunDiscreteScheduler", pred(p), 12)
		add("LMSDiscreteScheduler", pred(p), 20)
		add("DEISMultistepScheduler", pred(p), 20)
		add("UniPCMultistepScheduler", pred(p), 20)
		add("DPMSolverMultistepScheduler", pred(p), 20)
		add("DPMSolverMultistepScheduler", join(pred(p), `"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min"`), 20)
		add("DPMSolverSinglestepScheduler", pred(p), 20)
	}
	for _, v := range []string{"fixed_small", "fixed_small_log", "fixed_large"} {
		add("DDPMScheduler", `"variance_type": "`+v+`"`, 15)
	}
	add("DDIMScheduler", `"timestep_spacing": "trailing", "set_alpha_to_one": false`, 10)
	add("DDIMScheduler", "", 10, strength(0.6))
	for _, skip := range []string{"true", "false"} {
		for _, p := range []string{"epsilon", "v_prediction"} {
			add("PNDMScheduler", join(`"skip_prk_steps": `+skip, pred(p)), 20)
			add("PNDMScheduler", join(`"skip_prk_steps": `+skip, pred(p), `"set_alpha_to_one": false`), 10)
		}
	}
	add("PNDMScheduler", `"skip_prk_steps": true`, 1)
	add("PNDMScheduler", `"skip_prk_steps": true`, 2)
	add("EulerDiscreteScheduler", `"use_karras_sigmas": true`, 20)
	add("EulerDiscreteScheduler", `"timestep_type": "continuous", "prediction_type": "v_prediction"`, 20)
	add("EulerDiscreteScheduler", `"final_sigmas_type": "sigma_min", "interpolation_type": "log_linear"`, 20)
	add("EulerDiscreteScheduler", `"timestep_spacing": "leading"`, 20, strength(0.6))
	for _, p := range []string{"epsilon", "v_prediction"} {
		add("EulerAncestralDiscreteScheduler", pred(p), 20)
		add("EulerAncestralDiscreteScheduler", join(pred(p), `"timestep_spacing": "trailing"`), 20, strength(0.5))
		add("KDPM2DiscreteScheduler", pred(p), 12)
		add("KDPM2AncestralDiscreteScheduler", pred(p), 12)
		add("TCDScheduler", pred(p), 8, eta(1))
		add("TCDScheduler", pred(p), 4, eta(0))
	}
	add("KDPM2DiscreteScheduler", `"use_karras_sigmas": true`, 10, strength(0.5))
	add("KDPM2AncestralDiscreteScheduler", "", 10, strength(0.7))
	add("HeunDiscreteScheduler", `"use_karras_sigmas": true, "clip_sample": true, "clip_sample_range": 0.5`, 10)
	add("HeunDiscreteScheduler", "", 10, strength(0.5))
	add("LMSDiscreteScheduler", `"use_karras_sigmas": true`, 20, strength(0.8))

	for _, alg := range []string{"dpmsolver++", "sde-dpmsolver++", "dpmsolver", "sde-dpmsolver"} {
		for _, st := range []string{"midpoint", "heun"} {
			for order := 1; order <= 3; order++ {
				if order == 3 && (alg == "sde-dpmsolver") {
					continue
				}
				base := fmt.Sprintf(`"algorithm_type": "%s", "solver_type": "%s", "solver_order": %d`, alg, st, order)
				if alg == "dpmsolver" || alg == "sde-dpmsolver" {
					base += `, "final_sigmas_type": "sigma_min"`
				}
				add("DPMSolverMultistepScheduler", base, 20)
				add("DPMSolverMultistepScheduler", base, 10)
				if alg != "sde-dpmsolver" {
					add("DPMSolverSinglestepScheduler", base, 20)
					add("DPMSolverSinglestepScheduler", base, 11)
				}
			}
		}
	}
	add("DPMSolverMultistepScheduler", join(`"solver_order": 3`, thr), 20, batch2)
	add("DPMSolverMultistepScheduler", join(`"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min"`, thr), 20, batch2)
	add("DPMSolverMultistepScheduler", `"lower_order_final": false, "euler_at_final": true`, 20)
	add("DPMSolverMultistepScheduler", `"use_karras_sigmas": true`, 20, strength(0.6))
	add("DPMSolverMultistepScheduler", `"use_lu_lambdas": true`, 20)
	add("DPMSolverSinglestepScheduler", join(`"solver_order": 3`, thr), 20, batch2)
	add("DPMSolverSinglestepScheduler", join(`"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min"`, thr), 19, batch2)
	for order := 1; order <= 3; order++ {
		for _, st := range []string{"bh1", "bh2"} {
			o := fmt.Sprintf(`"solver_order": %d, "solver_type": "%s"`, order, st)
			add("UniPCMultistepScheduler", o, 20)
			add("UniPCMultistepScheduler", o, 8)
			add("UniPCMultistepScheduler", join(o, `"predict_x0": false, "final_sigmas_type": "sigma_min"`), 20)
		}
		o := fmt.Sprintf(`"solver_order": %d`, order)
		add("DEISMultistepScheduler", o, 20)
		add("DEISMultistepScheduler", o, 9)
		add("DEISMultistepScheduler", join(o, thr), 20, batch2)
	}
	add("UniPCMultistepScheduler", join(`"solver_order": 3`, thr), 20, batch2)
	add("UniPCMultistepScheduler", `"disable_corrector": [0, 2, 5]`, 20)
	add("UniPCMultistepScheduler", `"lower_order_final": false, "final_sigmas_type": "sigma_min"`, 20)
	add("UniPCMultistepScheduler", `"use_karras_sigmas": true`, 20, strength(0.6))
	add("DEISMultistepScheduler", `"use_karras_sigmas": true`, 20, strength(0.6))
	return cases
}

// caseNoise is the stochastic steps' deterministic noise source.
func caseNoise() Noise {
	k := 0
	return NoiseFunc(func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			k++
			v[i] = float32(math.Cos(float64(k) * 0.77))
		}
		return v
	})
}

// caseInputs are a case's initial latents and add_noise operands.
func caseInputs(n int) (x, x0, nz []float32) {
	x, x0, nz = make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range x {
		x[i] = float32(math.Sin(float64(i) * 1.3))
		x0[i] = float32(math.Cos(float64(i) * 0.3))
		nz[i] = float32(math.Sin(float64(i)*0.7 + 1))
	}
	return x, x0, nz
}

// fakeModel is the tests' model: tanh(x)*0.7 + 0.05*cos(t*0.01).
func fakeModel(in []float32, t float64) []float32 {
	out := make([]float32, len(in))
	c := 0.05 * float32(math.Cos(float64(float32(t)*float32(0.01))))
	for i, v := range in {
		out[i] = float32(math.Tanh(float64(v)))*0.7 + c
	}
	return out
}

// caseTimesteps prepares the run and returns the timesteps it evaluates.
func caseTimesteps(t *testing.T, c arithCase, s Scheduler) []float64 {
	t.Helper()
	if c.strength > 0 {
		ts, err := SetTimestepsStrength(s, c.steps, c.strength)
		require.NoError(t, err, c.name)
		return ts
	}
	require.NoError(t, s.SetTimesteps(c.steps), c.name)
	return s.Timesteps()
}

// runHost runs a case through the []float32 API, handing every result to rec
// in order: add_noise, each step's model input and sample, add_noise again.
func runHost(t *testing.T, c arithCase, s Scheduler, rec func([]float32)) {
	t.Helper()
	n := 64 * c.batch
	x, x0, nz := caseInputs(n)
	ts := caseTimesteps(t, c, s)
	noisy, err := s.AddNoise(x0, nz, ts[0])
	require.NoError(t, err, c.name)
	rec(noisy)
	if c.strength > 0 {
		x = noisy
	} else {
		sigma := float32(s.InitNoiseSigma())
		for i := range x {
			x[i] *= sigma
		}
	}
	noise := caseNoise()
	for j, t0 := range ts {
		in, err := s.ScaleModelInput(x, t0)
		require.NoError(t, err, "%s: step %d", c.name, j)
		rec(in)
		x, err = s.Step(fakeModel(in, t0), t0, x, noise)
		require.NoError(t, err, "%s: step %d", c.name, j)
		rec(x)
	}
	noisy, err = s.AddNoise(x0, nz, ts[0])
	require.NoError(t, err, c.name)
	rec(noisy)
}

// TestArithCasesHost runs every case through the []float32 API: they all build,
// run and stay finite.
func TestArithCasesHost(t *testing.T) {
	for _, c := range arithCases(t) {
		s := c.build(t)
		runHost(t, c, s, func(v []float32) {
			for i, x := range v {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					t.Fatalf("%s: element %d is %v", c.name, i, x)
				}
			}
		})
	}
}

// trackArith is HostArith with bookkeeping, standing in for a device Arith whose
// Vecs are memory that must be freed: it counts Evals, uploads, downloads and
// Frees, and panics when a freed Vec is used or freed again, when the
// scheduler frees a Vec the caller owns, or when a Vec of another Arith comes
// in. It evaluates expressions through Expr.Walk, as a device Arith does.
type trackArith struct {
	next                          int
	live                          map[*trackVec]bool // live Vecs; true: owned by the caller
	evals, uploads, toHost, frees int
}

type trackVec struct {
	id     int
	h      HostVec
	freed  bool
	caller bool // the caller's (the test's): the scheduler must not free it
}

func (v *trackVec) Len() int { return len(v.h) }

func newTrackArith() *trackArith { return &trackArith{live: map[*trackVec]bool{}} }

func (a *trackArith) vec(v Vec, op string) *trackVec {
	tv, ok := v.(*trackVec)
	if !ok {
		panic(fmt.Sprintf("trackArith.%s: a %T is not one of its Vecs", op, v))
	}
	if tv.freed {
		panic(fmt.Sprintf("trackArith.%s: Vec %d is used after Free", op, tv.id))
	}
	return tv
}

func (a *trackArith) wrap(h HostVec) *trackVec {
	a.next++
	v := &trackVec{id: a.next, h: h}
	a.live[v] = false
	return v
}

func (a *trackArith) Eval(e Expr) (Vec, error) {
	a.evals++
	var stack []Expr
	e.Walk(func(v Vec, c float32, isConst bool) {
		if isConst {
			stack = append(stack, C(c))
			return
		}
		stack = append(stack, V(a.vec(v, "Eval").h))
	}, func(op ExprOp, lo, hi float32) {
		n := len(stack)
		if op == ExprClamp {
			stack[n-1] = stack[n-1].Clamp(lo, hi)
			return
		}
		x, y := stack[n-2], stack[n-1]
		stack = stack[:n-2]
		switch op {
		case ExprAdd:
			x = x.Add(y)
		case ExprSub:
			x = x.Sub(y)
		case ExprMul:
			x = x.Mul(y)
		case ExprDiv:
			x = x.Div(y)
		default:
			panic(fmt.Sprintf("trackArith.Eval: unknown operation %d", op))
		}
		stack = append(stack, x)
	})
	if len(stack) != 1 {
		panic(fmt.Sprintf("trackArith.Eval: the walk left %d expressions", len(stack)))
	}
	r, err := HostArith{}.Eval(stack[0])
	if err != nil {
		return nil, err
	}
	return a.wrap(r.(HostVec)), nil
}

func (a *trackArith) FromHost(v []float32) (Vec, error) {
	a.uploads++
	return a.wrap(append(HostVec(nil), v...)), nil
}

func (a *trackArith) ToHost(v Vec) ([]float32, error) {
	a.toHost++
	return append([]float32(nil), a.vec(v, "ToHost").h...), nil
}

func (a *trackArith) Free(v Vec) {
	if v == nil {
		return
	}
	tv := a.vec(v, "Free")
	if tv.caller {
		panic(fmt.Sprintf("trackArith.Free: the scheduler freed Vec %d, which the caller owns", tv.id))
	}
	a.frees++
	tv.freed = true
	delete(a.live, tv)
}

// own marks v as the caller's: a Vec it uploaded or a scheduler returned.
func (a *trackArith) own(v Vec, err error) Vec {
	if err != nil {
		panic(err)
	}
	tv := a.vec(v, "own")
	if tv.caller {
		panic(fmt.Sprintf("Vec %d was returned but the caller already owns it", tv.id))
	}
	tv.caller = true
	a.live[tv] = true
	return v
}

// release is the caller's Free of a Vec it owns.
func (a *trackArith) release(vs ...Vec) {
	for _, v := range vs {
		tv := a.vec(v, "release")
		if !tv.caller {
			panic(fmt.Sprintf("release of Vec %d, which the caller does not own", tv.id))
		}
		tv.caller = false
		a.Free(tv)
	}
}

// held is the number of live Vecs the scheduler holds (not the caller's).
func (a *trackArith) held() int {
	n := 0
	for _, caller := range a.live {
		if !caller {
			n++
		}
	}
	return n
}

// maxHeld bounds the Vecs a scheduler keeps between calls: PNDM's 4 ets, its
// saved sample and PRK output sum.
const maxHeld = 6

// runVec is runHost through the Vec methods on a trackArith, releasing every
// Vec as soon as a pipeline would.
func runVec(t *testing.T, c arithCase, s Scheduler, a *trackArith, rec func([]float32)) {
	t.Helper()
	n := 64 * c.batch
	x, x0, nz := caseInputs(n)
	s.SetArith(a)
	ts := caseTimesteps(t, c, s)
	x0v, nzv := a.own(a.FromHost(x0)), a.own(a.FromHost(nz))
	host := func(v Vec) []float32 {
		h, err := a.ToHost(v)
		require.NoError(t, err)
		return h
	}
	noisy := a.own(s.AddNoiseVec(x0v, nzv, ts[0]))
	rec(host(noisy))
	var xv Vec
	if c.strength > 0 {
		xv = noisy
	} else {
		a.release(noisy)
		sigma := float32(s.InitNoiseSigma())
		for i := range x {
			x[i] *= sigma
		}
		xv = a.own(a.FromHost(x))
	}
	noise := caseNoise()
	for j, t0 := range ts {
		in, err := s.ScaleModelInputVec(xv, t0)
		require.NoError(t, err, "%s: step %d", c.name, j)
		a.own(in, nil)
		hin := host(in)
		rec(hin)
		out := a.own(a.FromHost(fakeModel(hin, t0)))
		prev, err := s.StepVec(out, t0, xv, noise)
		require.NoError(t, err, "%s: step %d", c.name, j)
		a.own(prev, nil)
		rec(host(prev))
		a.release(in, out, xv)
		xv = prev
		require.LessOrEqual(t, a.held(), maxHeld, "%s: step %d: Vecs held by the scheduler", c.name, j)
	}
	noisy = a.own(s.AddNoiseVec(x0v, nzv, ts[0]))
	rec(host(noisy))
	a.release(noisy, xv, x0v, nzv)
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestVecMethods runs every case through the Vec methods on a trackArith and
// checks that every model input, sample and add_noise result is bit-identical
// to the []float32 methods', that no Vec is used after Free or freed twice,
// that the scheduler never frees the caller's Vecs, that the Vecs it holds stay
// bounded, and that SetTimesteps and SetArith free them all.
func TestVecMethods(t *testing.T) {
	names := map[string]bool{}
	var evals, uploads, frees int
	for _, c := range arithCases(t) {
		require.False(t, names[c.name], "duplicate case %s", c.name)
		names[c.name] = true
		var want [][]float32
		runHost(t, c, c.build(t), func(v []float32) { want = append(want, v) })

		a := newTrackArith()
		s := c.build(t)
		var got [][]float32
		runVec(t, c, s, a, func(v []float32) { got = append(got, v) })
		require.Len(t, got, len(want), c.name)
		for i := range want {
			require.True(t, sameBits(want[i], got[i]), "%s: result %d differs: %v... want %v...", c.name, i, got[i][:4], want[i][:4])
		}
		require.LessOrEqual(t, len(a.live), maxHeld, "%s: the caller released its Vecs; the scheduler holds the rest", c.name)
		require.NoError(t, s.SetTimesteps(c.steps), c.name)
		require.Empty(t, a.live, "%s: SetTimesteps frees the run state", c.name)

		// Again, stopped halfway: SetArith frees the state of the old Arith.
		b := newTrackArith()
		s = c.build(t)
		s.SetArith(b)
		ts := caseTimesteps(t, c, s)
		xv := b.own(b.FromHost(make([]float32, 64*c.batch)))
		noise := caseNoise()
		for _, t0 := range ts[:len(ts)/2] {
			prev, err := s.StepVec(xv, t0, xv, noise)
			require.NoError(t, err, c.name)
			b.release(xv)
			xv = b.own(prev, nil)
		}
		b.release(xv)
		s.SetArith(nil)
		require.Empty(t, b.live, "%s: SetArith frees the run state", c.name)
		evals, uploads, frees = evals+a.evals+b.evals, uploads+a.uploads+b.uploads, frees+a.frees+b.frees
	}
	t.Logf("%d cases: %d Evals, %d uploads, %d Frees", len(names), evals, uploads, frees)
}

// TestVecMethodsNeedTheirArith checks the []float32 methods refuse a device
// Arith, and bad Vecs give errors rather than panics.
func TestVecMethodsNeedTheirArith(t *testing.T) {
	x := make([]float32, 8)
	for _, class := range Classes() {
		s := mustConfig(t, class, "")
		a := newTrackArith()
		s.SetArith(a)
		require.NoError(t, s.SetTimesteps(4), class)
		t0 := s.Timesteps()[0]
		_, err := s.Step(x, t0, x, caseNoise())
		require.ErrorContains(t, err, "need the HostArith", class)
		_, err = s.ScaleModelInput(x, t0)
		require.ErrorContains(t, err, "need the HostArith", class)
		_, err = s.AddNoise(x, x, t0)
		require.ErrorContains(t, err, "need the HostArith", class)

		xv := a.own(a.FromHost(x))
		_, err = s.StepVec(nil, t0, xv, caseNoise())
		require.ErrorContains(t, err, "model output is nil", class)
		_, err = s.StepVec(xv, t0, nil, caseNoise())
		require.ErrorContains(t, err, "empty sample", class)
		_, err = s.AddNoiseVec(xv, nil, t0)
		require.ErrorContains(t, err, "noise is nil", class)

		// Back on HostArith, a Vec of another Arith is an error.
		s.SetArith(HostArith{})
		require.NoError(t, s.SetTimesteps(4), class)
		_, err = s.StepVec(xv, t0, xv, caseNoise())
		require.ErrorContains(t, err, "not a host array", class)
		// and the []float32 methods work again.
		_, err = s.Step(x, t0, x, caseNoise())
		require.NoError(t, err, class)
	}
}

package sched

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/sdgo/sdgo/internal/pyjson"
)

const sdBase = `"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1`

func mustConfig(t *testing.T, class, extra string) Scheduler {
	t.Helper()
	js := `{"_class_name": "` + class + `", ` + sdBase
	if extra != "" {
		js += ", " + extra
	}
	s, err := FromConfig([]byte(js + "}"))
	require.NoError(t, err)
	return s
}

func TestUnknownClass(t *testing.T) {
	_, err := FromConfig([]byte(`{"_class_name": "FlowMatchEulerDiscreteScheduler"}`))
	require.ErrorContains(t, err, `unknown scheduler class "FlowMatchEulerDiscreteScheduler"`)
	require.ErrorContains(t, err, "EulerDiscreteScheduler", "the error lists the supported classes")
	_, err = New("Nope", Config{})
	require.ErrorContains(t, err, `unknown scheduler class "Nope"`)
	_, err = DefaultConfig("Nope")
	require.Error(t, err)
	_, err = FromConfig([]byte(`{"beta_start": 0.1}`))
	require.ErrorContains(t, err, "no _class_name")
	_, err = FromConfig([]byte(`[1, 2]`))
	require.ErrorContains(t, err, "_class_name")
	_, err = FromConfig([]byte(`{"_class_name": 7}`))
	require.Error(t, err)
}

func TestBadConfigValues(t *testing.T) {
	cases := []struct{ class, json, want string }{
		{"DDIMScheduler", `"beta_schedule": "cosine"`, `beta_schedule is "cosine"; expected one of linear, scaled_linear, squaredcos_cap_v2`},
		{"EulerDiscreteScheduler", `"timestep_spacing": "middle"`, `timestep_spacing is "middle"`},
		{"EulerDiscreteScheduler", `"prediction_type": "flow"`, `prediction_type is "flow"`},
		{"EulerDiscreteScheduler", `"use_karras_sigmas": true, "use_beta_sigmas": true`, "only one of"},
		{"EulerDiscreteScheduler", `"interpolation_type": "cubic"`, `interpolation_type is "cubic"`},
		{"EulerAncestralDiscreteScheduler", `"prediction_type": "sample"`, `prediction_type is "sample"`},
		{"DDIMScheduler", `"num_train_timesteps": "1000"`, `key "num_train_timesteps" has an invalid value`},
		{"DDIMScheduler", `"num_train_timesteps": 0`, "num_train_timesteps is 0"},
		{"DDIMScheduler", `"trained_betas": [0.1, 0.2]`, "trained_betas has 2 values; expected num_train_timesteps = 1000"},
		{"DPMSolverMultistepScheduler", `"solver_order": 4`, "solver_order is 4"},
		{"DPMSolverMultistepScheduler", `"algorithm_type": "dpmsolver", "final_sigmas_type": "zero"`, "final_sigmas_type zero is not supported"},
		{"DPMSolverMultistepScheduler", `"use_flow_sigmas": true`, "use_flow_sigmas"},
		{"DPMSolverMultistepScheduler", `"variance_type": "learned_range"`, "variance_type learned_range"},
		{"UniPCMultistepScheduler", `"solver_type": "bh3"`, `solver_type is "bh3"`},
		{"UniPCMultistepScheduler", `"predict_x0": false`, "ends in NaN"},
		{"DDPMScheduler", `"variance_type": "learned"`, `variance_type is "learned"`},
		{"PNDMScheduler", `"prediction_type": "sample"`, `prediction_type is "sample"`},
		{"LCMScheduler", `"original_inference_steps": 0`, "original_inference_steps is 0"},
		{"DDIMScheduler", `"thresholding": true, "dynamic_thresholding_ratio": 2`, "dynamic_thresholding_ratio is 2"},
	}
	for _, c := range cases {
		_, err := FromConfig([]byte(`{"_class_name": "` + c.class + `", ` + c.json + `}`))
		require.ErrorContains(t, err, c.want, "%s %s", c.class, c.json)
		require.ErrorContains(t, err, "sched:", "errors say where they come from")
	}
}

func TestLoad(t *testing.T) {
	s, err := Load(fixture.Path(t, "models/sd21-v/scheduler/scheduler_config.json"))
	require.NoError(t, err)
	require.Equal(t, "DDIMScheduler", s.Class())
	require.Equal(t, "v_prediction", s.Config().PredictionType)

	_, err = Load(filepath.Join(t.TempDir(), "missing.json"))
	require.ErrorContains(t, err, "missing.json")
	bad := filepath.Join(t.TempDir(), "scheduler_config.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"_class_name": "DDIMScheduler", "beta_schedule": "nope"}`), 0o644))
	_, err = Load(bad)
	require.ErrorContains(t, err, bad)
	require.ErrorContains(t, err, "beta_schedule")
}

func TestDefaultConfigsBuild(t *testing.T) {
	for _, class := range Classes() {
		cfg, err := DefaultConfig(class)
		require.NoError(t, err)
		s, err := New(class, cfg)
		require.NoError(t, err, class)
		require.NoError(t, s.SetTimesteps(25), class)
		keys, err := Keys(class)
		require.NoError(t, err)
		require.Contains(t, keys, "num_train_timesteps")
		// Every key a class takes is a field of Config.
		fields := map[string]bool{}
		ct := reflect.TypeOf(cfg)
		for i := 0; i < ct.NumField(); i++ {
			fields[strings.Split(ct.Field(i).Tag.Get("json"), ",")[0]] = true
		}
		for _, k := range keys {
			require.True(t, fields[k], "%s key %s", class, k)
		}
	}
}

// TestStepErrors checks that misuse returns errors rather than panicking.
func TestStepErrors(t *testing.T) {
	x := make([]float32, 16)
	for _, class := range Classes() {
		s := mustConfig(t, class, "")
		_, err := s.Step(x, 999, x, nil)
		require.ErrorIs(t, err, ErrNotSet, class)
		require.NoError(t, s.SetTimesteps(4))
		ts := s.Timesteps()
		_, err = s.Step(x[:8], ts[0], x, nil)
		require.ErrorContains(t, err, "model output has 8 values; the sample has 16", class)
		// Run the schedule to the end with zero noise, then once more.
		z := NoiseFunc(func(n int) []float32 { return make([]float32, n) })
		cur := x
		for _, t0 := range ts {
			in, err := s.ScaleModelInput(cur, t0)
			require.NoError(t, err, class)
			cur, err = s.Step(in, t0, cur, z)
			require.NoError(t, err, class)
		}
		for _, v := range cur {
			require.False(t, math.IsNaN(float64(v)), class)
		}
		// One step too many fails or (where diffusers allows it) works, but
		// never panics.
		_, _ = s.Step(x, ts[len(ts)-1], cur, z)
		_, _ = s.Step(x, ts[len(ts)-1], cur, z)
		_, err = s.AddNoise(x, x[:3], ts[0])
		require.Error(t, err, class)
	}
	// A timestep that is not in the schedule.
	s := mustConfig(t, "EulerDiscreteScheduler", "")
	require.NoError(t, s.SetTimesteps(10))
	_, err := s.ScaleModelInput(x, 12.5)
	require.ErrorContains(t, err, "timestep 12.5 is not in the schedule")
	d := mustConfig(t, "DDIMScheduler", "")
	require.NoError(t, d.SetTimesteps(10))
	_, err = d.Step(x, 1000, x, nil)
	require.ErrorContains(t, err, "not an integer in [0, 1000)")
	require.Error(t, d.SetTimesteps(0))
	require.Error(t, d.SetTimesteps(1001))
	require.Error(t, d.SetBatchSize(0))
}

func TestNoiseSource(t *testing.T) {
	x := make([]float32, 8)
	s := mustConfig(t, "EulerAncestralDiscreteScheduler", "")
	require.NoError(t, s.SetTimesteps(5))
	ts := s.Timesteps()
	_, err := s.Step(x, ts[0], x, nil)
	require.ErrorContains(t, err, "draws noise but no Noise source")
	_, err = s.Step(x, ts[0], x, NoiseFunc(func(n int) []float32 { return make([]float32, n-1) }))
	require.ErrorContains(t, err, "returned 7 values; expected 8")

	// Deterministic schedulers never ask.
	never := NoiseFunc(func(n int) []float32 { t.Fatal("drew noise"); return nil })
	for _, class := range []string{"DDIMScheduler", "EulerDiscreteScheduler", "DPMSolverMultistepScheduler", "UniPCMultistepScheduler", "HeunDiscreteScheduler"} {
		s := mustConfig(t, class, "")
		require.NoError(t, s.SetTimesteps(4))
		cur := x
		for _, t0 := range s.Timesteps() {
			cur, err = s.Step(cur, t0, cur, never)
			require.NoError(t, err)
		}
	}
}

func TestEta(t *testing.T) {
	d, ok := mustConfig(t, "DDIMScheduler", "").(EtaScheduler)
	require.True(t, ok)
	require.Error(t, d.SetEta(-1))
	require.Error(t, d.SetEta(math.NaN()))
	require.NoError(t, d.SetEta(0.5))
	tcd, ok := mustConfig(t, "TCDScheduler", "").(EtaScheduler)
	require.True(t, ok)
	require.Error(t, tcd.SetEta(1.5))
	lcm, ok := mustConfig(t, "LCMScheduler", "").(EtaScheduler)
	require.True(t, ok, "LCM and TCD share a type")
	require.ErrorContains(t, lcm.SetEta(0.3), "LCMScheduler has no eta")
	_, ok = mustConfig(t, "EulerDiscreteScheduler", "").(EtaScheduler)
	require.False(t, ok)
}

func TestStrength(t *testing.T) {
	s := mustConfig(t, "EulerDiscreteScheduler", `"timestep_spacing": "leading"`)
	require.NoError(t, s.SetTimesteps(10))
	all, sigmas := s.Timesteps(), s.Sigmas()
	ts, err := SetTimestepsStrength(s, 10, 0.6)
	require.NoError(t, err)
	require.Equal(t, all[4:], ts)
	// add_noise at the first kept timestep uses that step's sigma.
	x0 := []float32{1, 2}
	nz := []float32{0.5, -1}
	got, err := s.AddNoise(x0, nz, ts[0])
	require.NoError(t, err)
	sig := float32(sigmas[4])
	require.Equal(t, []float32{1 + 0.5*sig, 2 - sig}, got)
	// The run starts at the begin index: the first scale uses sigma[4].
	in, err := s.ScaleModelInput([]float32{1}, ts[0])
	require.NoError(t, err)
	require.Equal(t, 1/sqrt32(sig*sig+1), in[0])

	// Second-order schedulers start at twice t_start.
	h := mustConfig(t, "HeunDiscreteScheduler", "")
	ts, err = SetTimestepsStrength(h, 10, 0.5)
	require.NoError(t, err)
	require.Equal(t, h.Timesteps()[10:], ts)
	require.Len(t, ts, 9)

	_, err = SetTimestepsStrength(s, 10, 0.05)
	require.ErrorContains(t, err, "leaves no step")
	_, err = SetTimestepsStrength(s, 10, 0)
	require.Error(t, err)
	_, err = SetTimestepsStrength(s, 10, 1.5)
	require.Error(t, err)
	ts, err = SetTimestepsStrength(s, 10, 1)
	require.NoError(t, err)
	require.Equal(t, all, ts)
}

// TestPipelineStepCounts checks the run lengths of the reference pipelines:
// one latent per step after strength.
func TestPipelineStepCounts(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(fixture.Dir(), "ref", "*.safetensors"))
	require.NoError(t, err)
	checked := 0
	for _, path := range files {
		f, err := safetensors.Open(path)
		require.NoError(t, err)
		meta := f.Metadata()["case"]
		var c struct {
			Steps     int      `json:"num_inference_steps"`
			Strength  *float64 `json:"strength"`
			Scheduler *struct {
				Class  string          `json:"class"`
				Config json.RawMessage `json:"config"`
			} `json:"scheduler"`
		}
		if meta == "" || pyjson.Unmarshal([]byte(meta), &c) != nil || c.Scheduler == nil {
			f.Close()
			continue
		}
		latents := 0
		for _, n := range f.Names() {
			if strings.HasPrefix(n, "latents.") {
				latents++
			}
		}
		f.Close()
		cfg, err := ConfigFor(c.Scheduler.Class, c.Scheduler.Config)
		require.NoError(t, err)
		s, err := New(c.Scheduler.Class, cfg)
		require.NoError(t, err)
		strength := 1.0
		if c.Strength != nil {
			strength = *c.Strength
		}
		ts, err := SetTimestepsStrength(s, c.Steps, strength)
		require.NoError(t, err, path)
		require.Equal(t, latents, len(ts)/s.Order(), "%s: steps %d strength %v", filepath.Base(path), c.Steps, strength)
		checked++
	}
	require.GreaterOrEqual(t, checked, 10)
}

func TestBetaDistribution(t *testing.T) {
	// a = b = 1/2 is the arcsine distribution: I_x = (2/pi) asin(sqrt(x)).
	for _, x := range []float64{1e-6, 0.01, 0.2, 0.5, 0.77, 0.999} {
		require.InDelta(t, 2/math.Pi*math.Asin(math.Sqrt(x)), betaInc(x, 0.5, 0.5), 1e-13, "I_%v", x)
	}
	for _, q := range []float64{1e-4, 0.1, 0.3, 0.5, 0.9, 0.9999} {
		s := math.Sin(math.Pi * q / 2)
		require.InDelta(t, s*s, betaPPF(q, 0.5, 0.5), 1e-12, "ppf(%v)", q)
		require.InDelta(t, math.Sqrt(q), betaPPF(q, 2, 1), 1e-12)
		// The schedule's distribution is symmetric: ppf(q) + ppf(1-q) = 1.
		require.InDelta(t, 1, betaPPF(q, 0.6, 0.6)+betaPPF(1-q, 0.6, 0.6), 1e-12)
		require.InDelta(t, q, betaInc(betaPPF(q, 0.6, 0.6), 0.6, 0.6), 1e-13)
	}
	require.InDelta(t, 0.5, betaPPF(0.5, 0.6, 0.6), 1e-15)
	require.Equal(t, 0.0, betaPPF(0, 0.6, 0.6))
	require.Equal(t, 1.0, betaPPF(1, 0.6, 0.6))
}

func TestSigmaSchedules(t *testing.T) {
	plain := mustConfig(t, "EulerDiscreteScheduler", "")
	require.NoError(t, plain.SetTimesteps(12))
	ref := plain.Sigmas()
	hi, lo := ref[0], ref[len(ref)-2]
	for _, kind := range []string{"karras", "exponential", "beta"} {
		for _, class := range []string{"EulerDiscreteScheduler", "HeunDiscreteScheduler", "LMSDiscreteScheduler",
			"DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler", "UniPCMultistepScheduler", "DEISMultistepScheduler",
			"KDPM2DiscreteScheduler"} {
			s := mustConfig(t, class, `"use_`+kind+`_sigmas": true`)
			require.NoError(t, s.SetTimesteps(12), "%s %s", class, kind)
			sig, ts := s.Sigmas(), s.Timesteps()
			for i := 1; i < len(ts); i++ {
				require.LessOrEqual(t, ts[i], ts[i-1], "%s %s: timesteps descend", class, kind)
			}
			for i := 1; i < len(sig)-1; i++ {
				require.LessOrEqual(t, sig[i], sig[i-1], "%s %s: sigmas descend", class, kind)
			}
		}
		s := mustConfig(t, "EulerDiscreteScheduler", `"use_`+kind+`_sigmas": true`)
		require.NoError(t, s.SetTimesteps(12))
		sig := s.Sigmas()
		require.Len(t, sig, 13)
		require.InDelta(t, hi, sig[0], 1e-5*hi, kind)
		require.InDelta(t, lo, sig[11], 1e-5, kind)
		require.Equal(t, 0.0, sig[12])
		if kind == "exponential" {
			r := sig[1] / sig[0]
			for i := 2; i < 12; i++ {
				require.InDelta(t, r, sig[i]/sig[i-1], 1e-6, "exponential sigmas are geometric")
			}
		}
	}
	// Euler honours sigma_min/sigma_max.
	s := mustConfig(t, "EulerDiscreteScheduler", `"use_karras_sigmas": true, "sigma_min": 0.1, "sigma_max": 10`)
	require.NoError(t, s.SetTimesteps(8))
	sig := s.Sigmas()
	require.InDelta(t, 10, sig[0], 1e-5)
	require.InDelta(t, 0.1, sig[7], 1e-7)
}

// TestHigherOrderWarmup checks that the third-order multistep solvers start
// like the second-order ones (their first steps lack history) and then differ.
func TestHigherOrderWarmup(t *testing.T) {
	for _, c := range []struct{ class, extra string }{
		{"DPMSolverMultistepScheduler", `"algorithm_type": "dpmsolver++"`},
		{"DPMSolverMultistepScheduler", `"algorithm_type": "sde-dpmsolver++"`},
		{"DPMSolverMultistepScheduler", `"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min"`},
		{"DPMSolverMultistepScheduler", `"algorithm_type": "dpmsolver++", "solver_type": "heun"`},
		{"DPMSolverSinglestepScheduler", `"algorithm_type": "dpmsolver++"`},
		{"DPMSolverSinglestepScheduler", `"algorithm_type": "dpmsolver++", "solver_type": "heun"`},
		{"DPMSolverSinglestepScheduler", `"algorithm_type": "sde-dpmsolver++"`},
		{"DPMSolverSinglestepScheduler", `"algorithm_type": "sde-dpmsolver++", "solver_type": "heun"`},
		{"DPMSolverSinglestepScheduler", `"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min"`},
		{"DPMSolverSinglestepScheduler", `"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min", "solver_type": "heun"`},
		{"DEISMultistepScheduler", ``},
		{"UniPCMultistepScheduler", ``},
		{"UniPCMultistepScheduler", `"predict_x0": false, "solver_type": "bh1", "final_sigmas_type": "sigma_min"`},
	} {
		run := func(order int) [][]float32 {
			extra := `"solver_order": ` + string(rune('0'+order))
			if c.extra != "" {
				extra = c.extra + ", " + extra
			}
			s := mustConfig(t, c.class, extra)
			require.NoError(t, s.SetTimesteps(20))
			x := make([]float32, 64)
			for i := range x {
				x[i] = float32(math.Sin(float64(i)))
			}
			var out [][]float32
			k := 0
			noise := NoiseFunc(func(n int) []float32 {
				v := make([]float32, n)
				for i := range v {
					k++
					v[i] = float32(math.Cos(float64(k)))
				}
				return v
			})
			for _, t0 := range s.Timesteps() {
				m := make([]float32, len(x))
				for i, v := range x {
					m[i] = float32(math.Tanh(float64(v)))*0.7 + 0.05*float32(math.Cos(t0*0.01))
				}
				var err error
				x, err = s.Step(m, t0, x, noise)
				require.NoError(t, err)
				out = append(out, x)
			}
			return out
		}
		two, three := run(2), run(3)
		require.Equal(t, two[0], three[0], "%s %s: step 0", c.class, c.extra)
		require.Equal(t, two[1], three[1], "%s %s: step 1", c.class, c.extra)
		require.NotEqual(t, two[2], three[2], "%s %s: step 2 is third order", c.class, c.extra)
		for _, v := range three[len(three)-1] {
			require.False(t, math.IsNaN(float64(v)) || math.IsInf(float64(v), 0), "%s %s: %v", c.class, c.extra, three[len(three)-1][:4])
		}
	}
}

func TestThreshold(t *testing.T) {
	// Two images of 4 values; ratio 0.5 takes the median of |x|.
	x := []float32{0.5, -3, 2, 1, 0.1, 0.2, -0.3, 0.4}
	got, err := thresholdSample("test", x, 2, 0.5, 2.5)
	require.NoError(t, err)
	// image 0: |x| sorted 0.5 1 2 3 -> median 1.5 -> clamp to [-1.5, 1.5] / 1.5
	require.InDeltaSlice(t, []float64{0.5 / 1.5, -1, 1, 1 / 1.5}, toF64(got[:4]), 1e-7)
	// image 1: median 0.25 -> s = 1 (at least one) -> unchanged
	require.Equal(t, x[4:], got[4:])
	_, err = thresholdSample("test", x, 3, 0.5, 2.5)
	require.Error(t, err)

	s := mustConfig(t, "DDIMScheduler", `"thresholding": true, "sample_max_value": 1.5`)
	require.NoError(t, s.SetBatchSize(2))
	require.NoError(t, s.SetTimesteps(5))
	_, err = s.Step(x, s.Timesteps()[0], x, nil)
	require.NoError(t, err)
	_, err = s.Step(x[:7], s.Timesteps()[1], x[:7], nil)
	require.ErrorContains(t, err, "do not split into 2 images")
}

func TestPNDMWithPRK(t *testing.T) {
	s := mustConfig(t, "PNDMScheduler", "")
	require.NoError(t, s.SetTimesteps(10))
	ts := s.Timesteps()
	// diffusers: 4 PRK steps of 4 evaluations... laid out as 12 PRK timesteps then PLMS.
	require.Equal(t, []float64{901, 851, 851, 801, 801, 751, 751, 701, 701, 651, 651, 601}, ts[:12])
	require.Equal(t, []float64{601, 501, 401, 301, 201, 101, 1}, ts[12:])
	x := make([]float32, 4)
	for i := range x {
		x[i] = 1
	}
	for _, t0 := range ts {
		var err error
		x, err = s.Step([]float32{0.1, 0.2, 0.3, 0.4}, t0, x, nil)
		require.NoError(t, err)
	}
	for _, v := range x {
		require.False(t, math.IsNaN(float64(v)))
	}
}

func TestNumericHelpers(t *testing.T) {
	// numpy.arange(1000, 0, -1000/6): 6 values, the float step taken as (start+step)-start.
	v := npArange(1000, 0, -1000.0/6)
	require.Len(t, v, 6)
	require.Equal(t, 1000.0, v[0])
	// np.linspace's last point is exactly stop.
	l := npLinspace(0, 999, 7)
	require.Equal(t, 999.0, l[6])
	require.Equal(t, 0.0, l[0])
	// np.interp clamps outside and interpolates inside.
	xp, fp := []float64{0, 1, 2}, []float64{10, 20, 40}
	require.Equal(t, 10.0, npInterp(-1, xp, fp))
	require.Equal(t, 40.0, npInterp(5, xp, fp))
	require.Equal(t, 30.0, npInterp(1.5, xp, fp))
	require.Equal(t, 20.0, npInterp(1, xp, fp))
	// torch.linspace is symmetric about its ends.
	b := torchLinspace32(-6, 6, 1000)
	require.Equal(t, float32(-6), b[0])
	require.Equal(t, float32(6), b[999])
	// numpy's float32 log: within 4 ulp of the true value, exact at powers of two.
	for _, x := range []float32{1e-30, 0.02916, 0.5, 0.7071, 1, 1.5, 14.6, 3e30} {
		want := math.Log(float64(x))
		require.InDelta(t, want, float64(npLog32(x)), 4*math.Abs(want)*1.2e-7+1e-45, "log %v", x)
	}
	require.Equal(t, float32(0), npLog32(1))
	require.True(t, math.IsInf(float64(npLog32(0)), -1))
	require.True(t, math.IsNaN(float64(npLog32(-1))))
}

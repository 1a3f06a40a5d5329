package sched

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/sdgo/sdgo/internal/pyjson"
)

func TestLookupNames(t *testing.T) {
	cases := []struct {
		name, class string
		set         map[string]any
	}{
		{"ddim", "DDIMScheduler", nil},
		{"DDIM", "DDIMScheduler", nil},
		{"ddpm", "DDPMScheduler", nil},
		{"pndm", "PNDMScheduler", map[string]any{"skip_prk_steps": true}},
		{"PLMS", "PNDMScheduler", map[string]any{"skip_prk_steps": true}},
		{"euler", "EulerDiscreteScheduler", nil},
		{"Euler", "EulerDiscreteScheduler", nil},
		{"euler_karras", "EulerDiscreteScheduler", map[string]any{"use_karras_sigmas": true}},
		{"euler_a", "EulerAncestralDiscreteScheduler", nil},
		{"Euler a", "EulerAncestralDiscreteScheduler", nil},
		{"heun", "HeunDiscreteScheduler", nil},
		{"Heun", "HeunDiscreteScheduler", nil},
		{"heun_karras", "HeunDiscreteScheduler", map[string]any{"use_karras_sigmas": true}},
		{"lms", "LMSDiscreteScheduler", nil},
		{"LMS Karras", "LMSDiscreteScheduler", map[string]any{"use_karras_sigmas": true}},
		{"dpmpp_2m", "DPMSolverMultistepScheduler", map[string]any{"algorithm_type": "dpmsolver++", "solver_order": 2}},
		{"DPM++ 2M", "DPMSolverMultistepScheduler", map[string]any{"algorithm_type": "dpmsolver++", "solver_order": 2}},
		{"dpmpp_2m_karras", "DPMSolverMultistepScheduler", map[string]any{"algorithm_type": "dpmsolver++", "use_karras_sigmas": true}},
		{"DPM++ 2M Karras", "DPMSolverMultistepScheduler", map[string]any{"algorithm_type": "dpmsolver++", "use_karras_sigmas": true}},
		{"dpmpp_2m_sde", "DPMSolverMultistepScheduler", map[string]any{"algorithm_type": "sde-dpmsolver++", "solver_order": 2}},
		{"DPM++ 2M SDE Karras", "DPMSolverMultistepScheduler", map[string]any{"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": true}},
		{"DPM++ 2M SDE Heun Karras", "DPMSolverMultistepScheduler", map[string]any{"solver_type": "heun", "use_karras_sigmas": true}},
		{"DPM++ 3M SDE Exponential", "DPMSolverMultistepScheduler", map[string]any{"solver_order": 3, "use_exponential_sigmas": true}},
		{"dpmpp_2s", "DPMSolverSinglestepScheduler", map[string]any{"algorithm_type": "dpmsolver++", "solver_order": 2}},
		{"DPM++ 2S a Karras", "DPMSolverSinglestepScheduler", map[string]any{"use_karras_sigmas": true}},
		{"DPM++ SDE Karras", "DPMSolverSinglestepScheduler", map[string]any{"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": true}},
		{"dpm2", "KDPM2DiscreteScheduler", nil},
		{"DPM2", "KDPM2DiscreteScheduler", nil},
		{"DPM2 Karras", "KDPM2DiscreteScheduler", map[string]any{"use_karras_sigmas": true}},
		{"dpm2_a", "KDPM2AncestralDiscreteScheduler", nil},
		{"DPM2 a", "KDPM2AncestralDiscreteScheduler", nil},
		{"DPM2 a Karras", "KDPM2AncestralDiscreteScheduler", map[string]any{"use_karras_sigmas": true}},
		{"unipc", "UniPCMultistepScheduler", nil},
		{"UniPC", "UniPCMultistepScheduler", nil},
		{"deis", "DEISMultistepScheduler", nil},
		{"lcm", "LCMScheduler", nil},
		{"LCM", "LCMScheduler", nil},
		{"tcd", "TCDScheduler", nil},
		{"EulerDiscreteScheduler", "EulerDiscreteScheduler", nil},
		{"eulerdiscretescheduler", "EulerDiscreteScheduler", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Lookup(c.name)
			require.NoError(t, err)
			require.Equal(t, c.class, p.Class)
			for k, v := range c.set {
				require.Equal(t, v, p.Overrides[k], "override %s", k)
			}
			// Every name builds, with no model config and with a real one.
			s, err := FromName(c.name, nil)
			require.NoError(t, err)
			require.Equal(t, c.class, s.Class())
			require.NoError(t, s.SetTimesteps(10))
			s, err = FromName(c.name, readModelConfig(t, "sd15"))
			require.NoError(t, err)
			require.NoError(t, s.SetTimesteps(10))
			cfg := s.Config()
			require.Equal(t, "scaled_linear", cfg.BetaSchedule, "the model's keys apply")
			require.InDelta(t, 0.00085, cfg.BetaStart, 1e-12)
		})
	}
}

func TestLookupErrors(t *testing.T) {
	_, err := Lookup("euler_a_karras")
	require.ErrorContains(t, err, "EulerAncestralDiscreteScheduler does not support use_karras_sigmas")
	_, err = Lookup("DPM fast")
	require.ErrorContains(t, err, `unknown scheduler name "DPM fast"`)
	_, err = Lookup("")
	require.Error(t, err)
	_, err = FromName("", nil)
	require.Error(t, err)
	_, err = FromName("karras", nil)
	require.Error(t, err)
}

func readModelConfig(t *testing.T, model string) []byte {
	t.Helper()
	b, err := os.ReadFile(fixture.Path(t, filepath.Join("models", model, "scheduler", "scheduler_config.json")))
	require.NoError(t, err)
	return b
}

// TestFromNameIsFromConfig checks diffusers' from_config semantics: keys the
// model's config sets carry over to the new class, keys it lacks take the new
// class's defaults, and the name's overrides win.
func TestFromNameIsFromConfig(t *testing.T) {
	sd15 := readModelConfig(t, "sd15") // PNDM, timestep_spacing leading, steps_offset 1
	s, err := FromName("DPM++ 2M Karras", sd15)
	require.NoError(t, err)
	c := s.Config()
	require.Equal(t, "DPMSolverMultistepScheduler", s.Class())
	require.True(t, c.UseKarrasSigmas)
	require.Equal(t, "leading", c.TimestepSpacing)
	require.Equal(t, 1, c.StepsOffset)
	require.Equal(t, "zero", c.FinalSigmasType, "a DPM default")
	require.True(t, c.LowerOrderFinal, "a DPM default")

	// Without timestep_spacing in the file, the new class's default applies
	// (diffusers marks such keys _use_default_values and drops them).
	var m map[string]any
	require.NoError(t, json.Unmarshal(sd15, &m))
	delete(m, "timestep_spacing")
	noSpacing, err := json.Marshal(m)
	require.NoError(t, err)
	s, err = FromName("euler", noSpacing)
	require.NoError(t, err)
	require.Equal(t, "linspace", s.Config().TimestepSpacing)
	s, err = FromName("ddim", noSpacing)
	require.NoError(t, err)
	require.Equal(t, "leading", s.Config().TimestepSpacing)
	require.False(t, s.Config().SetAlphaToOne, "set_alpha_to_one false comes from the PNDM config")
}

// TestNamesReproduceFixtures builds the Karras and SDE fixtures' schedulers from
// their plain siblings' configs and a name, as `sd --scheduler` does, and runs
// the reference loop with them.
func TestNamesReproduceFixtures(t *testing.T) {
	cases := []struct{ base, name, want string }{
		{"dpmpp_2m", "DPM++ 2M Karras", "dpmpp_2m_karras"},
		{"dpmpp_2m", "dpmpp_2m_sde_karras", "dpmpp_2m_sde_karras"},
		{"euler", "euler_karras", "euler_karras"},
		{"heun", "Heun Karras", "heun_karras"},
		{"lms", "LMS Karras", "lms_karras"},
		{"euler_a", "Euler a", "euler_a"},
		{"ddim", "DDIM", "ddim"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := readCase(t, openFixture(t, c.base))
			s, err := FromName(c.name, base.Config)
			require.NoError(t, err)
			runFixture(t, openFixture(t, c.want), s)
		})
	}
}

func TestConfigForInfinity(t *testing.T) {
	data := []byte(`{"_class_name": "DPMSolverMultistepScheduler", "lambda_min_clipped": -Infinity,
		"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "sigma_max": null}`)
	s, err := FromConfig(data)
	require.NoError(t, err)
	c := s.Config()
	require.True(t, float64(c.LambdaMinClipped) < -1e308)
	require.NoError(t, s.SetTimesteps(10))
	require.Equal(t, 999.0, s.Timesteps()[0])

	// A finite clip drops the noisiest timesteps, those whose lambda is below it.
	clipped := []byte(`{"_class_name": "DPMSolverMultistepScheduler", "lambda_min_clipped": -5.1,
		"beta_schedule": "squaredcos_cap_v2", "final_sigmas_type": "zero"}`)
	s, err = FromConfig(clipped)
	require.NoError(t, err)
	require.NoError(t, s.SetTimesteps(10))
	ts := s.Timesteps()
	ms := s.(*dpmMultistep)
	lambda := func(t int) float32 {
		a := ms.train.alphasCumprod[t]
		return lambdaOf(sqrt32(a), sqrt32(1-a))
	}
	first := int(ts[0])
	require.Less(t, first, 999, "squaredcos lambdas fall below -5.1 near t=1000")
	require.GreaterOrEqual(t, lambda(first), float32(-5.1))
	require.Less(t, lambda(first+1), float32(-5.1), "the first kept timestep is the last one above the clip")

	var back struct {
		L pyjson.Float `json:"lambda_min_clipped"`
	}
	require.NoError(t, pyjson.Unmarshal(data, &back))
	require.Equal(t, c.LambdaMinClipped, back.L)
}

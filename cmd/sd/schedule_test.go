package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/sdgo/sdgo/internal/pyjson"
)

// decodeSchedule decodes sd schedule --json output strictly: exactly the keys
// class, timesteps and (optionally) sigmas.
func decodeSchedule(t *testing.T, out string) (class string, timesteps, sigmas []float64, hasSigmas bool) {
	t.Helper()
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(out), &raw), out)
	for k := range raw {
		require.Contains(t, []string{"class", "timesteps", "sigmas"}, k, "unexpected key in %s", out)
	}
	require.NoError(t, json.Unmarshal(raw["class"], &class))
	require.NoError(t, json.Unmarshal(raw["timesteps"], &timesteps))
	if s, ok := raw["sigmas"]; ok {
		require.NoError(t, json.Unmarshal(s, &sigmas))
		hasSigmas = true
	}
	require.True(t, strings.HasSuffix(out, "}\n"), "one JSON object and a newline")
	return class, timesteps, sigmas, hasSigmas
}

// refSchedule reads a scheduler fixture's timesteps and sigmas (nil if none).
func refSchedule(t *testing.T, name string) (timesteps, sigmas []float32, config json.RawMessage, class string) {
	t.Helper()
	f, err := safetensors.Open(fixture.Path(t, "sched/"+name+".safetensors"))
	require.NoError(t, err)
	defer f.Close()
	timesteps, err = f.Float32s("timesteps")
	require.NoError(t, err)
	if f.Has("sigmas") {
		sigmas, err = f.Float32s("sigmas")
		require.NoError(t, err)
	}
	var c struct {
		Class  string          `json:"class"`
		Config json.RawMessage `json:"config"`
	}
	require.NoError(t, pyjson.Unmarshal([]byte(f.Metadata()["case"]), &c))
	return timesteps, sigmas, c.Config, c.Class
}

func requireSame32(t *testing.T, want []float32, got []float64, what string) {
	t.Helper()
	require.Len(t, got, len(want), what)
	for i := range want {
		require.Equal(t, want[i], float32(got[i]), "%s[%d]: %v vs %v", what, i, got, want)
	}
}

func TestScheduleModelJSON(t *testing.T) {
	// sd15's PNDM config is the pndm fixture's configuration: 10 steps.
	status, out, errOut := sd(t, "schedule", "--model", fixture.Path(t, "models/sd15"), "--steps", "10", "--json")
	require.Equal(t, 0, status, errOut)
	class, ts, _, hasSigmas := decodeSchedule(t, out)
	require.Equal(t, "PNDMScheduler", class)
	require.False(t, hasSigmas, "PNDM has no sigmas, so the key is omitted")
	wantTs, _, _, _ := refSchedule(t, "pndm")
	requireSame32(t, wantTs, ts, "timesteps")

	// sdxl's Euler config (leading spacing) is the euler_leading fixture's: 7 steps.
	status, out, errOut = sd(t, "schedule", "--model", fixture.Path(t, "models/sdxl"), "--steps", "7", "--json")
	require.Equal(t, 0, status, errOut)
	class, ts, sigmas, hasSigmas := decodeSchedule(t, out)
	require.Equal(t, "EulerDiscreteScheduler", class)
	require.True(t, hasSigmas)
	wantTs, wantSigmas, _, _ := refSchedule(t, "euler_leading")
	requireSame32(t, wantTs, ts, "timesteps")
	requireSame32(t, wantSigmas, sigmas, "sigmas")

	// sd21-v: DDIM, v-prediction.
	status, out, _ = sd(t, "schedule", "--model", fixture.Path(t, "models/sd21-v"), "--steps", "10", "--json")
	require.Equal(t, 0, status)
	class, ts, _, hasSigmas = decodeSchedule(t, out)
	require.Equal(t, "DDIMScheduler", class)
	require.False(t, hasSigmas)
	require.Equal(t, []float64{901, 801, 701, 601, 501, 401, 301, 201, 101, 1}, ts)
}

func TestScheduleNamesAndStrength(t *testing.T) {
	// DPM++ 2M Karras on top of the plain DPM++ 2M fixture config reproduces
	// the dpmpp_2m_karras fixture.
	_, _, cfg, class := refSchedule(t, "dpmpp_2m")
	var m map[string]json.RawMessage
	require.NoError(t, pyjson.Unmarshal(cfg, &m))
	m["_class_name"], _ = json.Marshal(class)
	data, err := json.Marshal(m)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "scheduler_config.json")
	require.NoError(t, os.WriteFile(path, data, 0o644))

	status, out, errOut := sd(t, "schedule", "--scheduler-config", path, "--scheduler", "DPM++ 2M Karras", "--steps", "12", "--json")
	require.Equal(t, 0, status, errOut)
	gotClass, ts, sigmas, _ := decodeSchedule(t, out)
	require.Equal(t, "DPMSolverMultistepScheduler", gotClass)
	wantTs, wantSigmas, _, _ := refSchedule(t, "dpmpp_2m_karras")
	requireSame32(t, wantTs, ts, "timesteps")
	requireSame32(t, wantSigmas, sigmas, "sigmas")

	// --strength keeps the last int(steps*strength) steps and their sigmas.
	status, out, errOut = sd(t, "schedule", "--scheduler-config", path, "--scheduler", "dpmpp_2m_karras", "--steps", "12", "--strength", "0.5", "--json")
	require.Equal(t, 0, status, errOut)
	_, ts, sigmas, _ = decodeSchedule(t, out)
	requireSame32(t, wantTs[6:], ts, "timesteps")
	requireSame32(t, wantSigmas[6:], sigmas, "sigmas")

	// A second-order scheduler lists both evaluations of each step.
	status, out, _ = sd(t, "schedule", "--model", fixture.Path(t, "models/sdxl"), "--scheduler", "heun", "--steps", "6", "--strength", "0.5", "--json")
	require.Equal(t, 0, status)
	gotClass, ts, sigmas, _ = decodeSchedule(t, out)
	require.Equal(t, "HeunDiscreteScheduler", gotClass)
	require.Len(t, ts, 5, "3 steps: 2+2+1 evaluations")
	require.Len(t, sigmas, 6)
}

func TestScheduleText(t *testing.T) {
	status, out, errOut := sd(t, "schedule", "--model", fixture.Path(t, "models/sdxl"), "--scheduler", "Euler a", "--steps", "4")
	require.Equal(t, 0, status, errOut)
	require.Contains(t, out, "EulerAncestralDiscreteScheduler: 4 steps, 4 model evaluations")
	require.Contains(t, out, "timestep")
	require.Contains(t, out, "final sigma 0")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 1+1+4+1)
	// The table holds what --json prints.
	status, js, _ := sd(t, "schedule", "--model", fixture.Path(t, "models/sdxl"), "--scheduler", "Euler a", "--steps", "4", "--json")
	require.Equal(t, 0, status)
	_, ts, sigmas, _ := decodeSchedule(t, js)
	for i := range ts {
		f := strings.Fields(lines[2+i])
		require.Len(t, f, 3)
		require.Equal(t, strconv.Itoa(i), f[0])
		tv, err := strconv.ParseFloat(f[1], 64)
		require.NoError(t, err)
		require.Equal(t, ts[i], tv)
		sv, err := strconv.ParseFloat(f[2], 64)
		require.NoError(t, err)
		require.InDelta(t, sigmas[i], sv, 1e-7*sigmas[i])
	}
}

func TestScheduleErrors(t *testing.T) {
	model := fixture.Path(t, "models/sd15")
	cases := []struct {
		args   []string
		status int
		want   string
	}{
		{[]string{"--model", model}, 2, "--steps"},
		{[]string{"--steps", "10"}, 2, "exactly one of --model and --scheduler-config"},
		{[]string{"--model", model, "--scheduler-config", "x.json", "--steps", "3"}, 2, "exactly one"},
		{[]string{"--model", model, "--steps", "10", "--strength", "1.5"}, 2, "--strength"},
		{[]string{"--model", model, "--steps", "ten"}, 2, "invalid value"},
		{[]string{"--model", model, "--steps", "10", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--model", model, "--steps", "10", "--scheduler", "DPM fast"}, 1, `unknown scheduler name "DPM fast"`},
		{[]string{"--model", model, "--steps", "10", "--scheduler", "euler_a_karras"}, 1, "does not support use_karras_sigmas"},
		{[]string{"--model", model, "--steps", "2000"}, 1, "more than num_train_timesteps"},
		{[]string{"--model", model, "--steps", "10", "--strength", "0.05"}, 1, "leaves no step"},
		{[]string{"--model", t.TempDir(), "--steps", "10"}, 1, "no scheduler/scheduler_config.json"},
		{[]string{"--scheduler-config", filepath.Join(t.TempDir(), "none.json"), "--steps", "10"}, 1, "none.json"},
	}
	for _, c := range cases {
		status, _, errOut := sd(t, append([]string{"schedule"}, c.args...)...)
		require.Equal(t, c.status, status, "%v: %s", c.args, errOut)
		require.Contains(t, errOut, c.want, "%v", c.args)
	}

	bad := filepath.Join(t.TempDir(), "scheduler_config.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"_class_name": "KarrasVeScheduler"}`), 0o644))
	status, _, errOut := sd(t, "schedule", "--scheduler-config", bad, "--steps", "10")
	require.Equal(t, 1, status)
	require.Contains(t, errOut, bad)
	require.Contains(t, errOut, `unknown scheduler class "KarrasVeScheduler"`)

	// Help works and lists the flags.
	var buf bytes.Buffer
	status = run(t.Context(), []string{"schedule", "-h"}, &buf, &buf)
	require.Equal(t, 0, status)
	require.Contains(t, buf.String(), "--scheduler-config")
}

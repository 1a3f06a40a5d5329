package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// The JSON contract of sd bench, on the cheapest component.
func TestBenchJSON(t *testing.T) {
	t.Setenv("SDGO_BENCH_CACHE", t.TempDir()) // the synthetic checkpoint goes there
	status, out, stderr := sd(t, "bench", "--arch", "sd15", "--component", "text", "--iters", "1", "--json")
	require.Equal(t, 0, status, stderr)
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &m))
	for _, k := range []string{"arch", "component", "size", "batch", "device", "threads", "iters", "ms_median", "ms_min", "gflop", "gflops", "peak_rss_mb"} {
		require.Contains(t, m, k)
	}
	require.Len(t, m, 12)
	require.Equal(t, "text", m["component"])
	require.Positive(t, m["ms_median"])
	require.InDelta(t, 2*(4*768*768*77+2*77*77*768+2*768*3072*77)*12/1e9, m["gflop"], 1e-9)

	status, _, stderr = sd(t, "bench", "--arch", "sd3")
	require.Equal(t, 2, status)
	require.Contains(t, stderr, `unknown arch "sd3"`)
	status, _, stderr = sd(t, "bench", "--component", "lora", "--iters", "1")
	require.Equal(t, 1, status)
	require.Contains(t, stderr, `unknown component "lora"`)
}

// --profile is for CUDA devices: on the CPU it is a usage error, not silently
// ignored.
func TestBenchProfileNeedsCUDA(t *testing.T) {
	status, _, stderr := sd(t, "bench", "--component", "text", "--iters", "1", "--profile")
	require.Equal(t, 2, status, stderr)
	require.Contains(t, stderr, "--profile times the operations of a cuda device")
}

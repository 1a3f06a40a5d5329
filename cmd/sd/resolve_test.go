package main

import (
	"testing"

	"github.com/sdgo/sdgo/diffusion/hub/hubtest"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/stretchr/testify/require"
)

// Repository ids work wherever a model path does: info, schedule, tokenize.
func TestCommandsTakeRepoIDs(t *testing.T) {
	srv := hubtest.NewServer(t)
	srv.AddRepo("tiny/sdxl", hubtest.FilesFromDir(t, fixture.Path(t, "models/sdxl"))...)
	t.Setenv("HF_ENDPOINT", srv.URL)
	t.Setenv("HF_HOME", t.TempDir())
	t.Setenv("HF_HUB_CACHE", "")
	status, out, stderr := sd(t, "info", "tiny/sdxl")
	require.Equal(t, 0, status, stderr)
	require.Contains(t, out, "SDXL")
	status, out, stderr = sd(t, "schedule", "--model", "tiny/sdxl", "--steps", "4", "--json")
	require.Equal(t, 0, status, stderr)
	require.Contains(t, out, `"class":"EulerDiscreteScheduler"`)
	status, out, stderr = sd(t, "tokenize", "--model", "tiny/sdxl", "--json", "a cat")
	require.Equal(t, 0, status, stderr)
	require.Contains(t, out, `"tokenizer_2"`)
}

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/sdgo/sdgo/diffusion/model"
	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/stretchr/testify/require"
)

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// sameFileTensors checks that two safetensors files hold the same tensors,
// byte for byte.
func sameFileTensors(t *testing.T, want, got string) {
	t.Helper()
	a, err := safetensors.Open(want)
	require.NoError(t, err)
	defer a.Close()
	b, err := safetensors.Open(got)
	require.NoError(t, err)
	defer b.Close()
	require.Equal(t, a.Names(), b.Names())
	for _, n := range a.Names() {
		ai, _ := a.Info(n)
		bi, _ := b.Info(n)
		require.Equal(t, ai.DType, bi.DType, n)
		require.Equal(t, ai.Shape, bi.Shape, n)
		ab, err := a.Bytes(n)
		require.NoError(t, err)
		bb, err := b.Bytes(n)
		require.NoError(t, err)
		require.True(t, bytes.Equal(ab, bb), "%s: bytes differ", n)
	}
}

func TestConvertSingleToFolderF16(t *testing.T) {
	dir := fixture.Path(t, "models/sd15")
	file := fixture.Path(t, "models/sd15.single.safetensors")
	out := filepath.Join(t.TempDir(), "sd15-f16")
	status, stdout, stderr := sd(t, "convert", file, out, "--config", dir, "--dtype", "f16")
	require.Equal(t, 0, status, stderr)
	require.Contains(t, stdout, "wrote "+out+" as a diffusers folder (SD 1.x)")
	require.Contains(t, stdout, "974 tensors")
	require.Contains(t, stdout, "F16, 52 converted")
	require.Contains(t, stdout, filepath.Join(out, "text_encoder", "model.safetensors"))

	m, err := model.Load(out, model.Options{})
	require.NoError(t, err)
	defer m.Close()
	require.Equal(t, model.SD1, m.Family)
	for _, p := range m.Parts() {
		for _, n := range p.Weights.Names() {
			info, _ := p.Weights.Info(n)
			require.Equal(t, safetensors.F16, info.DType, "%s %s", p.Name, n)
		}
	}
	require.Equal(t, filepath.Join(out, "tokenizer"), m.TextEncoders[0].Tokenizer)

	// Back to a single file (chosen by DST's name), in JSON.
	single := filepath.Join(t.TempDir(), "back.safetensors")
	status, stdout, stderr = sd(t, "convert", out, single, "--json", "--dtype", "f32")
	require.Equal(t, 0, status, stderr)
	var r convertReport
	require.NoError(t, json.Unmarshal([]byte(stdout), &r))
	require.Equal(t, single, r.Path)
	require.Equal(t, "single", r.To)
	require.Equal(t, "sd1", r.Family)
	require.Equal(t, "f32", r.DType)
	require.Equal(t, []string{single}, r.Files)
	require.Equal(t, 974, r.Tensors)
	require.Equal(t, 974, r.Converted)
	require.Equal(t, map[string]int64{"F32": r.Bytes / 4}, r.DTypes)
	require.NotNil(t, r.Notes)
}

// A folder to a single file reproduces the fixture's single file; --to
// diffusers from a folder rewrites it (here with the same dtypes).
func TestConvertFolderToSingle(t *testing.T) {
	for _, name := range []string{"sd21-v", "sdxl"} {
		dir := fixture.Path(t, "models/"+name)
		tmp := t.TempDir()
		out := filepath.Join(tmp, name+".safetensors")
		status, _, stderr := sd(t, "convert", "--to", "single", dir, out)
		require.Equal(t, 0, status, stderr)
		sameFileTensors(t, fixture.Path(t, "models/"+name+".single.safetensors"), out)

		copyDir := filepath.Join(tmp, "copy")
		status, _, stderr = sd(t, "convert", dir, copyDir, "--to", "diffusers", "--quiet")
		require.Equal(t, 0, status, stderr)
		sameFileTensors(t, filepath.Join(dir, "vae", "diffusion_pytorch_model.safetensors"), filepath.Join(copyDir, "vae", "diffusion_pytorch_model.safetensors"))
		require.Equal(t, []string{"copy", name + ".safetensors"}, dirEntries(t, tmp))
	}
}

func TestConvertErrors(t *testing.T) {
	dir := fixture.Path(t, "models/sd15")
	file := fixture.Path(t, "models/sd15.single.safetensors")
	tmp := t.TempDir()

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"convert"}, "want SRC and DST, got 0 arguments"},
		{[]string{"convert", dir}, "want SRC and DST, got 1 arguments"},
		{[]string{"convert", dir, filepath.Join(tmp, "x"), "--dtype", "int8"}, `--dtype "int8" (want keep, f16, bf16 or f32)`},
		{[]string{"convert", dir, filepath.Join(tmp, "x"), "--to", "ckpt"}, `--to "ckpt" (want diffusers or single)`},
		{[]string{"convert", dir, filepath.Join(tmp, "x.safetensors"), "--to", "diffusers"}, "named like a file"},
		{[]string{"convert", dir, filepath.Join(tmp, "x.ckpt"), "--to", "single"}, "want a name ending in .safetensors"},
		{[]string{"convert", dir, filepath.Join(tmp, "x"), "--bogus"}, "bogus"},
	} {
		status, _, stderr := sd(t, tc.args...)
		require.Equal(t, 2, status, "%v: %s", tc.args, stderr)
		require.Contains(t, stderr, tc.want, tc.args)
	}

	// SRC missing, or not a model.
	missing := filepath.Join(tmp, "nope.safetensors")
	status, _, stderr := sd(t, "convert", missing, filepath.Join(tmp, "x"))
	require.Equal(t, 1, status)
	require.Contains(t, stderr, missing)
	text := filepath.Join(tmp, "notes.txt")
	require.NoError(t, os.WriteFile(text, []byte("hello"), 0o644))
	status, _, stderr = sd(t, "convert", text, filepath.Join(tmp, "x"))
	require.Equal(t, 1, status)
	require.Contains(t, stderr, `unknown file type ".txt"`)
	// A single file without --config is taken as the real SD 1.5 architecture,
	// which the tiny weights do not fit.
	status, _, stderr = sd(t, "convert", file, filepath.Join(tmp, "x"))
	require.Equal(t, 1, status)
	require.Contains(t, stderr, "standard SD 1.x architecture")

	// DST unwritable: its folder is a file.
	bad := filepath.Join(text, "out")
	status, _, stderr = sd(t, "convert", dir, bad)
	require.Equal(t, 1, status)
	require.Contains(t, stderr, bad)

	// DST exists: refused without --force, replaced with it.
	dst := filepath.Join(tmp, "out")
	status, _, stderr = sd(t, "convert", dir, dst)
	require.Equal(t, 0, status, stderr)
	status, _, stderr = sd(t, "convert", file, dst, "--config", dir)
	require.Equal(t, 1, status)
	require.Contains(t, stderr, dst+" already exists (--force replaces it)")
	status, _, stderr = sd(t, "convert", file, dst, "--config", dir, "--force", "--dtype", "bf16")
	require.Equal(t, 0, status, stderr)
	m, err := model.Load(dst, model.Options{})
	require.NoError(t, err)
	info, _ := m.UNetWeights.Info("conv_in.weight")
	require.Equal(t, safetensors.BF16, info.DType)
	require.NoError(t, m.Close())

	// DST is the source.
	status, _, stderr = sd(t, "convert", dst, dst, "--force")
	require.Equal(t, 1, status)
	require.Contains(t, stderr, "holds the model's source")

	require.Equal(t, []string{"notes.txt", "out"}, dirEntries(t, tmp), "nothing half-written, no temporaries")
}

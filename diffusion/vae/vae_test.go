package vae

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/diffusion/weights"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/sdgo/sdgo/tensor"
	"github.com/stretchr/testify/require"
)

func requireClose(t *testing.T, what string, want, got []float32) {
	t.Helper()
	require.Len(t, got, len(want), what)
	scale := 1.0
	for _, w := range want {
		scale = math.Max(scale, math.Abs(float64(w)))
	}
	worst, at := 0.0, 0
	for i := range want {
		if d := math.Abs(float64(want[i]) - float64(got[i])); d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	require.LessOrEqual(t, worst, 1e-4*scale, "%s: max abs error %g at %d (want %g, got %g)", what, worst, at, want[at], got[at])
}

func refTensor(t *testing.T, b tensor.Backend, f *safetensors.File, name string) *tensor.Tensor {
	t.Helper()
	v, err := f.Float32s(name)
	require.NoError(t, err)
	info, _ := f.Info(name)
	x, err := tensor.FromFloat32(b, v, info.Shape...)
	require.NoError(t, err)
	return x
}

func loadFixture(t *testing.T, name string) *Model {
	t.Helper()
	dir := fixture.Path(t, "models/"+name+"/vae")
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	require.NoError(t, err)
	src, err := weights.OpenSafetensors(filepath.Join(dir, "diffusion_pytorch_model.safetensors"))
	require.NoError(t, err)
	t.Cleanup(func() { src.Close() })
	m, err := Load(weights.Params(src, tensor.NewCPU()), cfg)
	require.NoError(t, err)
	t.Cleanup(m.Release)
	return m
}

// Every fixture VAE: encoder mean and log-variance, decoder output.
func TestVAEMatchesDiffusers(t *testing.T) {
	for _, name := range []string{"sd15", "sd15-inpaint", "sd21-v", "sdxl", "sdxl-inpaint"} {
		t.Run(name, func(t *testing.T) {
			m := loadFixture(t, name)
			cpu := tensor.NewCPU()
			ref, err := safetensors.Open(fixture.Path(t, "ref/"+name+".vae.safetensors"))
			require.NoError(t, err)
			defer ref.Close()
			mean, logvar, err := m.Encode(refTensor(t, cpu, ref, "image"))
			require.NoError(t, err)
			for name, got := range map[string]*tensor.Tensor{"mean": mean, "logvar": logvar} {
				want, err := ref.Float32s(name)
				require.NoError(t, err)
				g, err := got.Float32s()
				require.NoError(t, err)
				requireClose(t, name, want, g)
			}
			dec, err := m.Decode(refTensor(t, cpu, ref, "latent"))
			require.NoError(t, err)
			want, err := ref.Float32s("decoded")
			require.NoError(t, err)
			got, err := dec.Float32s()
			require.NoError(t, err)
			requireClose(t, "decoded", want, got)
		})
	}
}

func TestVAERejectsBadInput(t *testing.T) {
	m := loadFixture(t, "sd15")
	x, err := tensor.Zeros(tensor.NewCPU(), tensor.F32, 1, 4, 16, 16)
	require.NoError(t, err)
	_, _, err = m.Encode(x)
	require.ErrorContains(t, err, "vae: image F32[1 4 16 16], want [B 3 H W]")
	y, err := tensor.Zeros(tensor.NewCPU(), tensor.F32, 1, 3, 8, 8)
	require.NoError(t, err)
	_, err = m.Decode(y)
	require.ErrorContains(t, err, "vae: latent F32[1 3 8 8], want [B 4 h w]")
}

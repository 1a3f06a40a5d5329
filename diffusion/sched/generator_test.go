package sched

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sdgo/sdgo/diffusion/rng"
	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/sdgo/sdgo/internal/pyjson"
	"github.com/stretchr/testify/require"
)

// Every scheduler fixture again, with every random number drawn by sdgo's own
// torch-compatible generator from the case's seed, in the order the metadata
// gives (x_init, each step's noise, then add_noise's x0 and noise), instead of
// the recorded draws: the draws come out identical, and so does every sample.
func TestFixturesWithOwnGenerator(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(fixture.Dir(), "sched", "*.safetensors"))
	require.NoError(t, err)
	require.Len(t, files, 26)
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".safetensors")
		t.Run(name, func(t *testing.T) {
			f, err := safetensors.Open(path)
			require.NoError(t, err)
			defer f.Close()
			var meta struct {
				Seed      uint64 `json:"seed"`
				Generator string `json:"generator"`
			}
			require.NoError(t, pyjson.Unmarshal([]byte(f.Metadata()["case"]), &meta))
			require.Contains(t, meta.Generator, "torch.Generator('cpu').manual_seed(seed)")
			c := readCase(t, f)
			cfg, err := ConfigFor(c.Class, c.Config)
			require.NoError(t, err)
			s, err := New(c.Class, cfg)
			require.NoError(t, err)
			for k, v := range c.StepKwargs {
				require.Equal(t, "eta", k)
				require.NoError(t, s.(EtaScheduler).SetEta(v))
			}
			require.NoError(t, s.SetTimesteps(c.Steps))
			gen := rng.NewCPU(meta.Seed)

			wantInit := tensor(t, f, "x_init")
			x := gen.Randn(len(wantInit))
			sigma := float32(s.InitNoiseSigma())
			for i := range x {
				x[i] *= sigma
			}
			requireClose(t, x, wantInit, 1e-6, "x_init from the seed")

			for j, ts := range s.Timesteps() {
				prefix := fmt.Sprintf("step%d.", j)
				out := tensor(t, f, prefix+"model_output")
				drew := 0
				noise := NoiseFunc(func(n int) []float32 {
					drew++
					v := gen.Randn(n)
					if f.Has(prefix + "noise") {
						require.Equal(t, tensor(t, f, prefix+"noise"), v, "step %d: our draw differs from the reference's", j)
					}
					return v
				})
				prev, err := s.Step(out, ts, x, noise)
				require.NoError(t, err, "step %d", j)
				require.Equal(t, f.Has(prefix+"noise"), drew > 0, "step %d draws noise exactly when the reference did", j)
				requireClose(t, prev, tensor(t, f, prefix+"prev_sample"), schedTol, prefix+"prev_sample")
				x = prev
			}
			require.Equal(t, tensor(t, f, "add_noise.x0"), gen.Randn(len(wantInit)), "add_noise.x0 from the seed")
			require.Equal(t, tensor(t, f, "add_noise.noise"), gen.Randn(len(wantInit)), "add_noise.noise from the seed")
		})
	}
}

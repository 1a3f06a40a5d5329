package unet

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sdgo/sdgo/diffusion/weights"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/sdgo/sdgo/nn"
	"github.com/sdgo/sdgo/tensor"
	"github.com/stretchr/testify/require"
)

// Layers names every Linear and Conv2d of the fixture UNets as their weights
// are named in the file (every weight of rank 2 or 4 is one), each once and
// holding that weight.
func TestLayersAreNamedAsTheWeights(t *testing.T) {
	for _, name := range []string{"sd15", "sd21-v", "sdxl"} {
		t.Run(name, func(t *testing.T) {
			cpu := tensor.NewCPU()
			dir := fixture.Path(t, "models/"+name+"/unet")
			cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
			require.NoError(t, err)
			src, err := weights.OpenSafetensors(filepath.Join(dir, "diffusion_pytorch_model.safetensors"))
			require.NoError(t, err)
			defer src.Close()
			m, err := Load(weights.Params(src, cpu), cfg, Options{})
			require.NoError(t, err)
			defer m.Release()

			want := map[string]bool{}
			for _, n := range src.Names() {
				info, _ := src.Info(n)
				if mod, ok := strings.CutSuffix(n, ".weight"); ok && len(info.Shape) >= 2 {
					want[mod] = true
				}
			}
			got := map[string]bool{}
			for mod, l := range m.Layers() {
				require.False(t, got[mod], "%s named twice", mod)
				got[mod] = true
				require.True(t, want[mod], "%s is not a weight of the file", mod)
				var w *tensor.Tensor
				switch l := l.(type) {
				case *nn.Linear:
					w = l.Weight
				case *nn.Conv2d:
					w = l.Weight
				default:
					t.Fatalf("%s: %T", mod, l)
				}
				file, err := src.Load(mod+".weight", cpu)
				require.NoError(t, err)
				require.Equal(t, file.Shape(), l.WeightShape(), mod)
				fv, err := file.Float32s()
				require.NoError(t, err)
				lv, err := w.Float32s()
				require.NoError(t, err)
				require.Equal(t, fv, lv, "%s holds its own weight", mod)
				file.Release()
			}
			require.Equal(t, want, got)

			// The iterator stops when asked.
			n := 0
			for range m.Layers() {
				if n++; n == 3 {
					break
				}
			}
			require.Equal(t, 3, n)
		})
	}
}

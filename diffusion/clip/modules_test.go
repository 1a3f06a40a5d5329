package clip

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

// Layers names every Linear of the fixture text encoders as their weights are
// named in the file (every weight of rank 2 but the embeddings), each once
// and holding that weight.
func TestLayersAreNamedAsTheWeights(t *testing.T) {
	for _, name := range []string{"sd15/text_encoder", "sdxl/text_encoder_2"} {
		t.Run(name, func(t *testing.T) {
			cpu := tensor.NewCPU()
			dir := fixture.Path(t, "models/"+name)
			cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
			require.NoError(t, err)
			src, err := weights.OpenSafetensors(filepath.Join(dir, "model.safetensors"))
			require.NoError(t, err)
			defer src.Close()
			m, err := Load(weights.Params(src, cpu), cfg)
			require.NoError(t, err)
			defer m.Release()

			want := map[string]bool{}
			for _, n := range src.Names() {
				info, _ := src.Info(n)
				if mod, ok := strings.CutSuffix(n, ".weight"); ok && len(info.Shape) == 2 && !strings.Contains(mod, "embeddings.") {
					want[mod] = true
				}
			}
			require.Equal(t, cfg.WithProjection(), want["text_projection"])
			got := map[string]bool{}
			for mod, l := range m.Layers() {
				require.False(t, got[mod], "%s named twice", mod)
				got[mod] = true
				lin, ok := l.(*nn.Linear)
				require.True(t, ok, "%s: %T", mod, l)
				file, err := src.Load(mod+".weight", cpu)
				require.NoError(t, err)
				require.Equal(t, file.Shape(), lin.WeightShape(), mod)
				fv, err := file.Float32s()
				require.NoError(t, err)
				lv, err := lin.Weight.Float32s()
				require.NoError(t, err)
				require.Equal(t, fv, lv, "%s holds its own weight", mod)
				file.Release()
			}
			require.Equal(t, want, got)
		})
	}
}

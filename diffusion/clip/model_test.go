package clip

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/diffusion/weights"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/sdgo/sdgo/internal/refcheck"
	"github.com/stretchr/testify/require"
)

func TestTextModelMatchesTransformers(t *testing.T) {
	cases := []struct{ ref, model string }{
		{"sd15.text_encoder", "sd15/text_encoder"},
		{"sd15-inpaint.text_encoder", "sd15-inpaint/text_encoder"},
		{"sd21-v.text_encoder", "sd21-v/text_encoder"},
		{"sdxl.text_encoder", "sdxl/text_encoder"},
		{"sdxl.text_encoder_2", "sdxl/text_encoder_2"},
		{"sdxl-inpaint.text_encoder_2", "sdxl-inpaint/text_encoder_2"},
	}
	cpu := fixture.Backend(t)
	for _, c := range cases {
		t.Run(c.ref, func(t *testing.T) {
			ref, err := safetensors.Open(fixture.Path(t, "ref/"+c.ref+".safetensors"))
			require.NoError(t, err)
			defer ref.Close()
			var meta struct{ Model string }
			require.NoError(t, json.Unmarshal([]byte(ref.Metadata()["case"]), &meta))
			require.Equal(t, "models/"+c.model, meta.Model)

			dir := fixture.Path(t, "models/"+c.model)
			cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
			require.NoError(t, err)
			src, err := weights.OpenSafetensors(filepath.Join(dir, "model.safetensors"))
			require.NoError(t, err)
			defer src.Close()
			m, err := Load(weights.Params(src, cpu), cfg)
			require.NoError(t, err)
			defer m.Release()

			ids64, err := ref.Int64s("input_ids")
			require.NoError(t, err)
			ids := make([]int, len(ids64))
			for i, v := range ids64 {
				ids[i] = int(v)
			}
			// A batch of two copies checks that batch items do not mix.
			out, err := m.Forward([][]int{ids, ids})
			require.NoError(t, err)
			defer out.Release()

			hs, err := ref.Float32s("hidden_states")
			require.NoError(t, err)
			per := len(ids) * cfg.HiddenSize
			require.Len(t, out.HiddenStates, cfg.NumHiddenLayers+1)
			for i, h := range out.HiddenStates {
				got, err := h.Float32s()
				require.NoError(t, err)
				refcheck.RequireClose(t, fmt.Sprintf("hidden_states[%d] batch 0", i), hs[i*per:(i+1)*per], got[:per], 0)
				refcheck.RequireClose(t, fmt.Sprintf("hidden_states[%d] batch 1", i), hs[i*per:(i+1)*per], got[per:], 0)
			}
			last, err := ref.Float32s("last_hidden_state")
			require.NoError(t, err)
			got, err := out.LastHiddenState.Float32s()
			require.NoError(t, err)
			refcheck.RequireClose(t, "last_hidden_state", last, got[:per], 0)
			if cfg.WithProjection() {
				want, err := ref.Float32s("text_embeds")
				require.NoError(t, err)
				got, err := out.TextEmbeds.Float32s()
				require.NoError(t, err)
				refcheck.RequireClose(t, "text_embeds", want, got[:len(want)], 0)
				refcheck.RequireClose(t, "text_embeds batch 1", want, got[len(want):], 0)
			} else {
				want, err := ref.Float32s("pooler_output")
				require.NoError(t, err)
				got, err := out.Pooled.Float32s()
				require.NoError(t, err)
				refcheck.RequireClose(t, "pooler_output", want, got[:len(want)], 0)
			}
		})
	}
}

func TestTextModelRejectsBadInput(t *testing.T) {
	dir := fixture.Path(t, "models/sd15/text_encoder")
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	require.NoError(t, err)
	src, err := weights.OpenSafetensors(filepath.Join(dir, "model.safetensors"))
	require.NoError(t, err)
	defer src.Close()
	m, err := Load(weights.Params(src, fixture.Backend(t)), cfg)
	require.NoError(t, err)
	defer m.Release()
	_, err = m.Forward(nil)
	require.ErrorContains(t, err, "empty batch")
	_, err = m.Forward([][]int{make([]int, 78)})
	require.ErrorContains(t, err, "sequence of 78 ids")
	_, err = m.Forward([][]int{{1, 2}, {1}})
	require.ErrorContains(t, err, "sequence 1 has 1 ids")
	_, err = m.Forward([][]int{{1, 5000}})
	require.ErrorContains(t, err, "id 5000 at sequence 0 position 1")

	bad := cfg
	bad.HiddenSize = 48
	_, err = Load(weights.Params(src, fixture.Backend(t)), bad)
	require.ErrorContains(t, err, "text_model.embeddings.token_embedding.weight: want [2014 48], file has [2014 32]")
}

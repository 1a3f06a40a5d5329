package unet

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/stretchr/testify/require"
)

func heads(c Config) []int {
	var h []int
	for i := range c.Levels() {
		h = append(h, c.Heads(i))
	}
	return h
}

func TestFixtureConfigs(t *testing.T) {
	sd15, err := LoadConfig(fixture.Path(t, "models/sd15/unet/config.json"))
	require.NoError(t, err)
	require.Equal(t, 4, sd15.InChannels)
	require.Equal(t, []int{8, 8, 8, 8}, heads(sd15), "attention_head_dim 8 means 8 heads at every level")
	require.Equal(t, 4, sd15.HeadDim(0))
	require.Equal(t, 32, sd15.CrossAttentionDimAt(3))
	require.False(t, sd15.UseLinearProjection)
	require.Equal(t, "UNetMidBlock2DCrossAttn", sd15.MidBlockType)
	require.Equal(t, []int{8}, []int(sd15.SampleSize))
	require.Empty(t, sd15.AdditionEmbedType)
	require.Equal(t, 128, sd15.TimeEmbedDim())
	require.True(t, sd15.HasCrossAttention(0))
	require.False(t, sd15.HasCrossAttention(3))
	require.False(t, sd15.UpHasCrossAttention(0))
	require.Equal(t, 3, sd15.UpLayers(0))

	inpaint, err := LoadConfig(fixture.Path(t, "models/sd15-inpaint/unet/config.json"))
	require.NoError(t, err)
	require.Equal(t, 9, inpaint.InChannels)

	sd21, err := LoadConfig(fixture.Path(t, "models/sd21-v/unet/config.json"))
	require.NoError(t, err)
	require.Equal(t, []int{2, 4, 8, 8}, heads(sd21))
	require.Equal(t, []int{16, 8, 4, 4}, []int{sd21.HeadDim(0), sd21.HeadDim(1), sd21.HeadDim(2), sd21.HeadDim(3)})
	require.Equal(t, 8, sd21.MidHeads())
	require.Equal(t, 2, sd21.UpHeads(3), "up block 3 is at the resolution of level 0")
	require.True(t, sd21.UseLinearProjection)
	require.True(t, sd21.UpcastAttention)

	xl, err := LoadConfig(fixture.Path(t, "models/sdxl/unet/config.json"))
	require.NoError(t, err)
	require.Equal(t, "text_time", xl.AdditionEmbedType)
	require.Equal(t, 8, xl.AdditionTimeEmbedDim)
	require.Equal(t, 80, xl.ProjectionClassEmbeddingsInputDim)
	require.Equal(t, 64, xl.MidCrossAttentionDim())
	require.Equal(t, []int{1, 2, 2}, []int{xl.TransformerLayers(0), xl.TransformerLayers(1), xl.TransformerLayers(2)})
	require.Equal(t, []int{2, 2, 1}, []int{xl.UpTransformerLayers(0), xl.UpTransformerLayers(1), xl.UpTransformerLayers(2)})
	require.Equal(t, 2, xl.MidTransformerLayers())
	require.Equal(t, []int{8, 4, 2}, []int{xl.UpHeads(0), xl.UpHeads(1), xl.UpHeads(2)})
}

func TestDefaultsNullsAndPrecedence(t *testing.T) {
	c, err := Parse("cfg", []byte(`{"_class_name": "UNet2DConditionModel"}`))
	require.NoError(t, err)
	require.Equal(t, Default(), c, "missing keys take diffusers' defaults")
	require.Equal(t, 1280, c.CrossAttentionDimAt(0))

	c, err = Parse("cfg", []byte(`{"mid_block_type": null, "norm_num_groups": null, "sample_size": null,
		"attention_head_dim": 8, "num_attention_heads": [4, 4, 8, 8], "only_cross_attention": [false, true, false, false],
		"reverse_transformer_layers_per_block": [3, 1, 1, 1], "block_out_channels": [32, 64, 64, 64],
		"sample_size": [8, 12]}`))
	require.NoError(t, err)
	require.Equal(t, "", c.MidBlockType, "null mid_block_type means no mid block, not the default")
	require.Equal(t, 0, c.NormNumGroups)
	require.Equal(t, []int{4, 4, 8, 8}, heads(c), "num_attention_heads takes precedence")
	require.Equal(t, 16, c.HeadDim(1))
	require.True(t, c.OnlyCrossAttentionAt(1))
	require.True(t, c.UpOnlyCrossAttention(2))
	require.Equal(t, 3, c.UpTransformerLayers(0))
	require.Equal(t, 1, c.TransformerLayers(3))
	h, w := c.Sample()
	require.Equal(t, []int{8, 12}, []int{h, w})

	// Python may write integral floats; Infinity must not break the reader.
	c, err = Parse("cfg", []byte(`{"attention_head_dim": 8.0, "something_new": Infinity}`))
	require.NoError(t, err)
	require.Equal(t, 8, c.Heads(2))
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"attention_head_dim": "eight"}`, `key "attention_head_dim": "eight": want an integer or a list of integers`},
		{`{"block_out_channels": 320}`, `key "block_out_channels": 320: want a list of integers`},
		{`{"use_linear_projection": "yes"}`, `key "use_linear_projection"`},
		{`{"_class_name": "AutoencoderKL"}`, `_class_name is "AutoencoderKL"; want "UNet2DConditionModel"`},
		{`{"block_out_channels": [320, 640]}`, `4 down_block_types for 2 block_out_channels`},
		{`{"attention_head_dim": [8, 8]}`, `attention_head_dim has 2 values [8 8]; want one, or one per level (4)`},
		{`{"attention_head_dim": 7}`, `320 channels are not divisible into 7 attention heads`},
		{`{"down_block_types": ["SimpleCrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D"]}`, `down_block_types[0] "SimpleCrossAttnDownBlock2D" is not supported`},
		{`{"addition_embed_type": "text_time"}`, `addition_embed_type text_time needs positive addition_time_embed_dim`},
		{`{"block_out_channels": [320, 640, 1280, 1000]}`, `block_out_channels[3] = 1000 is not a multiple of norm_num_groups 32`},
		{`{"in_channels": 4,`, `cfg.json: not a JSON object`},
		{`[1, 2]`, `not a JSON object`},
	} {
		_, err := Parse("cfg.json", []byte(tc.json))
		require.Error(t, err, tc.json)
		require.Contains(t, err.Error(), tc.want, tc.json)
		require.Contains(t, err.Error(), "cfg.json", "errors name the file")
	}
	_, err := LoadConfig(filepath.Join(t.TempDir(), "missing.json"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestStandardConfigs(t *testing.T) {
	for name, c := range map[string]Config{
		"SD15": SD15(), "SD15Inpaint": SD15Inpaint(), "SD21": SD21(), "SD21Base": SD21Base(),
		"SD2Inpaint": SD2Inpaint(), "SDXL": SDXL(), "SDXLInpaint": SDXLInpaint(), "SDXLRefiner": SDXLRefiner(),
	} {
		require.NoError(t, c.Validate(), name)
		// Written and read back, a config is unchanged: the JSON is a complete
		// diffusers config.json.
		b, err := json.Marshal(c)
		require.NoError(t, err, name)
		back, err := Parse(name, b)
		require.NoError(t, err, name)
		require.Equal(t, c, back, name)
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		require.Contains(t, m, "num_attention_heads")
		require.Nil(t, m["num_attention_heads"], "nullable keys are written as null")
		require.Equal(t, "UNet2DConditionModel", m["_class_name"])
	}
	require.Equal(t, []int{8, 8, 8, 8}, heads(SD15()))
	require.Equal(t, 40, SD15().HeadDim(0))
	require.Equal(t, 9, SD15Inpaint().InChannels)
	require.Equal(t, []int{5, 10, 20, 20}, heads(SD21()))
	require.Equal(t, 64, SD21().HeadDim(3), "SD 2.x heads are 64 wide")
	require.Equal(t, 1024, SD21().CrossAttentionDimAt(0))
	require.True(t, SD21().UpcastAttention)
	require.False(t, SD21Base().UpcastAttention)
	require.Equal(t, 9, SD2Inpaint().InChannels)
	xl := SDXL()
	require.Equal(t, 1280+6*xl.AdditionTimeEmbedDim, xl.ProjectionClassEmbeddingsInputDim)
	require.Equal(t, 10, xl.MidTransformerLayers())
	require.Equal(t, []int{64, 64, 64}, []int{xl.HeadDim(0), xl.HeadDim(1), xl.HeadDim(2)})
	ref := SDXLRefiner()
	require.Equal(t, 1280+5*ref.AdditionTimeEmbedDim, ref.ProjectionClassEmbeddingsInputDim)
	require.Equal(t, []int{64, 64, 64, 64}, []int{ref.HeadDim(0), ref.HeadDim(1), ref.HeadDim(2), ref.HeadDim(3)})
	require.Equal(t, 9, SDXLInpaint().InChannels)

	// Fresh values: changing one does not change the next.
	a := SDXL()
	a.BlockOutChannels[0] = 1
	a.AttentionHeadDim[0] = 1
	require.Equal(t, 320, SDXL().BlockOutChannels[0])
	require.Equal(t, 5, SDXL().Heads(0))
	// Clone is deep.
	b := xl.Clone()
	b.TransformerLayersPerBlock[2] = 3
	require.Equal(t, 10, xl.TransformerLayers(2))
}

func TestIntsJSON(t *testing.T) {
	var v Ints
	require.NoError(t, json.Unmarshal([]byte(`5`), &v))
	require.Equal(t, Ints{5}, v)
	require.NoError(t, json.Unmarshal([]byte(`[1, 2]`), &v))
	require.Equal(t, Ints{1, 2}, v)
	require.Error(t, json.Unmarshal([]byte(`[[1], [2]]`), &v))
	require.Error(t, json.Unmarshal([]byte(`2.5`), &v))
	b, _ := json.Marshal(Ints{7})
	require.Equal(t, "7", string(b))
	b, _ = json.Marshal(Ints(nil))
	require.Equal(t, "null", string(b))
	var bs Bools
	require.NoError(t, json.Unmarshal([]byte(`true`), &bs))
	require.Equal(t, Bools{true}, bs)
	require.Error(t, json.Unmarshal([]byte(`"x"`), &bs))
}

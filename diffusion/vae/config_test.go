package vae

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/stretchr/testify/require"
)

func TestFixtureConfigs(t *testing.T) {
	sd15, err := LoadConfig(fixture.Path(t, "models/sd15/vae/config.json"))
	require.NoError(t, err)
	require.Equal(t, []int{32, 32, 32, 32}, sd15.BlockOutChannels)
	require.Equal(t, 2, sd15.LayersPerBlock)
	require.Equal(t, 4, sd15.LatentChannels)
	require.Equal(t, 0.18215, sd15.ScalingFactor)
	require.Equal(t, 0.0, sd15.ShiftFactor, "null shift_factor: none")
	require.Nil(t, sd15.LatentsMean)
	require.True(t, sd15.ForceUpcast)
	require.True(t, sd15.UseQuantConv)
	require.True(t, sd15.UsePostQuantConv)
	require.True(t, sd15.MidBlockAddAttention)
	require.Equal(t, 8, sd15.DownscaleFactor())
	h, w := sd15.SampleSize.HW()
	require.Equal(t, []int{64, 64}, []int{h, w})

	xl, err := LoadConfig(fixture.Path(t, "models/sdxl/vae/config.json"))
	require.NoError(t, err)
	require.Equal(t, 0.13025, xl.ScalingFactor)
}

func TestDefaultsAndNulls(t *testing.T) {
	c, err := Parse("cfg", []byte(`{}`))
	require.NoError(t, err)
	require.Equal(t, Default(), c)

	// Older configs lack the newer keys; they take diffusers' defaults.
	c, err = Parse("cfg", []byte(`{"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2,
		"down_block_types": ["DownEncoderBlock2D","DownEncoderBlock2D","DownEncoderBlock2D","DownEncoderBlock2D"],
		"up_block_types": ["UpDecoderBlock2D","UpDecoderBlock2D","UpDecoderBlock2D","UpDecoderBlock2D"],
		"sample_size": [512, 768], "use_quant_conv": null, "latents_mean": [0.1, 0.2, 0.3, 0.4], "latents_std": [1, 1, 1, 1]}`))
	require.NoError(t, err)
	require.True(t, c.ForceUpcast)
	require.True(t, c.MidBlockAddAttention)
	require.False(t, c.UseQuantConv, "null zeroes the field")
	require.Equal(t, 0.18215, c.ScalingFactor)
	h, w := c.SampleSize.HW()
	require.Equal(t, []int{512, 768}, []int{h, w})
	require.Equal(t, []float64{0.1, 0.2, 0.3, 0.4}, c.LatentsMean)
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"latent_channels": "4"}`, `key "latent_channels": "4": want an integer`},
		{`{"sample_size": "big"}`, `key "sample_size": "big": want an integer or [height, width]`},
		{`{"_class_name": "UNet2DConditionModel"}`, `_class_name is "UNet2DConditionModel"; want "AutoencoderKL"`},
		{`{"block_out_channels": [64, 64]}`, `1 down_block_types for 2 block_out_channels`},
		{`{"block_out_channels": [48]}`, `block_out_channels[0] = 48 must be a positive multiple of norm_num_groups 32`},
		{`{"down_block_types": ["DownBlock2D"]}`, `down_block_types[0] "DownBlock2D" is not supported`},
		{`{"scaling_factor": 0}`, `scaling_factor 0 must be positive`},
		{`{"latents_mean": [0, 0, 0, 0]}`, `latents_mean has 4 values but latents_std 0`},
		{`{"in_channels": 3`, `not a JSON object`},
	} {
		_, err := Parse("vae/config.json", []byte(tc.json))
		require.Error(t, err, tc.json)
		require.Contains(t, err.Error(), tc.want, tc.json)
		require.Contains(t, err.Error(), "vae/config.json", "errors name the file")
	}
	_, err := LoadConfig(filepath.Join(t.TempDir(), "missing.json"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestStandardConfigs(t *testing.T) {
	for name, c := range map[string]Config{"SD": SD(), "SDXL": SDXL()} {
		require.NoError(t, c.Validate(), name)
		b, err := json.Marshal(c)
		require.NoError(t, err)
		back, err := Parse(name, b)
		require.NoError(t, err)
		require.Equal(t, c, back, name)
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		require.Contains(t, m, "shift_factor")
		require.Nil(t, m["shift_factor"], "nullable keys are written as null")
		require.Equal(t, []any{128.0, 256.0, 512.0, 512.0}, m["block_out_channels"])
	}
	require.Equal(t, 0.18215, SD().ScalingFactor)
	require.Equal(t, 0.13025, SDXL().ScalingFactor)
	require.Equal(t, 8, SDXL().DownscaleFactor())
	a := SD()
	a.BlockOutChannels[0] = 1
	require.Equal(t, 128, SD().BlockOutChannels[0], "standard configs are fresh values")
	b := a.Clone()
	b.BlockOutChannels[1] = 1
	require.Equal(t, 256, a.BlockOutChannels[1], "Clone is deep")
}

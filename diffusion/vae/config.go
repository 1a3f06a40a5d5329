// Package vae implements diffusers' AutoencoderKL, the variational autoencoder
// that maps images to Stable Diffusion's latents and back. This file holds its
// configuration: the config.json that diffusers writes, read with the same keys,
// and the standard configurations of the released models.
package vae

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"

	"github.com/sdgo/sdgo/internal/pyjson"
)

// ClassName is the diffusers class these configs describe.
const ClassName = "AutoencoderKL"

// Config is an AutoencoderKL's architecture, with the keys of the config.json
// that diffusers writes. Keys missing from a file take diffusers' defaults (see
// Default); a JSON null sets the field's zero value, which means "none" for the
// nullable keys (tagged omitempty).
type Config struct {
	ClassName        string `json:"_class_name,omitempty"`
	DiffusersVersion string `json:"_diffusers_version,omitempty"`

	InChannels       int      `json:"in_channels"`
	OutChannels      int      `json:"out_channels"`
	DownBlockTypes   []string `json:"down_block_types"`
	UpBlockTypes     []string `json:"up_block_types"`
	BlockOutChannels []int    `json:"block_out_channels"`
	LayersPerBlock   int      `json:"layers_per_block"`
	ActFn            string   `json:"act_fn"`
	LatentChannels   int      `json:"latent_channels"`
	NormNumGroups    int      `json:"norm_num_groups"`
	// SampleSize is the image size the model was trained at, in pixels;
	// informative only.
	SampleSize Size `json:"sample_size,omitempty"`
	// ScalingFactor multiplies the encoder's latents before diffusion and
	// divides them before decoding (0.18215 for SD 1.x/2.x, 0.13025 for SDXL).
	ScalingFactor float64 `json:"scaling_factor"`
	// ShiftFactor is subtracted from latents before scaling (0 = null: none).
	ShiftFactor float64 `json:"shift_factor,omitempty"`
	// LatentsMean and LatentsStd, when set, normalise latents per channel
	// instead of ScalingFactor alone (Playground v2.5 style).
	LatentsMean []float64 `json:"latents_mean,omitempty"`
	LatentsStd  []float64 `json:"latents_std,omitempty"`
	// ForceUpcast asks for the VAE to run in float32 when the rest runs in
	// float16 (the SD and SDXL VAEs overflow in float16).
	ForceUpcast          bool `json:"force_upcast"`
	UseQuantConv         bool `json:"use_quant_conv"`
	UsePostQuantConv     bool `json:"use_post_quant_conv"`
	MidBlockAddAttention bool `json:"mid_block_add_attention"`
}

// Size is an image size that diffusers writes either as one integer (square)
// or as [height, width].
type Size []int

// UnmarshalJSON reads a number or a list of numbers.
func (s *Size) UnmarshalJSON(b []byte) error {
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*s = Size{n}
		return nil
	}
	var l []int
	if err := json.Unmarshal(b, &l); err != nil || len(l) < 1 || len(l) > 2 {
		return fmt.Errorf("want an integer or [height, width], got %s", b)
	}
	*s = l
	return nil
}

// MarshalJSON writes one value as a bare number.
func (s Size) MarshalJSON() ([]byte, error) {
	if len(s) == 1 {
		return json.Marshal(s[0])
	}
	if s == nil {
		return []byte("null"), nil
	}
	return json.Marshal([]int(s))
}

// HW returns the height and width (0, 0 when unset).
func (s Size) HW() (h, w int) {
	switch len(s) {
	case 1:
		return s[0], s[0]
	case 2:
		return s[0], s[1]
	}
	return 0, 0
}

// Default returns diffusers' defaults for AutoencoderKL (the values its
// constructor takes for keys missing from a config.json).
func Default() Config {
	return Config{
		ClassName:            ClassName,
		InChannels:           3,
		OutChannels:          3,
		DownBlockTypes:       []string{"DownEncoderBlock2D"},
		UpBlockTypes:         []string{"UpDecoderBlock2D"},
		BlockOutChannels:     []int{64},
		LayersPerBlock:       1,
		ActFn:                "silu",
		LatentChannels:       4,
		NormNumGroups:        32,
		SampleSize:           Size{32},
		ScalingFactor:        0.18215,
		ForceUpcast:          true,
		UseQuantConv:         true,
		UsePostQuantConv:     true,
		MidBlockAddAttention: true,
	}
}

// Parse reads a config.json's bytes; name is used in error messages. Missing
// keys take diffusers' defaults; the result is validated.
func Parse(name string, b []byte) (Config, error) {
	c := Default()
	if err := pyjson.DecodeFields(b, &c, describe); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	if c.ClassName != "" && c.ClassName != ClassName {
		return Config{}, fmt.Errorf("%s: _class_name is %q; want %q", name, c.ClassName, ClassName)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// LoadConfig reads and validates a VAE config.json.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("vae config: %w", err)
	}
	return Parse(path, b)
}

func describe(t reflect.Type) string {
	if t == reflect.TypeFor[Size]() {
		return "an integer or [height, width]"
	}
	return pyjson.DescribeType(t)
}

// MarshalJSON writes the config with diffusers' keys, in field order; nullable
// keys are written as null when zero, so that the output is a complete
// config.json.
func (c Config) MarshalJSON() ([]byte, error) {
	return pyjson.MarshalFields(c, "vae config", true)
}

// Validate checks that the config is consistent and describes an autoencoder
// of the kind Stable Diffusion uses.
func (c Config) Validate() error {
	n := len(c.BlockOutChannels)
	switch {
	case n == 0:
		return fmt.Errorf("block_out_channels is empty")
	case len(c.DownBlockTypes) != n:
		return fmt.Errorf("%d down_block_types for %d block_out_channels", len(c.DownBlockTypes), n)
	case len(c.UpBlockTypes) != n:
		return fmt.Errorf("%d up_block_types for %d block_out_channels", len(c.UpBlockTypes), n)
	case c.InChannels <= 0 || c.OutChannels <= 0 || c.LatentChannels <= 0:
		return fmt.Errorf("in_channels %d, out_channels %d and latent_channels %d must be positive", c.InChannels, c.OutChannels, c.LatentChannels)
	case c.LayersPerBlock <= 0:
		return fmt.Errorf("layers_per_block %d must be positive", c.LayersPerBlock)
	case c.NormNumGroups <= 0:
		return fmt.Errorf("norm_num_groups %d must be positive", c.NormNumGroups)
	case c.ScalingFactor <= 0:
		return fmt.Errorf("scaling_factor %g must be positive", c.ScalingFactor)
	case c.ActFn != "silu":
		return fmt.Errorf("act_fn %q is not supported (want silu)", c.ActFn)
	case len(c.LatentsMean) != len(c.LatentsStd):
		return fmt.Errorf("latents_mean has %d values but latents_std %d", len(c.LatentsMean), len(c.LatentsStd))
	case len(c.LatentsMean) != 0 && len(c.LatentsMean) != c.LatentChannels:
		return fmt.Errorf("latents_mean has %d values for %d latent_channels", len(c.LatentsMean), c.LatentChannels)
	}
	for i, ch := range c.BlockOutChannels {
		if ch <= 0 || ch%c.NormNumGroups != 0 {
			return fmt.Errorf("block_out_channels[%d] = %d must be a positive multiple of norm_num_groups %d", i, ch, c.NormNumGroups)
		}
	}
	for i, t := range c.DownBlockTypes {
		if t != "DownEncoderBlock2D" {
			return fmt.Errorf("down_block_types[%d] %q is not supported (want DownEncoderBlock2D)", i, t)
		}
	}
	for i, t := range c.UpBlockTypes {
		if t != "UpDecoderBlock2D" {
			return fmt.Errorf("up_block_types[%d] %q is not supported (want UpDecoderBlock2D)", i, t)
		}
	}
	return nil
}

// Levels returns the number of resolution levels (len(block_out_channels)).
func (c Config) Levels() int { return len(c.BlockOutChannels) }

// DownscaleFactor returns how many pixels one latent spans per side:
// 2^(levels-1) (8 for Stable Diffusion).
func (c Config) DownscaleFactor() int { return 1 << (c.Levels() - 1) }

// Clone returns a deep copy.
func (c Config) Clone() Config {
	c.DownBlockTypes = slices.Clone(c.DownBlockTypes)
	c.UpBlockTypes = slices.Clone(c.UpBlockTypes)
	c.BlockOutChannels = slices.Clone(c.BlockOutChannels)
	c.SampleSize = slices.Clone(c.SampleSize)
	c.LatentsMean = slices.Clone(c.LatentsMean)
	c.LatentsStd = slices.Clone(c.LatentsStd)
	return c
}

// The standard configurations of the released checkpoints, for single files
// (which carry no config). Each call returns a fresh value.

func sd(sampleSize int) Config {
	c := Default()
	c.DownBlockTypes = []string{"DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"}
	c.UpBlockTypes = []string{"UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"}
	c.BlockOutChannels = []int{128, 256, 512, 512}
	c.LayersPerBlock = 2
	c.SampleSize = Size{sampleSize}
	return c
}

// SD is the autoencoder of Stable Diffusion 1.x and 2.x (scaling factor 0.18215).
func SD() Config { return sd(512) }

// SDXL is the autoencoder of Stable Diffusion XL: the same architecture,
// retrained, with scaling factor 0.13025.
func SDXL() Config {
	c := sd(1024)
	c.ScalingFactor = 0.13025
	return c
}

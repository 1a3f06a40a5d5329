// Package unet implements diffusers' UNet2DConditionModel, the denoiser of
// Stable Diffusion 1.x, 2.x and SDXL. This file holds its configuration: the
// config.json that diffusers writes, read with the same keys, normalised
// per-level accessors, and the standard configurations of the released models.
package unet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"

	"github.com/sdgo/sdgo/internal/pyjson"
)

// Ints is a config value that diffusers accepts either as one integer, meaning
// the same value at every level of the UNet, or as a list with one value per
// level (attention_head_dim, cross_attention_dim, transformer_layers_per_block,
// layers_per_block, ...). nil stands for JSON null (unset). In JSON it reads
// both forms; it writes one value as a bare number.
type Ints []int

// UnmarshalJSON reads a number, a list of numbers or null.
func (v *Ints) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*v = nil
		return nil
	}
	if len(b) > 0 && b[0] == '[' {
		var l []int
		if err := json.Unmarshal(b, &l); err != nil {
			return fmt.Errorf("want an integer or a list of integers, got %s", b)
		}
		*v = l
		return nil
	}
	n, err := strconv.Atoi(string(b))
	if err != nil {
		// 8.0 is an integer too, as Python may write it.
		f, ferr := strconv.ParseFloat(string(b), 64)
		if ferr != nil || f != float64(int(f)) {
			return fmt.Errorf("want an integer or a list of integers, got %s", b)
		}
		n = int(f)
	}
	*v = Ints{n}
	return nil
}

// MarshalJSON writes null, a bare number (one value) or a list.
func (v Ints) MarshalJSON() ([]byte, error) {
	switch len(v) {
	case 0:
		if v == nil {
			return []byte("null"), nil
		}
		return []byte("[]"), nil
	case 1:
		return []byte(strconv.Itoa(v[0])), nil
	}
	return json.Marshal([]int(v))
}

// at returns the value for level i of n: the single value, or the i-th one.
func (v Ints) at(i int) int {
	if len(v) == 1 {
		return v[0]
	}
	if i < 0 || i >= len(v) {
		return 0
	}
	return v[i]
}

// checkLen reports whether v has one value or one per level.
func (v Ints) checkLen(key string, levels int, required bool) error {
	switch {
	case v == nil && !required:
		return nil
	case len(v) == 1 || len(v) == levels:
		return nil
	}
	return fmt.Errorf("%s has %d values %v; want one, or one per level (%d)", key, len(v), []int(v), levels)
}

// Bools is a config value given either as one bool for every level or as a list
// with one per level (only_cross_attention). nil stands for JSON null.
type Bools []bool

// UnmarshalJSON reads a bool, a list of bools or null.
func (v *Bools) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch string(b) {
	case "null":
		*v = nil
		return nil
	case "true":
		*v = Bools{true}
		return nil
	case "false":
		*v = Bools{false}
		return nil
	}
	var l []bool
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("want a bool or a list of bools, got %s", b)
	}
	*v = l
	return nil
}

// MarshalJSON writes null, a bare bool (one value) or a list.
func (v Bools) MarshalJSON() ([]byte, error) {
	switch len(v) {
	case 0:
		if v == nil {
			return []byte("null"), nil
		}
		return []byte("[]"), nil
	case 1:
		return []byte(strconv.FormatBool(v[0])), nil
	}
	return json.Marshal([]bool(v))
}

func (v Bools) at(i int) bool {
	if len(v) == 1 {
		return v[0]
	}
	if i < 0 || i >= len(v) {
		return false
	}
	return v[i]
}

// Config is a UNet2DConditionModel's architecture, with the keys of the
// config.json that diffusers writes. Keys missing from a file take diffusers'
// defaults (see Default); a JSON null leaves the field's zero value, which
// means "none" for the nullable keys (0, "" or nil). The list-or-scalar keys
// are Ints and Bools; use the accessors (Heads, CrossAttentionDim,
// TransformerLayers, ...) rather than indexing them.
type Config struct {
	ClassName        string `json:"_class_name,omitempty"`
	DiffusersVersion string `json:"_diffusers_version,omitempty"`

	SampleSize          Ints     `json:"sample_size,omitempty"`
	InChannels          int      `json:"in_channels"`
	OutChannels         int      `json:"out_channels"`
	CenterInputSample   bool     `json:"center_input_sample"`
	FlipSinToCos        bool     `json:"flip_sin_to_cos"`
	FreqShift           int      `json:"freq_shift"`
	DownBlockTypes      []string `json:"down_block_types"`
	MidBlockType        string   `json:"mid_block_type,omitempty"` // "" = no mid block (null)
	UpBlockTypes        []string `json:"up_block_types"`
	OnlyCrossAttention  Bools    `json:"only_cross_attention"`
	BlockOutChannels    []int    `json:"block_out_channels"`
	LayersPerBlock      Ints     `json:"layers_per_block"`
	DownsamplePadding   int      `json:"downsample_padding"`
	MidBlockScaleFactor float64  `json:"mid_block_scale_factor"`
	Dropout             float64  `json:"dropout"`
	ActFn               string   `json:"act_fn"`
	NormNumGroups       int      `json:"norm_num_groups,omitempty"` // 0 = null: no output norm
	NormEps             float64  `json:"norm_eps"`
	CrossAttentionDim   Ints     `json:"cross_attention_dim"`
	// TransformerLayersPerBlock is the number of transformer blocks in each
	// level's Transformer2DModel (SDXL: [1, 2, 10]).
	TransformerLayersPerBlock Ints `json:"transformer_layers_per_block"`
	// ReverseTransformerLayersPerBlock overrides it for the up blocks, in up order.
	ReverseTransformerLayersPerBlock Ints   `json:"reverse_transformer_layers_per_block,omitempty"`
	EncoderHidDim                    int    `json:"encoder_hid_dim,omitempty"`
	EncoderHidDimType                string `json:"encoder_hid_dim_type,omitempty"`
	// AttentionHeadDim is, despite its name, the number of attention heads per
	// level in every Stable Diffusion config (a diffusers naming quirk, kept for
	// compatibility); see Heads.
	AttentionHeadDim Ints `json:"attention_head_dim"`
	// NumAttentionHeads is the correctly named key; when set it takes
	// precedence over AttentionHeadDim. Released configs leave it null.
	NumAttentionHeads   Ints   `json:"num_attention_heads,omitempty"`
	DualCrossAttention  bool   `json:"dual_cross_attention"`
	UseLinearProjection bool   `json:"use_linear_projection"`
	ClassEmbedType      string `json:"class_embed_type,omitempty"`
	// AdditionEmbedType is "text_time" for SDXL: pooled text embeddings and
	// size/crop (and aesthetic score) conditioning added to the time embedding.
	AdditionEmbedType                 string  `json:"addition_embed_type,omitempty"`
	AdditionTimeEmbedDim              int     `json:"addition_time_embed_dim,omitempty"`
	AdditionEmbedTypeNumHeads         int     `json:"addition_embed_type_num_heads"`
	NumClassEmbeds                    int     `json:"num_class_embeds,omitempty"`
	UpcastAttention                   bool    `json:"upcast_attention"`
	ResnetTimeScaleShift              string  `json:"resnet_time_scale_shift"`
	ResnetSkipTimeAct                 bool    `json:"resnet_skip_time_act"`
	ResnetOutScaleFactor              float64 `json:"resnet_out_scale_factor"`
	TimeEmbeddingType                 string  `json:"time_embedding_type"`
	TimeEmbeddingDim                  int     `json:"time_embedding_dim,omitempty"`
	TimeEmbeddingActFn                string  `json:"time_embedding_act_fn,omitempty"`
	TimestepPostAct                   string  `json:"timestep_post_act,omitempty"`
	TimeCondProjDim                   int     `json:"time_cond_proj_dim,omitempty"`
	ConvInKernel                      int     `json:"conv_in_kernel"`
	ConvOutKernel                     int     `json:"conv_out_kernel"`
	ProjectionClassEmbeddingsInputDim int     `json:"projection_class_embeddings_input_dim,omitempty"`
	AttentionType                     string  `json:"attention_type"`
	ClassEmbeddingsConcat             bool    `json:"class_embeddings_concat"`
	MidBlockOnlyCrossAttention        *bool   `json:"mid_block_only_cross_attention,omitempty"`
	CrossAttentionNorm                string  `json:"cross_attention_norm,omitempty"`
}

// ClassName is the diffusers class these configs describe.
const ClassName = "UNet2DConditionModel"

// Default returns diffusers' defaults for UNet2DConditionModel (the values its
// constructor takes for keys missing from a config.json).
func Default() Config {
	return Config{
		ClassName:                 ClassName,
		InChannels:                4,
		OutChannels:               4,
		FlipSinToCos:              true,
		DownBlockTypes:            []string{"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"},
		MidBlockType:              "UNetMidBlock2DCrossAttn",
		UpBlockTypes:              []string{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"},
		OnlyCrossAttention:        Bools{false},
		BlockOutChannels:          []int{320, 640, 1280, 1280},
		LayersPerBlock:            Ints{2},
		DownsamplePadding:         1,
		MidBlockScaleFactor:       1,
		ActFn:                     "silu",
		NormNumGroups:             32,
		NormEps:                   1e-5,
		CrossAttentionDim:         Ints{1280},
		TransformerLayersPerBlock: Ints{1},
		AttentionHeadDim:          Ints{8},
		AdditionEmbedTypeNumHeads: 64,
		ResnetTimeScaleShift:      "default",
		ResnetOutScaleFactor:      1,
		TimeEmbeddingType:         "positional",
		ConvInKernel:              3,
		ConvOutKernel:             3,
		AttentionType:             "default",
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

// LoadConfig reads and validates a UNet config.json.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("unet config: %w", err)
	}
	return Parse(path, b)
}

// describe names a field type for error messages.
func describe(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Ints]():
		return "an integer or a list of integers"
	case reflect.TypeFor[Bools]():
		return "a bool or a list of bools"
	}
	return pyjson.DescribeType(t)
}

// MarshalJSON writes the config with diffusers' keys, in field order. Nullable
// keys (tagged omitempty) are written as null when zero, as diffusers writes
// None, so that the output is a complete config.json.
func (c Config) MarshalJSON() ([]byte, error) {
	return pyjson.MarshalFields(c, "unet config", false)
}

// Validate checks that the config is consistent: as many down and up block
// types as levels (block_out_channels), per-level lists of one value or one per
// level, head counts that divide the channels, and block and embedding types
// that Stable Diffusion uses.
func (c Config) Validate() error {
	n := len(c.BlockOutChannels)
	switch {
	case n == 0:
		return fmt.Errorf("block_out_channels is empty")
	case len(c.DownBlockTypes) != n:
		return fmt.Errorf("%d down_block_types for %d block_out_channels", len(c.DownBlockTypes), n)
	case len(c.UpBlockTypes) != n:
		return fmt.Errorf("%d up_block_types for %d block_out_channels", len(c.UpBlockTypes), n)
	case c.InChannels <= 0 || c.OutChannels <= 0:
		return fmt.Errorf("in_channels %d and out_channels %d must be positive", c.InChannels, c.OutChannels)
	case c.ConvInKernel <= 0 || c.ConvInKernel%2 == 0 || c.ConvOutKernel <= 0 || c.ConvOutKernel%2 == 0:
		return fmt.Errorf("conv_in_kernel %d and conv_out_kernel %d must be positive and odd", c.ConvInKernel, c.ConvOutKernel)
	case c.NormNumGroups < 0:
		return fmt.Errorf("norm_num_groups %d is negative", c.NormNumGroups)
	}
	for i, ch := range c.BlockOutChannels {
		if ch <= 0 {
			return fmt.Errorf("block_out_channels[%d] is %d; must be positive", i, ch)
		}
		if c.NormNumGroups > 0 && ch%c.NormNumGroups != 0 {
			return fmt.Errorf("block_out_channels[%d] = %d is not a multiple of norm_num_groups %d", i, ch, c.NormNumGroups)
		}
	}
	for _, l := range []struct {
		key      string
		v        Ints
		required bool
	}{
		{"layers_per_block", c.LayersPerBlock, true},
		{"cross_attention_dim", c.CrossAttentionDim, true},
		{"transformer_layers_per_block", c.TransformerLayersPerBlock, true},
		{"attention_head_dim", c.AttentionHeadDim, c.NumAttentionHeads == nil},
		{"num_attention_heads", c.NumAttentionHeads, false},
		{"reverse_transformer_layers_per_block", c.ReverseTransformerLayersPerBlock, false},
	} {
		if err := l.v.checkLen(l.key, n, l.required); err != nil {
			return err
		}
		for _, x := range l.v {
			if x <= 0 {
				return fmt.Errorf("%s %v: values must be positive", l.key, []int(l.v))
			}
		}
	}
	if len(c.OnlyCrossAttention) != 0 && len(c.OnlyCrossAttention) != 1 && len(c.OnlyCrossAttention) != n {
		return fmt.Errorf("only_cross_attention has %d values; want one, or one per level (%d)", len(c.OnlyCrossAttention), n)
	}
	for i, t := range c.DownBlockTypes {
		if t != "DownBlock2D" && t != "CrossAttnDownBlock2D" {
			return fmt.Errorf("down_block_types[%d] %q is not supported (want DownBlock2D or CrossAttnDownBlock2D)", i, t)
		}
	}
	for i, t := range c.UpBlockTypes {
		if t != "UpBlock2D" && t != "CrossAttnUpBlock2D" {
			return fmt.Errorf("up_block_types[%d] %q is not supported (want UpBlock2D or CrossAttnUpBlock2D)", i, t)
		}
	}
	if c.MidBlockType != "UNetMidBlock2DCrossAttn" && c.MidBlockType != "UNetMidBlock2D" && c.MidBlockType != "" {
		return fmt.Errorf("mid_block_type %q is not supported (want UNetMidBlock2DCrossAttn, UNetMidBlock2D or null)", c.MidBlockType)
	}
	for i := range n {
		if c.HasCrossAttention(i) || (i == n-1 && c.MidBlockType == "UNetMidBlock2DCrossAttn") {
			h := c.Heads(i)
			if c.BlockOutChannels[i]%h != 0 {
				return fmt.Errorf("level %d: %d channels are not divisible into %d attention heads", i, c.BlockOutChannels[i], h)
			}
		}
	}
	switch c.TimeEmbeddingType {
	case "positional":
	default:
		return fmt.Errorf("time_embedding_type %q is not supported (want positional)", c.TimeEmbeddingType)
	}
	switch c.AdditionEmbedType {
	case "":
	case "text_time":
		if c.AdditionTimeEmbedDim <= 0 || c.ProjectionClassEmbeddingsInputDim <= 0 {
			return fmt.Errorf("addition_embed_type text_time needs positive addition_time_embed_dim and projection_class_embeddings_input_dim (got %d, %d)",
				c.AdditionTimeEmbedDim, c.ProjectionClassEmbeddingsInputDim)
		}
	default:
		return fmt.Errorf("addition_embed_type %q is not supported (want null or text_time)", c.AdditionEmbedType)
	}
	switch c.ClassEmbedType {
	case "":
	case "projection":
		if c.ProjectionClassEmbeddingsInputDim <= 0 {
			return fmt.Errorf("class_embed_type projection needs a positive projection_class_embeddings_input_dim")
		}
	default:
		return fmt.Errorf("class_embed_type %q is not supported (want null or projection)", c.ClassEmbedType)
	}
	switch c.ResnetTimeScaleShift {
	case "default", "scale_shift":
	default:
		return fmt.Errorf("resnet_time_scale_shift %q is not supported (want default or scale_shift)", c.ResnetTimeScaleShift)
	}
	if c.DualCrossAttention {
		return fmt.Errorf("dual_cross_attention is not supported")
	}
	if c.EncoderHidDimType != "" {
		return fmt.Errorf("encoder_hid_dim_type %q is not supported", c.EncoderHidDimType)
	}
	return nil
}

// Levels returns the number of resolution levels (len(block_out_channels)).
func (c Config) Levels() int { return len(c.BlockOutChannels) }

// Heads returns the number of attention heads of the down block at level i
// (and, reversed, of the up block at the same resolution): num_attention_heads
// when set, else attention_head_dim, which in diffusers' UNet2DConditionModel
// is a head count despite its name.
func (c Config) Heads(level int) int {
	if c.NumAttentionHeads != nil {
		return c.NumAttentionHeads.at(level)
	}
	return c.AttentionHeadDim.at(level)
}

// HeadDim returns the width of one attention head at level i.
func (c Config) HeadDim(level int) int {
	h := c.Heads(level)
	if h == 0 {
		return 0
	}
	return c.BlockOutChannels[level] / h
}

// CrossAttentionDimAt returns the width of the encoder hidden states that the
// cross-attention at level i attends to.
func (c Config) CrossAttentionDimAt(level int) int { return c.CrossAttentionDim.at(level) }

// TransformerLayers returns the number of transformer blocks at down level i.
func (c Config) TransformerLayers(level int) int { return c.TransformerLayersPerBlock.at(level) }

// Layers returns the number of resnets (and attentions) in the down block at
// level i.
func (c Config) Layers(level int) int { return c.LayersPerBlock.at(level) }

// OnlyCrossAttentionAt reports whether the transformer blocks at level i skip
// self-attention.
func (c Config) OnlyCrossAttentionAt(level int) bool { return c.OnlyCrossAttention.at(level) }

// HasCrossAttention reports whether the down block at level i is a
// CrossAttnDownBlock2D.
func (c Config) HasCrossAttention(level int) bool {
	return c.DownBlockTypes[level] == "CrossAttnDownBlock2D"
}

// upLevel maps up block i (in up order) to the level at the same resolution.
func (c Config) upLevel(i int) int { return c.Levels() - 1 - i }

// UpHasCrossAttention reports whether up block i is a CrossAttnUpBlock2D.
func (c Config) UpHasCrossAttention(i int) bool { return c.UpBlockTypes[i] == "CrossAttnUpBlock2D" }

// UpHeads returns the attention heads of up block i (in up order).
func (c Config) UpHeads(i int) int { return c.Heads(c.upLevel(i)) }

// UpCrossAttentionDim returns the cross-attention width of up block i.
func (c Config) UpCrossAttentionDim(i int) int { return c.CrossAttentionDimAt(c.upLevel(i)) }

// UpTransformerLayers returns the transformer blocks per attention of up block
// i: reverse_transformer_layers_per_block[i] when given, else the down value at
// the same resolution.
func (c Config) UpTransformerLayers(i int) int {
	if c.ReverseTransformerLayersPerBlock != nil {
		return c.ReverseTransformerLayersPerBlock.at(i)
	}
	return c.TransformerLayers(c.upLevel(i))
}

// UpLayers returns the number of resnets in up block i: one more than the down
// block at the same resolution (the extra one takes the level's input skip).
func (c Config) UpLayers(i int) int { return c.Layers(c.upLevel(i)) + 1 }

// UpOnlyCrossAttention reports only_cross_attention for up block i.
func (c Config) UpOnlyCrossAttention(i int) bool { return c.OnlyCrossAttentionAt(c.upLevel(i)) }

// MidHeads returns the attention heads of the mid block (those of the lowest level).
func (c Config) MidHeads() int { return c.Heads(c.Levels() - 1) }

// MidCrossAttentionDim returns the cross-attention width of the mid block.
func (c Config) MidCrossAttentionDim() int { return c.CrossAttentionDimAt(c.Levels() - 1) }

// MidTransformerLayers returns the transformer blocks of the mid block's attention.
func (c Config) MidTransformerLayers() int { return c.TransformerLayers(c.Levels() - 1) }

// TimeEmbedDim returns the width of the time embedding: time_embedding_dim, or
// four times the first level's channels.
func (c Config) TimeEmbedDim() int {
	if c.TimeEmbeddingDim > 0 {
		return c.TimeEmbeddingDim
	}
	return 4 * c.BlockOutChannels[0]
}

// Sample returns the default latent height and width (sample_size; 0, 0 if unset).
func (c Config) Sample() (h, w int) {
	switch len(c.SampleSize) {
	case 1:
		return c.SampleSize[0], c.SampleSize[0]
	case 2:
		return c.SampleSize[0], c.SampleSize[1]
	}
	return 0, 0
}

// Clone returns a deep copy.
func (c Config) Clone() Config {
	c.SampleSize = slices.Clone(c.SampleSize)
	c.DownBlockTypes = slices.Clone(c.DownBlockTypes)
	c.UpBlockTypes = slices.Clone(c.UpBlockTypes)
	c.OnlyCrossAttention = slices.Clone(c.OnlyCrossAttention)
	c.BlockOutChannels = slices.Clone(c.BlockOutChannels)
	c.LayersPerBlock = slices.Clone(c.LayersPerBlock)
	c.CrossAttentionDim = slices.Clone(c.CrossAttentionDim)
	c.TransformerLayersPerBlock = slices.Clone(c.TransformerLayersPerBlock)
	c.ReverseTransformerLayersPerBlock = slices.Clone(c.ReverseTransformerLayersPerBlock)
	c.AttentionHeadDim = slices.Clone(c.AttentionHeadDim)
	c.NumAttentionHeads = slices.Clone(c.NumAttentionHeads)
	if c.MidBlockOnlyCrossAttention != nil {
		b := *c.MidBlockOnlyCrossAttention
		c.MidBlockOnlyCrossAttention = &b
	}
	return c
}

// The standard configurations of the released checkpoints, for single files
// (which carry no config). Each call returns a fresh value.

// SD15 is Stable Diffusion 1.x (runwayml/stable-diffusion-v1-5).
func SD15() Config {
	c := Default()
	c.SampleSize = Ints{64}
	c.BlockOutChannels = []int{320, 640, 1280, 1280}
	c.CrossAttentionDim = Ints{768}
	c.AttentionHeadDim = Ints{8}
	return c
}

// SD15Inpaint is Stable Diffusion 1.x inpainting: 9 input channels (latents,
// mask, masked-image latents).
func SD15Inpaint() Config {
	c := SD15()
	c.InChannels = 9
	return c
}

// sd2 is what the SD 2.x UNets share: OpenCLIP-H conditioning (1024), 64-wide
// heads (5, 10, 20, 20 of them) and linear projections in the transformers.
func sd2() Config {
	c := Default()
	c.BlockOutChannels = []int{320, 640, 1280, 1280}
	c.CrossAttentionDim = Ints{1024}
	c.AttentionHeadDim = Ints{5, 10, 20, 20}
	c.UseLinearProjection = true
	return c
}

// SD21 is Stable Diffusion 2.1 768-v (stabilityai/stable-diffusion-2-1):
// 96x96 latents, attention upcast to float32.
func SD21() Config {
	c := sd2()
	c.SampleSize = Ints{96}
	c.UpcastAttention = true
	return c
}

// SD21Base is Stable Diffusion 2.x base 512 (stabilityai/stable-diffusion-2-1-base).
func SD21Base() Config {
	c := sd2()
	c.SampleSize = Ints{64}
	return c
}

// SD2Inpaint is Stable Diffusion 2 inpainting (stabilityai/stable-diffusion-2-inpainting).
func SD2Inpaint() Config {
	c := SD21Base()
	c.InChannels = 9
	return c
}

// SDXL is Stable Diffusion XL base 1.0 (stabilityai/stable-diffusion-xl-base-1.0).
func SDXL() Config {
	c := Default()
	c.SampleSize = Ints{128}
	c.BlockOutChannels = []int{320, 640, 1280}
	c.DownBlockTypes = []string{"DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"}
	c.UpBlockTypes = []string{"CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"}
	c.CrossAttentionDim = Ints{2048}
	c.AttentionHeadDim = Ints{5, 10, 20}
	c.TransformerLayersPerBlock = Ints{1, 2, 10}
	c.UseLinearProjection = true
	c.AdditionEmbedType = "text_time"
	c.AdditionTimeEmbedDim = 256
	c.ProjectionClassEmbeddingsInputDim = 2816 // 1280 pooled + 6 time ids x 256
	return c
}

// SDXLInpaint is SDXL inpainting 0.1 (diffusers/stable-diffusion-xl-1.0-inpainting-0.1).
func SDXLInpaint() Config {
	c := SDXL()
	c.InChannels = 9
	return c
}

// SDXLRefiner is the SDXL refiner 1.0 (stabilityai/stable-diffusion-xl-refiner-1.0).
func SDXLRefiner() Config {
	c := Default()
	c.SampleSize = Ints{128}
	c.BlockOutChannels = []int{384, 768, 1536, 1536}
	c.DownBlockTypes = []string{"DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"}
	c.UpBlockTypes = []string{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"}
	c.CrossAttentionDim = Ints{1280}
	c.AttentionHeadDim = Ints{6, 12, 24, 24}
	c.TransformerLayersPerBlock = Ints{4}
	c.UseLinearProjection = true
	c.AdditionEmbedType = "text_time"
	c.AdditionTimeEmbedDim = 256
	c.ProjectionClassEmbeddingsInputDim = 2560 // 1280 pooled + 5 time ids x 256
	return c
}

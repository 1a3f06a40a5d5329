// Package clip implements the CLIP text encoders Stable Diffusion conditions on:
// transformers' CLIPTextModel (SD 1.x, SDXL's first encoder) and
// CLIPTextModelWithProjection (SDXL's second encoder), and the OpenCLIP models of
// SD 2.x, which load into the same architecture.
package clip

import (
	"fmt"
	"os"

	"github.com/sdgo/sdgo/internal/pyjson"
)

// Config is a text encoder's architecture, read from the config.json that
// transformers writes (the same keys).
type Config struct {
	Architectures         []string `json:"architectures,omitempty"`
	VocabSize             int      `json:"vocab_size"`
	HiddenSize            int      `json:"hidden_size"`
	IntermediateSize      int      `json:"intermediate_size"`
	ProjectionDim         int      `json:"projection_dim"`
	NumHiddenLayers       int      `json:"num_hidden_layers"`
	NumAttentionHeads     int      `json:"num_attention_heads"`
	MaxPositionEmbeddings int      `json:"max_position_embeddings"`
	HiddenAct             string   `json:"hidden_act"` // "quick_gelu" or "gelu"
	LayerNormEps          float64  `json:"layer_norm_eps"`
	BOSTokenID            int      `json:"bos_token_id"`
	EOSTokenID            int      `json:"eos_token_id"`
	PadTokenID            int      `json:"pad_token_id"`
}

// WithProjection reports whether the model is a CLIPTextModelWithProjection
// (it has text_projection and returns text_embeds).
func (c *Config) WithProjection() bool {
	for _, a := range c.Architectures {
		if a == "CLIPTextModelWithProjection" {
			return true
		}
	}
	return false
}

// Validate checks that the architecture is one this package can build.
func (c *Config) Validate() error {
	switch {
	case c.VocabSize <= 0, c.HiddenSize <= 0, c.IntermediateSize <= 0, c.NumHiddenLayers <= 0,
		c.NumAttentionHeads <= 0, c.MaxPositionEmbeddings <= 0:
		return fmt.Errorf("clip config: vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads and max_position_embeddings must be positive: %+v", *c)
	case c.HiddenSize%c.NumAttentionHeads != 0:
		return fmt.Errorf("clip config: hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	case c.HiddenAct != "quick_gelu" && c.HiddenAct != "gelu":
		return fmt.Errorf("clip config: hidden_act %q (want quick_gelu or gelu)", c.HiddenAct)
	case c.WithProjection() && c.ProjectionDim <= 0:
		return fmt.Errorf("clip config: projection_dim must be positive for CLIPTextModelWithProjection")
	}
	return nil
}

// LoadConfig reads a config.json.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	c := Config{LayerNormEps: 1e-5, HiddenAct: "quick_gelu"}
	if err := pyjson.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// The standard text encoders of the real checkpoints, for single files, which
// carry no config. They are functions so that no caller can change another's copy.

// ViTL14 is OpenAI CLIP ViT-L/14's text tower: SD 1.x, and SDXL's first encoder.
func ViTL14() Config {
	return Config{
		Architectures: []string{"CLIPTextModel"}, VocabSize: 49408, HiddenSize: 768, IntermediateSize: 3072,
		ProjectionDim: 768, NumHiddenLayers: 12, NumAttentionHeads: 12, MaxPositionEmbeddings: 77,
		HiddenAct: "quick_gelu", LayerNormEps: 1e-5, BOSTokenID: 49406, EOSTokenID: 49407, PadTokenID: 1,
	}
}

// OpenCLIPH14 is OpenCLIP ViT-H/14's text tower as SD 2.x uses it: 23 of its 24
// blocks (the last is dropped by the checkpoints' config).
func OpenCLIPH14() Config {
	return Config{
		Architectures: []string{"CLIPTextModel"}, VocabSize: 49408, HiddenSize: 1024, IntermediateSize: 4096,
		ProjectionDim: 512, NumHiddenLayers: 23, NumAttentionHeads: 16, MaxPositionEmbeddings: 77,
		HiddenAct: "gelu", LayerNormEps: 1e-5, BOSTokenID: 49406, EOSTokenID: 49407, PadTokenID: 1,
	}
}

// OpenCLIPBigG14 is OpenCLIP ViT-bigG/14's text tower with its projection:
// SDXL's second encoder.
func OpenCLIPBigG14() Config {
	return Config{
		Architectures: []string{"CLIPTextModelWithProjection"}, VocabSize: 49408, HiddenSize: 1280, IntermediateSize: 5120,
		ProjectionDim: 1280, NumHiddenLayers: 32, NumAttentionHeads: 20, MaxPositionEmbeddings: 77,
		HiddenAct: "gelu", LayerNormEps: 1e-5, BOSTokenID: 49406, EOSTokenID: 49407, PadTokenID: 1,
	}
}

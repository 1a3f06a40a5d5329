package convert

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/sdgo/sdgo/diffusion/clip"
	"github.com/sdgo/sdgo/diffusion/model"
	"github.com/sdgo/sdgo/diffusion/unet"
	"github.com/sdgo/sdgo/diffusion/vae"
	"github.com/sdgo/sdgo/tensor"
	"github.com/stretchr/testify/require"
)

// recorder is an nn.Params that records every parameter a model asks for,
// handing out zero-stride views so that a real-size model costs no memory.
type recorder struct {
	cpu    *tensor.CPU
	shapes map[string][]int
}

func (r *recorder) Tensor(name string) (*tensor.Tensor, error) {
	return nil, fmt.Errorf("%s requested without a shape", name)
}

func (r *recorder) Synthesize(name string, shape []int) (*tensor.Tensor, error) {
	r.shapes[name] = shape
	ones := make([]int, len(shape))
	for i := range ones {
		ones[i] = 1
	}
	z, err := tensor.Zeros(r.cpu, tensor.F16, ones...)
	if err != nil {
		return nil, err
	}
	defer z.Release()
	return z.Expand(shape...)
}

// paramNames lists the parameters the engine loads for a component, under
// diffusers' names: the names a diffusers folder of that architecture holds.
func paramNames(t *testing.T, load func(r *recorder) error) map[string][]int {
	t.Helper()
	r := &recorder{cpu: tensor.NewCPU(), shapes: map[string][]int{}}
	require.NoError(t, load(r))
	return r.shapes
}

func unetNames(t *testing.T, c unet.Config) map[string][]int {
	return paramNames(t, func(r *recorder) error {
		m, err := unet.Load(r, c, unet.Options{})
		if err == nil {
			m.Release()
		}
		return err
	})
}

// The inverse UNet map on the standard architectures: every parameter of the
// real models has a place, no two share one, and the places are those of the
// released checkpoints (spot checks against keys of v1-5-pruned, v2-1_768,
// sd_xl_base_1.0 and the refiner).
func TestUNetKeysStandard(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   unet.Config
		count int
		pairs map[string]string
	}{
		{"sd15", unet.SD15(), 686, map[string]string{
			"conv_in.weight":                                                "input_blocks.0.0.weight",
			"time_embedding.linear_2.bias":                                  "time_embed.2.bias",
			"down_blocks.0.attentions.0.proj_in.weight":                     "input_blocks.1.1.proj_in.weight",
			"down_blocks.0.downsamplers.0.conv.weight":                      "input_blocks.3.0.op.weight",
			"down_blocks.1.resnets.0.conv_shortcut.weight":                  "input_blocks.4.0.skip_connection.weight",
			"down_blocks.2.downsamplers.0.conv.bias":                        "input_blocks.9.0.op.bias",
			"down_blocks.3.resnets.1.conv2.weight":                          "input_blocks.11.0.out_layers.3.weight",
			"mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight": "middle_block.1.transformer_blocks.0.attn2.to_k.weight",
			"mid_block.resnets.1.norm1.weight":                              "middle_block.2.in_layers.0.weight",
			"up_blocks.0.resnets.0.time_emb_proj.weight":                    "output_blocks.0.0.emb_layers.1.weight",
			"up_blocks.0.upsamplers.0.conv.weight":                          "output_blocks.2.1.conv.weight",
			"up_blocks.1.upsamplers.0.conv.weight":                          "output_blocks.5.2.conv.weight",
			"up_blocks.2.attentions.1.norm.bias":                            "output_blocks.7.1.norm.bias",
			"up_blocks.2.upsamplers.0.conv.weight":                          "output_blocks.8.2.conv.weight",
			"up_blocks.3.attentions.2.proj_out.weight":                      "output_blocks.11.1.proj_out.weight",
			"conv_norm_out.weight":                                          "out.0.weight",
			"conv_out.bias":                                                 "out.2.bias",
		}},
		{"sd15-inpaint", unet.SD15Inpaint(), 686, nil},
		{"sd21", unet.SD21(), 686, map[string]string{
			"down_blocks.2.attentions.1.transformer_blocks.0.ff.net.0.proj.weight": "input_blocks.8.1.transformer_blocks.0.ff.net.0.proj.weight",
			"up_blocks.3.resnets.0.conv_shortcut.weight":                           "output_blocks.9.0.skip_connection.weight",
		}},
		{"sd2-inpaint", unet.SD2Inpaint(), 686, nil},
		{"sdxl", unet.SDXL(), 1680, map[string]string{
			"add_embedding.linear_1.weight":                                       "label_emb.0.0.weight",
			"add_embedding.linear_2.bias":                                         "label_emb.0.2.bias",
			"down_blocks.0.downsamplers.0.conv.weight":                            "input_blocks.3.0.op.weight",
			"down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight":   "input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight",
			"down_blocks.1.downsamplers.0.conv.weight":                            "input_blocks.6.0.op.weight",
			"down_blocks.2.attentions.1.transformer_blocks.9.ff.net.2.weight":     "input_blocks.8.1.transformer_blocks.9.ff.net.2.weight",
			"mid_block.attentions.0.transformer_blocks.9.attn2.to_out.0.bias":     "middle_block.1.transformer_blocks.9.attn2.to_out.0.bias",
			"up_blocks.0.attentions.2.transformer_blocks.9.norm3.weight":          "output_blocks.2.1.transformer_blocks.9.norm3.weight",
			"up_blocks.0.upsamplers.0.conv.weight":                                "output_blocks.2.2.conv.weight",
			"up_blocks.1.upsamplers.0.conv.bias":                                  "output_blocks.5.2.conv.bias",
			"up_blocks.2.resnets.2.conv_shortcut.weight":                          "output_blocks.8.0.skip_connection.weight",
			"up_blocks.1.attentions.0.transformer_blocks.1.attn1.to_v.weight":     "output_blocks.3.1.transformer_blocks.1.attn1.to_v.weight",
			"down_blocks.1.attentions.1.transformer_blocks.1.attn2.to_k.weight":   "input_blocks.5.1.transformer_blocks.1.attn2.to_k.weight",
			"up_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0.weight": "output_blocks.0.1.transformer_blocks.0.attn1.to_out.0.weight",
		}},
		{"sdxl-inpaint", unet.SDXLInpaint(), 1680, nil},
		{"sdxl-refiner", unet.SDXLRefiner(), 0, map[string]string{
			"up_blocks.3.resnets.2.conv_shortcut.weight": "output_blocks.11.0.skip_connection.weight",
			"down_blocks.3.resnets.1.conv2.weight":       "input_blocks.11.0.out_layers.3.weight",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names := unetNames(t, tc.cfg)
			if tc.count > 0 {
				require.Len(t, names, tc.count)
			}
			l := layoutOf(tc.cfg)
			seen := map[string]string{}
			for n := range names {
				key, err := ldmUNetKey(n, tc.cfg, l)
				require.NoError(t, err, n)
				prev, dup := seen[key]
				require.False(t, dup, "%s and %s both map to %s", n, prev, key)
				seen[key] = n
			}
			for from, want := range tc.pairs {
				require.Contains(t, names, from)
				got, err := ldmUNetKey(from, tc.cfg, l)
				require.NoError(t, err)
				require.Equal(t, want, got, from)
			}
		})
	}
}

func TestVAEKeysStandard(t *testing.T) {
	for _, c := range []vae.Config{vae.SD(), vae.SDXL()} {
		names := paramNames(t, func(r *recorder) error {
			m, err := vae.Load(r, c)
			if err == nil {
				m.Release()
			}
			return err
		})
		require.Len(t, names, 248)
		seen := map[string]string{}
		reshaped := 0
		for n, shape := range names {
			key, reshape, err := ldmVAEKey(n, c)
			require.NoError(t, err, n)
			_, dup := seen[key]
			require.False(t, dup, key)
			seen[key] = n
			if reshape {
				reshaped++
				require.Len(t, shape, 2, n)
			}
		}
		require.Equal(t, 8, reshaped, "q, k, v and proj_out weights of two mid attentions")
		for from, want := range map[string]string{
			"decoder.up_blocks.0.resnets.0.conv1.weight":           "decoder.up.3.block.0.conv1.weight",
			"decoder.up_blocks.3.resnets.2.norm2.bias":             "decoder.up.0.block.2.norm2.bias",
			"decoder.up_blocks.2.upsamplers.0.conv.weight":         "decoder.up.1.upsample.conv.weight",
			"decoder.up_blocks.2.resnets.0.conv_shortcut.weight":   "decoder.up.1.block.0.nin_shortcut.weight",
			"encoder.down_blocks.1.resnets.0.conv_shortcut.weight": "encoder.down.1.block.0.nin_shortcut.weight",
			"encoder.down_blocks.0.downsamplers.0.conv.weight":     "encoder.down.0.downsample.conv.weight",
			"encoder.mid_block.attentions.0.to_out.0.weight":       "encoder.mid.attn_1.proj_out.weight",
			"decoder.mid_block.attentions.0.group_norm.weight":     "decoder.mid.attn_1.norm.weight",
			"decoder.mid_block.resnets.1.conv2.bias":               "decoder.mid.block_2.conv2.bias",
			"decoder.conv_norm_out.weight":                         "decoder.norm_out.weight",
			"post_quant_conv.weight":                               "post_quant_conv.weight",
			"encoder.mid_block.attentions.0.to_k.bias":             "encoder.mid.attn_1.k.bias",
		} {
			got, _, err := ldmVAEKey(from, c)
			require.NoError(t, err)
			require.Equal(t, want, got, from)
		}
	}
}

func TestOpenCLIPKeysStandard(t *testing.T) {
	for _, c := range []clip.Config{clip.OpenCLIPH14(), clip.OpenCLIPBigG14()} {
		names := paramNames(t, func(r *recorder) error {
			m, err := clip.Load(r, c)
			if err == nil {
				m.Release()
			}
			return err
		})
		seen := map[string]int{}
		for n := range names {
			key, part, transpose, skip, err := openCLIPKey(n)
			require.NoError(t, err, n)
			require.False(t, skip)
			require.Equal(t, n == "text_projection.weight", transpose)
			if part >= 0 {
				seen[key] |= 1 << part
			} else {
				require.NotContains(t, seen, key)
				seen[key] = 8
			}
		}
		blocks := 0
		for k, v := range seen {
			if strings.Contains(k, "in_proj") {
				require.Equal(t, 7, v, "%s gets q, k and v", k)
				blocks++
			}
		}
		require.Equal(t, 2*c.NumHiddenLayers, blocks)
		for from, want := range map[string]string{
			"text_model.embeddings.position_embedding.weight":       "positional_embedding",
			"text_model.encoder.layers.22.self_attn.k_proj.bias":    "transformer.resblocks.22.attn.in_proj_bias",
			"text_model.encoder.layers.3.mlp.fc2.weight":            "transformer.resblocks.3.mlp.c_proj.weight",
			"text_model.encoder.layers.0.self_attn.out_proj.weight": "transformer.resblocks.0.attn.out_proj.weight",
			"text_model.encoder.layers.1.layer_norm2.bias":          "transformer.resblocks.1.ln_2.bias",
			"text_model.final_layer_norm.weight":                    "ln_final.weight",
			"text_model.embeddings.token_embedding.weight":          "token_embedding.weight",
		} {
			got, _, _, _, err := openCLIPKey(from)
			require.NoError(t, err)
			require.Equal(t, want, got)
		}
	}
}

// Names with no place in the single-file layout are refused, naming why.
func TestKeyErrors(t *testing.T) {
	c := unet.SD15()
	l := layoutOf(c)
	for name, msg := range map[string]string{
		"down_blocks.3.attentions.0.proj_in.weight": "no place for it in down block 3 (DownBlock2D)",
		"down_blocks.3.downsamplers.0.conv.weight":  "lowest level and has no downsampler",
		"down_blocks.0.resnets.2.conv1.weight":      "down block 0 has 2 layers",
		"down_blocks.7.resnets.0.conv1.weight":      "no such down block in a UNet of 4 levels",
		"up_blocks.3.upsamplers.0.conv.weight":      "top level and has no upsampler",
		"up_blocks.0.attentions.0.norm.weight":      "no place for it in up block 0 (UpBlock2D)",
		"up_blocks.1.resnets.3.conv1.weight":        "up block 1 has 3 layers",
		"up_blocks.4.resnets.0.conv1.weight":        "no such up block in a UNet of 4 levels",
		"add_embedding.linear_1.weight":             "addition_embed_type",
		"mid_block.attentions.1.norm.weight":        "no place for it in the mid block",
		"encoder_hid_proj.weight":                   "not a UNet2DConditionModel parameter",
		"down_blocks.01.resnets.0.conv1.weight":     "no such down block in a UNet of 4 levels",
	} {
		_, err := ldmUNetKey(name, c, l)
		require.ErrorContains(t, err, msg, name)
	}
	for name, msg := range map[string]string{
		"encoder.down_blocks.4.resnets.0.conv1.weight": "down_blocks.4 in a VAE of 4 levels",
		"decoder.up_blocks.0.resnets.3.conv1.weight":   "unknown resnet parameter",
		"encoder.down_blocks.0.resnets.2.conv1.weight": "unknown resnet parameter",
		"decoder.mid_block.attentions.0.query.weight":  "unknown mid block parameter",
		"bogus.weight": "not an AutoencoderKL parameter",
	} {
		_, _, err := ldmVAEKey(name, vae.SD())
		require.ErrorContains(t, err, msg, name)
	}
	for _, name := range []string{"text_model.encoder.layers.x.mlp.fc1.weight", "text_model.encoder.layers.0.self_attn.qkv.weight", "logit_scale"} {
		_, _, _, _, err := openCLIPKey(name)
		require.Error(t, err, name)
	}
	_, _, _, skip, err := openCLIPKey("text_model.embeddings.position_ids")
	require.NoError(t, err)
	require.True(t, skip)
}

// Every family's text encoders have a place; other combinations do not.
func TestTextSpecs(t *testing.T) {
	got := map[string]string{}
	for _, f := range []model.Family{model.SD1, model.SD2, model.SDXL, model.SDXLRefiner} {
		for _, e := range []string{"text_encoder", "text_encoder_2"} {
			if s, ok := textSpecOf(f, e); ok {
				got[string(f)+"/"+e] = fmt.Sprintf("%s %v", s.prefix, s.openCLIP)
			}
		}
	}
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	require.Equal(t, map[string]string{
		"sd1/text_encoder":            "cond_stage_model.transformer. false",
		"sd2/text_encoder":            "cond_stage_model.model. true",
		"sdxl/text_encoder":           "conditioner.embedders.0.transformer. false",
		"sdxl/text_encoder_2":         "conditioner.embedders.1.model. true",
		"sdxl-refiner/text_encoder_2": "conditioner.embedders.0.model. true",
	}, got)
}

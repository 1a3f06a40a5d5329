package convert

// The key maps from diffusers' and transformers' names back to the original
// single-file layout (CompVis LDM for SD 1.x/2.x, Stability SGM for SDXL, with
// OpenCLIP text towers): the exact inverse of what package model's single-file
// loader maps, as diffusers' convert_diffusers_to_original_stable_diffusion.py
// and convert_diffusers_to_original_sdxl.py write them.

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sdgo/sdgo/diffusion/model"
	"github.com/sdgo/sdgo/diffusion/unet"
	"github.com/sdgo/sdgo/diffusion/vae"
)

// The prefixes of the components in a single-file checkpoint.
const (
	prefixUNet     = "model.diffusion_model."
	prefixVAE      = "first_stage_model."
	prefixSD1Text  = "cond_stage_model.transformer."
	prefixSD2Text  = "cond_stage_model.model."
	prefixXLText1  = "conditioner.embedders.0.transformer."
	prefixXLText2  = "conditioner.embedders.1.model."
	prefixRefiner2 = "conditioner.embedders.0.model."
)

// textSpec says where a text encoder goes in a single file.
type textSpec struct {
	prefix   string
	openCLIP bool // OpenCLIP layout (resblocks, fused in_proj) rather than transformers'
}

// textSpecOf gives the place of a family's text encoder in a single file.
func textSpecOf(f model.Family, encoder string) (textSpec, bool) {
	switch {
	case f == model.SD1 && encoder == "text_encoder":
		return textSpec{prefixSD1Text, false}, true
	case f == model.SD2 && encoder == "text_encoder":
		return textSpec{prefixSD2Text, true}, true
	case f == model.SDXL && encoder == "text_encoder":
		return textSpec{prefixXLText1, false}, true
	case f == model.SDXL && encoder == "text_encoder_2":
		return textSpec{prefixXLText2, true}, true
	case f == model.SDXLRefiner && encoder == "text_encoder_2":
		return textSpec{prefixRefiner2, true}, true
	}
	return textSpec{}, false
}

// cut splits "3.rest" into 3 and "rest".
func cut(s string) (int, string, bool) {
	head, rest, ok := strings.Cut(s, ".")
	if !ok {
		return 0, "", false
	}
	n, err := strconv.Atoi(head)
	if err != nil || n < 0 || strconv.Itoa(n) != head {
		return 0, "", false
	}
	return n, rest, true
}

// replacePrefix returns s with the first matching old prefix replaced.
func replacePrefix(s string, pairs ...string) (string, bool) {
	for i := 0; i+1 < len(pairs); i += 2 {
		if rest, ok := strings.CutPrefix(s, pairs[i]); ok {
			return pairs[i+1] + rest, true
		}
	}
	return "", false
}

// ldmResnet maps a diffusers ResnetBlock2D parameter of the UNet to its LDM
// ResBlock name.
func ldmResnet(rest string) (string, bool) {
	return replacePrefix(rest,
		"norm1.", "in_layers.0.",
		"conv1.", "in_layers.2.",
		"norm2.", "out_layers.0.",
		"conv2.", "out_layers.3.",
		"time_emb_proj.", "emb_layers.1.",
		"conv_shortcut.", "skip_connection.")
}

// ldmAttention checks a Transformer2DModel parameter, whose names the LDM
// SpatialTransformer shares.
func ldmAttention(rest string) (string, bool) {
	for _, p := range []string{"norm.", "proj_in.", "proj_out.", "transformer_blocks."} {
		if strings.HasPrefix(rest, p) {
			return rest, true
		}
	}
	return "", false
}

// unetLayout numbers the LDM input and output blocks of a UNet config: which
// input_blocks.N holds each down block layer and downsampler, and which
// output_blocks.N each up block layer.
type unetLayout struct {
	in   map[[2]int]int // (level, layer) -> input block
	down map[int]int    // level -> input block of its downsampler
	out  map[[2]int]int // (up block, layer) -> output block
}

func layoutOf(c unet.Config) unetLayout {
	l := unetLayout{in: map[[2]int]int{}, down: map[int]int{}, out: map[[2]int]int{}}
	n := c.Levels()
	i := 1 // input_blocks.0 is conv_in
	for lv := range n {
		for j := range c.Layers(lv) {
			l.in[[2]int{lv, j}] = i
			i++
		}
		if lv < n-1 {
			l.down[lv] = i
			i++
		}
	}
	o := 0
	for u := range n {
		for j := range c.UpLayers(u) {
			l.out[[2]int{u, j}] = o
			o++
		}
	}
	return l
}

// ldmUNetKey maps a diffusers UNet2DConditionModel name to its key under
// model.diffusion_model. (prefix not included).
func ldmUNetKey(name string, c unet.Config, l unetLayout) (string, error) {
	if s, ok := replacePrefix(name,
		"time_embedding.linear_1.", "time_embed.0.",
		"time_embedding.linear_2.", "time_embed.2.",
		"conv_in.", "input_blocks.0.0.",
		"conv_norm_out.", "out.0.",
		"conv_out.", "out.2."); ok {
		return s, nil
	}
	for _, emb := range []string{"add_embedding.", "class_embedding."} {
		if rest, ok := strings.CutPrefix(name, emb); ok {
			if emb == "add_embedding." && c.AdditionEmbedType != "text_time" {
				return "", fmt.Errorf("an add_embedding, but the UNet config's addition_embed_type is %q (want text_time)", c.AdditionEmbedType)
			}
			if emb == "class_embedding." && (c.ClassEmbedType == "" || c.AdditionEmbedType == "text_time") {
				return "", fmt.Errorf("a class_embedding, which the single-file layout holds only for a UNet with class_embed_type and no addition_embed_type")
			}
			if s, ok := replacePrefix(rest, "linear_1.", "label_emb.0.0.", "linear_2.", "label_emb.0.2."); ok {
				return s, nil
			}
			return "", fmt.Errorf("unknown %s parameter", strings.TrimSuffix(emb, "."))
		}
	}
	if rest, ok := strings.CutPrefix(name, "down_blocks."); ok {
		lv, rest, ok := cut(rest)
		if !ok || lv >= c.Levels() {
			return "", fmt.Errorf("no such down block in a UNet of %d levels", c.Levels())
		}
		if r, ok := strings.CutPrefix(rest, "downsamplers.0.conv."); ok {
			if i, ok := l.down[lv]; ok {
				return fmt.Sprintf("input_blocks.%d.0.op.%s", i, r), nil
			}
			return "", fmt.Errorf("down block %d is the lowest level and has no downsampler", lv)
		}
		for _, part := range []string{"resnets.", "attentions."} {
			r, ok := strings.CutPrefix(rest, part)
			if !ok {
				continue
			}
			j, r, ok := cut(r)
			i, has := l.in[[2]int{lv, j}]
			if !ok || !has {
				return "", fmt.Errorf("down block %d has %d layers", lv, c.Layers(lv))
			}
			if part == "resnets." {
				if s, ok := ldmResnet(r); ok {
					return fmt.Sprintf("input_blocks.%d.0.%s", i, s), nil
				}
			} else if c.HasCrossAttention(lv) {
				if s, ok := ldmAttention(r); ok {
					return fmt.Sprintf("input_blocks.%d.1.%s", i, s), nil
				}
			}
		}
		return "", fmt.Errorf("no place for it in down block %d (%s)", lv, c.DownBlockTypes[lv])
	}
	if rest, ok := strings.CutPrefix(name, "mid_block."); ok {
		hasAttn := c.MidBlockType == "UNetMidBlock2DCrossAttn"
		if c.MidBlockType != "" {
			if r, ok := strings.CutPrefix(rest, "resnets.0."); ok {
				if s, ok := ldmResnet(r); ok {
					return "middle_block.0." + s, nil
				}
			}
			if r, ok := strings.CutPrefix(rest, "attentions.0."); ok && hasAttn {
				if s, ok := ldmAttention(r); ok {
					return "middle_block.1." + s, nil
				}
			}
			if r, ok := strings.CutPrefix(rest, "resnets.1."); ok {
				if s, ok := ldmResnet(r); ok {
					if hasAttn {
						return "middle_block.2." + s, nil
					}
					return "middle_block.1." + s, nil
				}
			}
		}
		return "", fmt.Errorf("no place for it in the mid block (%q)", c.MidBlockType)
	}
	if rest, ok := strings.CutPrefix(name, "up_blocks."); ok {
		u, rest, ok := cut(rest)
		if !ok || u >= c.Levels() {
			return "", fmt.Errorf("no such up block in a UNet of %d levels", c.Levels())
		}
		attn := c.UpHasCrossAttention(u)
		last := c.UpLayers(u) - 1
		if r, ok := strings.CutPrefix(rest, "upsamplers.0."); ok && strings.HasPrefix(r, "conv.") {
			if u == c.Levels()-1 {
				return "", fmt.Errorf("up block %d is the top level and has no upsampler", u)
			}
			sub := 1
			if attn {
				sub = 2
			}
			return fmt.Sprintf("output_blocks.%d.%d.%s", l.out[[2]int{u, last}], sub, r), nil
		}
		for _, part := range []string{"resnets.", "attentions."} {
			r, ok := strings.CutPrefix(rest, part)
			if !ok {
				continue
			}
			j, r, ok := cut(r)
			i, has := l.out[[2]int{u, j}]
			if !ok || !has {
				return "", fmt.Errorf("up block %d has %d layers", u, last+1)
			}
			if part == "resnets." {
				if s, ok := ldmResnet(r); ok {
					return fmt.Sprintf("output_blocks.%d.0.%s", i, s), nil
				}
			} else if attn {
				if s, ok := ldmAttention(r); ok {
					return fmt.Sprintf("output_blocks.%d.1.%s", i, s), nil
				}
			}
		}
		return "", fmt.Errorf("no place for it in up block %d (%s)", u, c.UpBlockTypes[u])
	}
	return "", fmt.Errorf("not a UNet2DConditionModel parameter")
}

// ldmVAEResnet maps a diffusers ResnetBlock2D parameter of the autoencoder to
// its LDM name.
func ldmVAEResnet(rest string) (string, bool) {
	for _, p := range []string{"norm1.", "conv1.", "norm2.", "conv2."} {
		if strings.HasPrefix(rest, p) {
			return rest, true
		}
	}
	return replacePrefix(rest, "conv_shortcut.", "nin_shortcut.")
}

// ldmVAEKey maps a diffusers AutoencoderKL name to its key under
// first_stage_model. (prefix not included); reshape is set for the mid
// attention's linear weights, which the LDM layout holds as 1x1 convolutions.
func ldmVAEKey(name string, c vae.Config) (key string, reshape bool, err error) {
	if strings.HasPrefix(name, "quant_conv.") || strings.HasPrefix(name, "post_quant_conv.") {
		return name, false, nil
	}
	side, rest, _ := strings.Cut(name, ".")
	if side != "encoder" && side != "decoder" {
		return "", false, fmt.Errorf("not an AutoencoderKL parameter")
	}
	n := c.Levels()
	bad := func(what string) (string, bool, error) {
		return "", false, fmt.Errorf("%s in a VAE of %d levels with layers_per_block %d", what, n, c.LayersPerBlock)
	}
	if s, ok := replacePrefix(rest, "conv_in.", "conv_in.", "conv_out.", "conv_out.", "conv_norm_out.", "norm_out."); ok {
		return side + "." + s, false, nil
	}
	if r, ok := strings.CutPrefix(rest, "mid_block."); ok {
		for i, b := range []string{"resnets.0.", "resnets.1."} {
			if r, ok := strings.CutPrefix(r, b); ok {
				if s, ok := ldmVAEResnet(r); ok {
					return fmt.Sprintf("%s.mid.block_%d.%s", side, i+1, s), false, nil
				}
			}
		}
		if a, ok := strings.CutPrefix(r, "attentions.0."); ok {
			if s, ok := replacePrefix(a, "group_norm.", "norm.", "to_q.", "q.", "to_k.", "k.", "to_v.", "v.", "to_out.0.", "proj_out."); ok {
				return side + ".mid.attn_1." + s, strings.HasSuffix(s, ".weight") && !strings.HasPrefix(s, "norm."), nil
			}
		}
		return bad("unknown mid block parameter")
	}
	block, level, sampler, ldmSampler := "down_blocks.", "down.", "downsamplers.0.conv.", "downsample.conv."
	if side == "decoder" {
		block, level, sampler, ldmSampler = "up_blocks.", "up.", "upsamplers.0.conv.", "upsample.conv."
	}
	r, ok := strings.CutPrefix(rest, block)
	if !ok {
		return bad("unknown parameter")
	}
	i, r, ok := cut(r)
	if !ok || i >= n {
		return bad(strings.TrimSuffix(name[:len(name)-len(r)], "."))
	}
	ldmLevel := i
	if side == "decoder" {
		ldmLevel = n - 1 - i // LDM numbers the decoder's levels from the bottom
	}
	if b, ok := strings.CutPrefix(r, "resnets."); ok {
		j, b, ok := cut(b)
		layers := c.LayersPerBlock // the decoder's up blocks have one more
		if side == "decoder" {
			layers++
		}
		if ok && j < layers {
			if s, ok := ldmVAEResnet(b); ok {
				return fmt.Sprintf("%s.%s%d.block.%d.%s", side, level, ldmLevel, j, s), false, nil
			}
		}
		return bad("unknown resnet parameter")
	}
	if s, ok := strings.CutPrefix(r, sampler); ok {
		return fmt.Sprintf("%s.%s%d.%s%s", side, level, ldmLevel, ldmSampler, s), false, nil
	}
	return bad("unknown parameter")
}

// openCLIPKey maps a transformers CLIPTextModel(WithProjection) name to its
// OpenCLIP key (prefix not included). The q, k and v projections of a layer
// all map to its fused in_proj (fused reports which of the three, 0 to 2);
// the projection is stored transposed. skip is set for what OpenCLIP has no
// place for (transformers' position_ids buffer).
func openCLIPKey(name string) (key string, fused int, transpose, skip bool, err error) {
	fused = -1
	switch name {
	case "text_model.embeddings.token_embedding.weight":
		return "token_embedding.weight", fused, false, false, nil
	case "text_model.embeddings.position_embedding.weight":
		return "positional_embedding", fused, false, false, nil
	case "text_model.embeddings.position_ids":
		return "", fused, false, true, nil
	case "text_model.final_layer_norm.weight", "text_model.final_layer_norm.bias":
		return "ln_final." + strings.TrimPrefix(name, "text_model.final_layer_norm."), fused, false, false, nil
	case "text_projection.weight":
		// OpenCLIP computes x @ text_projection; a Linear layer holds the transpose.
		return "text_projection", fused, true, false, nil
	}
	rest, ok := strings.CutPrefix(name, "text_model.encoder.layers.")
	if !ok {
		return "", fused, false, false, fmt.Errorf("not a CLIP text model parameter")
	}
	n, rest, ok := cut(rest)
	if !ok {
		return "", fused, false, false, fmt.Errorf("not a CLIP text model parameter")
	}
	block := fmt.Sprintf("transformer.resblocks.%d.", n)
	if s, ok := replacePrefix(rest,
		"layer_norm1.", "ln_1.",
		"layer_norm2.", "ln_2.",
		"self_attn.out_proj.", "attn.out_proj.",
		"mlp.fc1.", "mlp.c_fc.",
		"mlp.fc2.", "mlp.c_proj."); ok {
		return block + s, fused, false, false, nil
	}
	for i, p := range []string{"self_attn.q_proj.", "self_attn.k_proj.", "self_attn.v_proj."} {
		switch rest {
		case p + "weight":
			return block + "attn.in_proj_weight", i, false, false, nil
		case p + "bias":
			return block + "attn.in_proj_bias", i, false, false, nil
		}
	}
	return "", fused, false, false, fmt.Errorf("unknown text encoder layer parameter")
}

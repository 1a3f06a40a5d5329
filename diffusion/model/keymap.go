package model

// The key maps from the original (CompVis LDM, Stability SGM, OpenCLIP)
// checkpoint layout to diffusers' and transformers' names, as diffusers'
// single_file_utils.py converts them. Each function takes a key with its
// component prefix removed and returns the diffusers name.

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sdgo/sdgo/diffusion/clip"
	"github.com/sdgo/sdgo/diffusion/unet"
	"github.com/sdgo/sdgo/diffusion/vae"
	"github.com/sdgo/sdgo/diffusion/weights"
)

// The prefixes of the components in a single-file checkpoint.
const (
	prefixUNet     = "model.diffusion_model."
	prefixVAE      = "first_stage_model."
	prefixVAEAlt   = "vae."
	prefixSD1Text  = "cond_stage_model.transformer."
	prefixSD2Text  = "cond_stage_model.model."
	prefixXLText1  = "conditioner.embedders.0.transformer."
	prefixXLText2  = "conditioner.embedders.1.model."
	prefixRefiner2 = "conditioner.embedders.0.model."
)

// cut splits "3.rest" into 3 and "rest".
func cut(s string) (int, string, bool) {
	head, rest, ok := strings.Cut(s, ".")
	if !ok {
		return 0, "", false
	}
	n, err := strconv.Atoi(head)
	if err != nil || n < 0 {
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

// unetResnet maps an LDM ResBlock's parameter to diffusers' ResnetBlock2D.
func unetResnet(rest string) (string, bool) {
	return replacePrefix(rest,
		"in_layers.0.", "norm1.",
		"in_layers.2.", "conv1.",
		"out_layers.0.", "norm2.",
		"out_layers.3.", "conv2.",
		"emb_layers.1.", "time_emb_proj.",
		"skip_connection.", "conv_shortcut.")
}

// unetAttention checks an LDM SpatialTransformer parameter, whose names
// diffusers' Transformer2DModel kept.
func unetAttention(rest string) (string, bool) {
	for _, p := range []string{"norm.", "proj_in.", "proj_out.", "transformer_blocks."} {
		if strings.HasPrefix(rest, p) {
			return rest, true
		}
	}
	return "", false
}

// unetLayout is where each LDM input and output block goes in diffusers' UNet.
type unetLayout struct {
	in  []blockPos // input_blocks[i] for i >= 1
	out []blockPos // output_blocks[i]
}

type blockPos struct {
	level, layer int
	sample       bool // input: the level's downsampler; output: the block's last layer, which holds the upsampler
}

func layoutOf(c unet.Config) unetLayout {
	var l unetLayout
	n := c.Levels()
	for lv := range n {
		for j := range c.Layers(lv) {
			l.in = append(l.in, blockPos{level: lv, layer: j})
		}
		if lv < n-1 {
			l.in = append(l.in, blockPos{level: lv, layer: c.Layers(lv), sample: true})
		}
	}
	for u := range n {
		k := c.UpLayers(u)
		for j := range k {
			l.out = append(l.out, blockPos{level: u, layer: j, sample: j == k-1 && u < n-1})
		}
	}
	return l
}

// unetName maps a key of model.diffusion_model.* (prefix removed) to its
// diffusers UNet2DConditionModel name.
func unetName(key string, c unet.Config, l unetLayout) (string, error) {
	if s, ok := replacePrefix(key,
		"time_embed.0.", "time_embedding.linear_1.",
		"time_embed.2.", "time_embedding.linear_2.",
		"input_blocks.0.0.", "conv_in.",
		"out.0.", "conv_norm_out.",
		"out.2.", "conv_out."); ok {
		return s, nil
	}
	if rest, ok := strings.CutPrefix(key, "label_emb.0."); ok {
		emb := ""
		switch {
		case c.AdditionEmbedType == "text_time":
			emb = "add_embedding."
		case c.ClassEmbedType != "":
			emb = "class_embedding."
		default:
			return "", fmt.Errorf("the file has a label embedding (SDXL-style conditioning) but the UNet config has no addition_embed_type or class_embed_type")
		}
		if s, ok := replacePrefix(rest, "0.", "linear_1.", "2.", "linear_2."); ok {
			return emb + s, nil
		}
		return "", fmt.Errorf("unknown label embedding parameter")
	}
	if rest, ok := strings.CutPrefix(key, "input_blocks."); ok {
		i, rest, ok := cut(rest)
		if !ok || i == 0 || i > len(l.in) {
			return "", fmt.Errorf("input block %d does not exist in a UNet of %d levels with layers_per_block %v", i, c.Levels(), []int(c.LayersPerBlock))
		}
		p := l.in[i-1]
		sub, rest, ok := cut(rest)
		switch {
		case !ok:
		case p.sample && sub == 0 && strings.HasPrefix(rest, "op."):
			return fmt.Sprintf("down_blocks.%d.downsamplers.0.conv.%s", p.level, strings.TrimPrefix(rest, "op.")), nil
		case p.sample:
			return "", fmt.Errorf("input block %d is the downsampler of level %d (want %d.0.op.*)", i, p.level, i)
		case sub == 0:
			if s, ok := unetResnet(rest); ok {
				return fmt.Sprintf("down_blocks.%d.resnets.%d.%s", p.level, p.layer, s), nil
			}
		case sub == 1 && c.HasCrossAttention(p.level):
			if s, ok := unetAttention(rest); ok {
				return fmt.Sprintf("down_blocks.%d.attentions.%d.%s", p.level, p.layer, s), nil
			}
		}
		return "", fmt.Errorf("no place for it in down block %d (%s)", p.level, c.DownBlockTypes[p.level])
	}
	if rest, ok := strings.CutPrefix(key, "middle_block."); ok {
		sub, rest, ok := cut(rest)
		hasAttn := c.MidBlockType == "UNetMidBlock2DCrossAttn"
		switch {
		case !ok || c.MidBlockType == "":
		case sub == 0:
			if s, ok := unetResnet(rest); ok {
				return "mid_block.resnets.0." + s, nil
			}
		case sub == 1 && hasAttn:
			if s, ok := unetAttention(rest); ok {
				return "mid_block.attentions.0." + s, nil
			}
		case (sub == 2 && hasAttn) || (sub == 1 && !hasAttn):
			if s, ok := unetResnet(rest); ok {
				return "mid_block.resnets.1." + s, nil
			}
		}
		return "", fmt.Errorf("no place for it in the mid block (%q)", c.MidBlockType)
	}
	if rest, ok := strings.CutPrefix(key, "output_blocks."); ok {
		i, rest, ok := cut(rest)
		if !ok || i >= len(l.out) {
			return "", fmt.Errorf("output block %d does not exist in a UNet of %d levels with layers_per_block %v", i, c.Levels(), []int(c.LayersPerBlock))
		}
		p := l.out[i]
		sub, rest, ok := cut(rest)
		attn := c.UpHasCrossAttention(p.level)
		switch {
		case !ok:
		case sub == 0:
			if s, ok := unetResnet(rest); ok {
				return fmt.Sprintf("up_blocks.%d.resnets.%d.%s", p.level, p.layer, s), nil
			}
		case sub == 1 && attn && !strings.HasPrefix(rest, "conv."):
			if s, ok := unetAttention(rest); ok {
				return fmt.Sprintf("up_blocks.%d.attentions.%d.%s", p.level, p.layer, s), nil
			}
		case p.sample && ((sub == 1 && !attn) || (sub == 2 && attn)) && strings.HasPrefix(rest, "conv."):
			return fmt.Sprintf("up_blocks.%d.upsamplers.0.%s", p.level, rest), nil
		}
		return "", fmt.Errorf("no place for it in up block %d (%s)", p.level, c.UpBlockTypes[p.level])
	}
	return "", fmt.Errorf("not a UNet parameter")
}

// unetEntry makes the entry for a mapped UNet tensor: the transformers'
// proj_in/proj_out are 1x1 convolutions or linear layers depending on
// use_linear_projection, and either form is reshaped to the config's.
func unetEntry(name, from string, info weights.Info, c unet.Config) entry {
	e := entry{from: from, info: info}
	if !strings.Contains(name, "attentions.") || !(strings.HasSuffix(name, ".proj_in.weight") || strings.HasSuffix(name, ".proj_out.weight")) {
		return e
	}
	s := info.Shape
	switch {
	case c.UseLinearProjection && len(s) == 4 && s[2] == 1 && s[3] == 1:
		e.op, e.info.Shape = opReshape, []int{s[0], s[1]}
	case !c.UseLinearProjection && len(s) == 2:
		e.op, e.info.Shape = opReshape, []int{s[0], s[1], 1, 1}
	}
	return e
}

// vaeResnet maps an LDM ResnetBlock parameter of the autoencoder.
func vaeResnet(rest string) (string, bool) {
	for _, p := range []string{"norm1.", "conv1.", "norm2.", "conv2."} {
		if strings.HasPrefix(rest, p) {
			return rest, true
		}
	}
	return replacePrefix(rest, "nin_shortcut.", "conv_shortcut.")
}

// vaeName maps a key of first_stage_model.* (prefix removed) to its diffusers
// AutoencoderKL name; reshape is set for the mid attention's 1x1 convolutions,
// which diffusers holds as linear layers. ignore is set for parts that are no
// part of the autoencoder (the training loss).
func vaeName(key string, c vae.Config) (name string, reshape, ignore bool, err error) {
	if strings.HasPrefix(key, "quant_conv.") || strings.HasPrefix(key, "post_quant_conv.") {
		return key, false, false, nil
	}
	side, rest, _ := strings.Cut(key, ".")
	if side != "encoder" && side != "decoder" {
		return "", false, true, nil
	}
	bad := func(what string) (string, bool, bool, error) {
		return "", false, false, fmt.Errorf("%s in a VAE of %d levels", what, c.Levels())
	}
	if s, ok := replacePrefix(rest, "conv_in.", "conv_in.", "conv_out.", "conv_out.", "norm_out.", "conv_norm_out."); ok {
		return side + "." + s, false, false, nil
	}
	if r, ok := strings.CutPrefix(rest, "mid."); ok {
		for i, b := range []string{"block_1.", "block_2."} {
			if r, ok := strings.CutPrefix(r, b); ok {
				if s, ok := vaeResnet(r); ok {
					return fmt.Sprintf("%s.mid_block.resnets.%d.%s", side, i, s), false, false, nil
				}
			}
		}
		if a, ok := strings.CutPrefix(r, "attn_1."); ok {
			if s, ok := replacePrefix(a, "norm.", "group_norm.", "q.", "to_q.", "k.", "to_k.", "v.", "to_v.", "proj_out.", "to_out.0."); ok {
				return side + ".mid_block.attentions.0." + s, strings.HasSuffix(s, ".weight") && !strings.HasPrefix(s, "group_norm."), false, nil
			}
		}
		return bad("unknown mid block parameter")
	}
	block, levelKey := "down_blocks", "down."
	if side == "decoder" {
		block, levelKey = "up_blocks", "up."
	}
	r, ok := strings.CutPrefix(rest, levelKey)
	if !ok {
		return bad("unknown parameter")
	}
	i, r, ok := cut(r)
	if !ok || i >= c.Levels() {
		return bad(fmt.Sprintf("level %d", i))
	}
	if side == "decoder" {
		i = c.Levels() - 1 - i // LDM numbers the decoder's levels from the bottom
	}
	if b, ok := strings.CutPrefix(r, "block."); ok {
		j, b, ok := cut(b)
		layers := c.LayersPerBlock // the decoder's up blocks have one more
		if side == "decoder" {
			layers++
		}
		if ok && j < layers {
			if s, ok := vaeResnet(b); ok {
				return fmt.Sprintf("%s.%s.%d.resnets.%d.%s", side, block, i, j, s), false, false, nil
			}
		}
		return bad("unknown resnet parameter")
	}
	sampler := "downsample.conv."
	samplers := "downsamplers"
	if side == "decoder" {
		sampler, samplers = "upsample.conv.", "upsamplers"
	}
	if s, ok := strings.CutPrefix(r, sampler); ok {
		return fmt.Sprintf("%s.%s.%d.%s.0.conv.%s", side, block, i, samplers, s), false, false, nil
	}
	return bad("unknown parameter")
}

// vaeEntry makes the entry for a mapped VAE tensor: the mid attention's
// weights, 1x1 convolutions (or 1-D ones) in LDM files, become [out, in].
func vaeEntry(from string, info weights.Info, reshape bool) entry {
	e := entry{from: from, info: info}
	if s := info.Shape; reshape && len(s) > 2 {
		e.op, e.info.Shape = opReshape, []int{s[0], s[1]}
	}
	return e
}

// textLayer reports the encoder layer index of a text_model.encoder.layers.N.* name.
func textLayer(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "text_model.encoder.layers.")
	if !ok {
		return 0, false
	}
	n, _, ok := cut(rest)
	return n, ok
}

// clipName maps a key of a transformers CLIPTextModel stored in a checkpoint
// (cond_stage_model.transformer.*, prefix removed) to the text_model.-prefixed
// name; "" for what the model does not use (position_ids, layers beyond
// num_hidden_layers).
func clipName(key string, c clip.Config) string {
	if !strings.HasPrefix(key, "text_model.") && key != "text_projection.weight" {
		key = "text_model." + key
	}
	if key == "text_model.embeddings.position_ids" {
		return ""
	}
	if n, ok := textLayer(key); ok && n >= c.NumHiddenLayers {
		return ""
	}
	return key
}

// openCLIPEntries maps one OpenCLIP text-tower key (prefix removed) onto
// transformers' CLIPTextModel names, adding its entries to m. It reports
// whether the key was used: blocks beyond num_hidden_layers, the projection of
// a model without one, logit_scale and attn_mask are not.
func openCLIPEntries(m *mapping, key, from string, info weights.Info, c clip.Config) (bool, error) {
	add := func(name string, e entry) (bool, error) {
		e.from = from
		if e.op == opCopy {
			e.info = info
		}
		return true, m.add(name, e)
	}
	switch key {
	case "token_embedding.weight":
		return add("text_model.embeddings.token_embedding.weight", entry{})
	case "positional_embedding":
		return add("text_model.embeddings.position_embedding.weight", entry{})
	case "ln_final.weight", "ln_final.bias":
		return add("text_model.final_layer_norm."+strings.TrimPrefix(key, "ln_final."), entry{})
	case "text_projection":
		if !c.WithProjection() {
			return false, nil
		}
		if len(info.Shape) != 2 {
			return false, fmt.Errorf("text_projection has shape %v; want a matrix", info.Shape)
		}
		// OpenCLIP computes x @ text_projection; a Linear layer holds the transpose.
		return add("text_projection.weight", entry{op: opTranspose, info: weights.Info{DType: info.DType, Shape: []int{info.Shape[1], info.Shape[0]}}})
	}
	rest, ok := strings.CutPrefix(key, "transformer.resblocks.")
	if !ok {
		return false, nil
	}
	n, rest, ok := cut(rest)
	if !ok {
		return false, fmt.Errorf("unknown text encoder parameter")
	}
	if n >= c.NumHiddenLayers {
		return false, nil
	}
	layer := fmt.Sprintf("text_model.encoder.layers.%d.", n)
	if s, ok := replacePrefix(rest,
		"ln_1.", "layer_norm1.",
		"ln_2.", "layer_norm2.",
		"attn.out_proj.", "self_attn.out_proj.",
		"mlp.c_fc.", "mlp.fc1.",
		"mlp.c_proj.", "mlp.fc2."); ok {
		return add(layer+s, entry{})
	}
	suffix := ""
	switch rest {
	case "attn.in_proj_weight":
		suffix = "weight"
	case "attn.in_proj_bias":
		suffix = "bias"
	default:
		return false, fmt.Errorf("unknown text encoder parameter")
	}
	// The fused projection holds q, k and v one after the other.
	if len(info.Shape) == 0 || info.Shape[0]%3 != 0 || info.Shape[0]/3 != c.HiddenSize {
		return false, fmt.Errorf("fused attention projection of shape %v; want [3 x %d, ...]", info.Shape, c.HiddenSize)
	}
	h := info.Shape[0] / 3
	for i, p := range []string{"q_proj", "k_proj", "v_proj"} {
		shape := append([]int{h}, info.Shape[1:]...)
		e := entry{op: opRows, start: i * h, n: h, info: weights.Info{DType: info.DType, Shape: shape}}
		if _, err := add(layer+"self_attn."+p+"."+suffix, e); err != nil {
			return false, err
		}
	}
	return true, nil
}

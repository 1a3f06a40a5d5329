package model

import (
	"fmt"
	"slices"

	"github.com/sdgo/sdgo/diffusion/clip"
	"github.com/sdgo/sdgo/diffusion/unet"
	"github.com/sdgo/sdgo/diffusion/vae"
	"github.com/sdgo/sdgo/diffusion/weights"
)

// The checks below compare a few telling tensors with what the configs imply,
// so that weights and an architecture that do not belong together (a wrong
// Options.Config, a config.json from another model) fail at load time with an
// error that names the file, the tensor and the expected shape, rather than
// deep inside a forward pass.

// shapeCheck is one expected tensor; a nil shape only asks for presence.
type shapeCheck struct {
	name  string
	shape []int
	why   string
}

func runChecks(src weights.Source, where, component string, checks []shapeCheck) error {
	for _, c := range checks {
		info, ok := src.Info(c.name)
		if !ok {
			return fmt.Errorf("%s: %s: no tensor %q, which the config implies (%s)", where, component, c.name, c.why)
		}
		if c.shape != nil && !slices.Equal(info.Shape, c.shape) {
			return fmt.Errorf("%s: %s: tensor %q has shape %v; the config implies %v (%s)", where, component, c.name, info.Shape, c.shape, c.why)
		}
	}
	return nil
}

func checkUNet(src weights.Source, c unet.Config, where string) error {
	b0, kin, kout := c.BlockOutChannels[0], c.ConvInKernel, c.ConvOutKernel
	checks := []shapeCheck{
		{"conv_in.weight", []int{b0, c.InChannels, kin, kin}, fmt.Sprintf("in_channels %d, block_out_channels[0] %d", c.InChannels, b0)},
		{"conv_out.weight", []int{c.OutChannels, b0, kout, kout}, fmt.Sprintf("out_channels %d", c.OutChannels)},
		{"time_embedding.linear_1.weight", []int{c.TimeEmbedDim(), b0}, "time embedding width"},
	}
	for l := range c.Levels() {
		ch := c.BlockOutChannels[l]
		last := c.Layers(l) - 1
		checks = append(checks, shapeCheck{fmt.Sprintf("down_blocks.%d.resnets.%d.conv1.weight", l, last), nil,
			fmt.Sprintf("layers_per_block %d at level %d", c.Layers(l), l)})
		checks = append(checks, shapeCheck{fmt.Sprintf("down_blocks.%d.resnets.%d.conv2.weight", l, last), []int{ch, ch, 3, 3},
			fmt.Sprintf("block_out_channels[%d] %d", l, ch)})
		if c.HasCrossAttention(l) {
			t := c.TransformerLayers(l) - 1
			checks = append(checks, shapeCheck{
				fmt.Sprintf("down_blocks.%d.attentions.0.transformer_blocks.%d.attn2.to_k.weight", l, t),
				[]int{ch, c.CrossAttentionDimAt(l)},
				fmt.Sprintf("cross_attention_dim %d and transformer_layers_per_block %d at level %d", c.CrossAttentionDimAt(l), t+1, l)})
		}
	}
	if c.MidBlockType == "UNetMidBlock2DCrossAttn" {
		t := c.MidTransformerLayers() - 1
		ch := c.BlockOutChannels[c.Levels()-1]
		checks = append(checks, shapeCheck{fmt.Sprintf("mid_block.attentions.0.transformer_blocks.%d.attn2.to_k.weight", t),
			[]int{ch, c.MidCrossAttentionDim()}, fmt.Sprintf("mid block with %d transformer layers", t+1)})
	}
	if c.AdditionEmbedType == "text_time" {
		checks = append(checks, shapeCheck{"add_embedding.linear_1.weight", []int{c.TimeEmbedDim(), c.ProjectionClassEmbeddingsInputDim},
			fmt.Sprintf("projection_class_embeddings_input_dim %d", c.ProjectionClassEmbeddingsInputDim)})
	}
	return runChecks(src, where, "unet", checks)
}

func checkVAE(src weights.Source, c vae.Config, where string) error {
	n := c.Levels()
	b0, bl := c.BlockOutChannels[0], c.BlockOutChannels[n-1]
	checks := []shapeCheck{
		{"encoder.conv_in.weight", []int{b0, c.InChannels, 3, 3}, fmt.Sprintf("in_channels %d, block_out_channels[0] %d", c.InChannels, b0)},
		{"encoder.conv_out.weight", []int{2 * c.LatentChannels, bl, 3, 3}, fmt.Sprintf("latent_channels %d", c.LatentChannels)},
		{"decoder.conv_in.weight", []int{bl, c.LatentChannels, 3, 3}, fmt.Sprintf("latent_channels %d", c.LatentChannels)},
		{"decoder.conv_out.weight", []int{c.OutChannels, b0, 3, 3}, fmt.Sprintf("out_channels %d", c.OutChannels)},
		{fmt.Sprintf("encoder.down_blocks.%d.resnets.%d.conv1.weight", n-1, c.LayersPerBlock-1), []int{bl, bl, 3, 3},
			fmt.Sprintf("%d levels of %d layers", n, c.LayersPerBlock)},
		{fmt.Sprintf("decoder.up_blocks.%d.resnets.%d.conv1.weight", n-1, c.LayersPerBlock), nil,
			fmt.Sprintf("%d levels of %d layers", n, c.LayersPerBlock)},
	}
	if c.UseQuantConv {
		checks = append(checks, shapeCheck{"quant_conv.weight", []int{2 * c.LatentChannels, 2 * c.LatentChannels, 1, 1}, "use_quant_conv"})
	}
	if c.UsePostQuantConv {
		checks = append(checks, shapeCheck{"post_quant_conv.weight", []int{c.LatentChannels, c.LatentChannels, 1, 1}, "use_post_quant_conv"})
	}
	if c.MidBlockAddAttention {
		checks = append(checks, shapeCheck{"decoder.mid_block.attentions.0.to_q.weight", []int{bl, bl}, "mid_block_add_attention"})
	}
	return runChecks(src, where, "vae", checks)
}

func checkText(src weights.Source, c clip.Config, where, name string) error {
	h := c.HiddenSize
	last := fmt.Sprintf("text_model.encoder.layers.%d.", c.NumHiddenLayers-1)
	checks := []shapeCheck{
		{"text_model.embeddings.token_embedding.weight", []int{c.VocabSize, h}, fmt.Sprintf("vocab_size %d, hidden_size %d", c.VocabSize, h)},
		{"text_model.embeddings.position_embedding.weight", []int{c.MaxPositionEmbeddings, h}, fmt.Sprintf("max_position_embeddings %d", c.MaxPositionEmbeddings)},
		{last + "self_attn.q_proj.weight", []int{h, h}, fmt.Sprintf("num_hidden_layers %d", c.NumHiddenLayers)},
		{last + "mlp.fc1.weight", []int{c.IntermediateSize, h}, fmt.Sprintf("intermediate_size %d", c.IntermediateSize)},
		{"text_model.final_layer_norm.weight", []int{h}, "final layer norm"},
	}
	if c.WithProjection() {
		checks = append(checks, shapeCheck{"text_projection.weight", []int{c.ProjectionDim, h}, fmt.Sprintf("projection_dim %d", c.ProjectionDim)})
	}
	return runChecks(src, where, name, checks)
}

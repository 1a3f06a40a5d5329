package unet

import (
	"fmt"
	"iter"

	"github.com/sdgo/sdgo/nn"
)

// Layers yields the network's Linear and Conv2d layers, the layers low-rank
// adapters (LoRAs) attach to, under their diffusers module names: "conv_in",
// "time_embedding.linear_1", "down_blocks.1.resnets.0.conv1",
// "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
// "up_blocks.0.upsamplers.0.conv", "conv_out", ... (the names of their weights
// without ".weight"), in the order the network runs them.
func (m *Model) Layers() iter.Seq2[string, nn.Adaptable] {
	return nn.LayerSeq(m.visitLayers)
}

func (m *Model) visitLayers(v nn.LayerVisitor) {
	v("conv_in", m.convIn)
	m.timeEmbedding.VisitLayers("time_embedding", v)
	if m.addEmbedding != nil {
		m.addEmbedding.VisitLayers("add_embedding", v)
	}
	blocks := func(prefix string, rs []*nn.ResnetBlock2D, ts []*nn.Transformer2D) {
		for j, r := range rs {
			r.VisitLayers(fmt.Sprintf("%s.resnets.%d", prefix, j), v)
			if j < len(ts) {
				ts[j].VisitLayers(fmt.Sprintf("%s.attentions.%d", prefix, j), v)
			}
		}
	}
	for i, b := range m.down {
		p := fmt.Sprintf("down_blocks.%d", i)
		blocks(p, b.resnets, b.attentions)
		if b.downsample != nil {
			b.downsample.VisitLayers(p+".downsamplers.0", v)
		}
	}
	// The mid block runs resnets.0, attentions.0, resnets.1.
	blocks("mid_block", m.mid.resnets, m.mid.attentions)
	for i, b := range m.up {
		p := fmt.Sprintf("up_blocks.%d", i)
		blocks(p, b.resnets, b.attentions)
		if b.upsample != nil {
			b.upsample.VisitLayers(p+".upsamplers.0", v)
		}
	}
	v("conv_out", m.convOut)
}

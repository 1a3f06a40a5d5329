package clip

import (
	"fmt"
	"iter"

	"github.com/sdgo/sdgo/nn"
)

// Layers yields the model's Linear layers, the layers low-rank adapters
// (LoRAs) attach to, under their names in the Hub's transformers files:
// "text_model.encoder.layers.0.self_attn.q_proj" (k_proj, v_proj,
// out_proj), "text_model.encoder.layers.0.mlp.fc1" (fc2) and, with a
// projection, "text_projection" (the names of their weights without
// ".weight"), in the order the model runs them.
func (m *TextModel) Layers() iter.Seq2[string, nn.Adaptable] {
	return nn.LayerSeq(m.visitLayers)
}

func (m *TextModel) visitLayers(v nn.LayerVisitor) {
	names := nn.AttentionNames{Q: "q_proj", K: "k_proj", V: "v_proj", Out: "out_proj"}
	for i, l := range m.layers {
		p := fmt.Sprintf("text_model.encoder.layers.%d", i)
		l.attn.VisitLayers(p+".self_attn", names, v)
		v(p+".mlp.fc1", l.fc1)
		v(p+".mlp.fc2", l.fc2)
	}
	if m.projection != nil {
		v("text_projection", m.projection)
	}
}

package clip

import (
	"fmt"

	"github.com/sdgo/sdgo/nn"
	"github.com/sdgo/sdgo/tensor"
)

// TextModel is a CLIP text transformer: token and position embeddings, pre-norm
// encoder layers with causal self-attention, a final layer norm and, for
// CLIPTextModelWithProjection, a projection of the pooled output.
type TextModel struct {
	cfg        Config
	tokens     *nn.Embedding
	positions  *nn.Embedding
	layers     []*encoderLayer
	finalNorm  *nn.LayerNorm
	projection *nn.Linear // nil without projection
}

type encoderLayer struct {
	norm1, norm2 *nn.LayerNorm
	attn         *nn.Attention
	fc1, fc2     *nn.Linear
	quickGELU    bool
}

// Load builds a text model from weights named as in the Hub's transformers files
// ("text_model.embeddings.token_embedding.weight", ..., "text_projection.weight").
func Load(p nn.Params, cfg Config) (*TextModel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &TextModel{cfg: cfg}
	if err := m.load(p); err != nil {
		m.Release()
		return nil, fmt.Errorf("clip: %w", err)
	}
	return m, nil
}

func (m *TextModel) load(p nn.Params) error {
	c := m.cfg
	d := c.HiddenSize
	tm := nn.Sub(p, "text_model")
	var err error
	if m.tokens, err = nn.LoadEmbedding(nn.Sub(tm, "embeddings.token_embedding"), c.VocabSize, d); err != nil {
		return err
	}
	if m.positions, err = nn.LoadEmbedding(nn.Sub(tm, "embeddings.position_embedding"), c.MaxPositionEmbeddings, d); err != nil {
		return err
	}
	names := nn.AttentionNames{Q: "q_proj", K: "k_proj", V: "v_proj", Out: "out_proj"}
	for i := range c.NumHiddenLayers {
		lp := nn.Sub(tm, fmt.Sprintf("encoder.layers.%d", i))
		l := &encoderLayer{quickGELU: c.HiddenAct == "quick_gelu"}
		m.layers = append(m.layers, l)
		if l.norm1, err = nn.LoadLayerNorm(nn.Sub(lp, "layer_norm1"), d, c.LayerNormEps); err != nil {
			return err
		}
		if l.norm2, err = nn.LoadLayerNorm(nn.Sub(lp, "layer_norm2"), d, c.LayerNormEps); err != nil {
			return err
		}
		if l.attn, err = nn.LoadAttention(nn.Sub(lp, "self_attn"), names, d, d, c.NumAttentionHeads, true); err != nil {
			return err
		}
		l.attn.Causal = true
		if l.fc1, err = nn.LoadLinear(nn.Sub(lp, "mlp.fc1"), d, c.IntermediateSize, true); err != nil {
			return err
		}
		if l.fc2, err = nn.LoadLinear(nn.Sub(lp, "mlp.fc2"), c.IntermediateSize, d, true); err != nil {
			return err
		}
	}
	if m.finalNorm, err = nn.LoadLayerNorm(nn.Sub(tm, "final_layer_norm"), d, c.LayerNormEps); err != nil {
		return err
	}
	if c.WithProjection() {
		if m.projection, err = nn.LoadLinear(nn.Sub(p, "text_projection"), d, c.ProjectionDim, false); err != nil {
			return err
		}
	}
	return nil
}

// FinalNorm applies the final layer norm to a hidden state [B, L, hidden], as
// diffusers does to the hidden state it picks when clip_skip is set.
func (m *TextModel) FinalNorm(h *tensor.Tensor) (*tensor.Tensor, error) {
	return m.finalNorm.Forward(h)
}

// Config returns the model's architecture.
func (m *TextModel) Config() Config { return m.cfg }

// Release releases the weights.
func (m *TextModel) Release() {
	for _, e := range []*nn.Embedding{m.tokens, m.positions} {
		if e != nil {
			e.Release()
		}
	}
	for _, l := range m.layers {
		for _, n := range []*nn.LayerNorm{l.norm1, l.norm2} {
			if n != nil {
				n.Release()
			}
		}
		if l.attn != nil {
			l.attn.Release()
		}
		for _, f := range []*nn.Linear{l.fc1, l.fc2} {
			if f != nil {
				f.Release()
			}
		}
	}
	if m.finalNorm != nil {
		m.finalNorm.Release()
	}
	if m.projection != nil {
		m.projection.Release()
	}
}

// Output holds what the text model computes for a batch of B sequences of L ids.
type Output struct {
	// HiddenStates[0] is the embeddings' output and HiddenStates[i] the output of
	// layer i, each [B, L, hidden], without the final layer norm.
	HiddenStates []*tensor.Tensor
	// LastHiddenState is the final layer norm of the last hidden state.
	LastHiddenState *tensor.Tensor
	// Pooled is LastHiddenState at each sequence's first end-of-text token, [B, hidden].
	Pooled *tensor.Tensor
	// TextEmbeds is the projection of Pooled, [B, projection_dim]; nil without projection.
	TextEmbeds *tensor.Tensor
}

// Release releases every tensor of the output.
func (o *Output) Release() {
	for _, h := range o.HiddenStates {
		h.Release()
	}
	o.LastHiddenState.Release()
	o.Pooled.Release()
	o.TextEmbeds.Release()
}

// Forward encodes a batch of token id sequences of equal length (at most
// max_position_embeddings).
func (m *TextModel) Forward(ids [][]int) (*Output, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf("clip: empty batch")
	}
	seq := len(ids[0])
	if seq == 0 || seq > m.cfg.MaxPositionEmbeddings {
		return nil, fmt.Errorf("clip: sequence of %d ids (want 1 to %d)", seq, m.cfg.MaxPositionEmbeddings)
	}
	flat := make([]int, 0, len(ids)*seq)
	for i, s := range ids {
		if len(s) != seq {
			return nil, fmt.Errorf("clip: sequence %d has %d ids, sequence 0 has %d", i, len(s), seq)
		}
		for j, id := range s {
			if id < 0 || id >= m.cfg.VocabSize {
				return nil, fmt.Errorf("clip: id %d at sequence %d position %d is outside the vocabulary of %d", id, i, j, m.cfg.VocabSize)
			}
		}
		flat = append(flat, s...)
	}
	out := &Output{}
	h, err := m.embed(flat, len(ids), seq)
	if err != nil {
		return nil, err
	}
	out.HiddenStates = append(out.HiddenStates, h)
	for i, l := range m.layers {
		if h, err = l.forward(h); err != nil {
			out.Release()
			return nil, fmt.Errorf("clip: layer %d: %w", i, err)
		}
		out.HiddenStates = append(out.HiddenStates, h)
	}
	if out.LastHiddenState, err = m.finalNorm.Forward(h); err != nil {
		out.Release()
		return nil, err
	}
	if out.Pooled, err = m.pool(out.LastHiddenState, ids); err != nil {
		out.Release()
		return nil, err
	}
	if m.projection != nil {
		if out.TextEmbeds, err = m.projection.Forward(out.Pooled); err != nil {
			out.Release()
			return nil, err
		}
	}
	return out, nil
}

func (m *TextModel) embed(flat []int, batch, seq int) (*tensor.Tensor, error) {
	tok, err := m.tokens.Forward(flat)
	if err != nil {
		return nil, err
	}
	defer tok.Release()
	tok3, err := tok.Reshape(batch, seq, m.cfg.HiddenSize)
	if err != nil {
		return nil, err
	}
	defer tok3.Release()
	positions := make([]int, seq)
	for i := range positions {
		positions[i] = i
	}
	pos, err := m.positions.Forward(positions)
	if err != nil {
		return nil, err
	}
	defer pos.Release()
	return tensor.Add(tok3, pos)
}

// pool picks each sequence's hidden state at its end-of-text token, as
// transformers does: the first position holding eos_token_id, or, for configs
// that still carry the original eos_token_id of 2, the position of the largest
// id (the end-of-text token has the largest id in CLIP's vocabulary).
func (m *TextModel) pool(last *tensor.Tensor, ids [][]int) (*tensor.Tensor, error) {
	rows := make([]*tensor.Tensor, 0, len(ids))
	defer func() { releaseAll(rows...) }()
	for b, s := range ids {
		pos := 0
		for j, id := range s {
			if m.cfg.EOSTokenID == 2 {
				if id > s[pos] {
					pos = j
				}
			} else if id == m.cfg.EOSTokenID {
				pos = j
				break
			}
		}
		seqRow, err := last.Narrow(0, b, 1)
		if err != nil {
			return nil, err
		}
		row, err := seqRow.Narrow(1, pos, 1)
		seqRow.Release()
		if err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	cat, err := tensor.Concat(0, rows...)
	if err != nil {
		return nil, err
	}
	defer cat.Release()
	return cat.Reshape(len(ids), m.cfg.HiddenSize)
}

func (l *encoderLayer) forward(x *tensor.Tensor) (*tensor.Tensor, error) {
	n1, err := l.norm1.Forward(x)
	if err != nil {
		return nil, err
	}
	a, err := l.attn.Forward(n1, nil)
	n1.Release()
	if err != nil {
		return nil, err
	}
	h, err := tensor.Add(x, a)
	a.Release()
	if err != nil {
		return nil, err
	}
	n2, err := l.norm2.Forward(h)
	if err != nil {
		h.Release()
		return nil, err
	}
	f1, err := l.fc1.Forward(n2)
	n2.Release()
	if err != nil {
		h.Release()
		return nil, err
	}
	var act *tensor.Tensor
	if l.quickGELU {
		act, err = tensor.QuickGELU(f1)
	} else {
		act, err = tensor.GELU(f1)
	}
	f1.Release()
	if err != nil {
		h.Release()
		return nil, err
	}
	f2, err := l.fc2.Forward(act)
	act.Release()
	if err != nil {
		h.Release()
		return nil, err
	}
	out, err := tensor.Add(h, f2)
	h.Release()
	f2.Release()
	return out, err
}

func releaseAll(ts ...*tensor.Tensor) {
	for _, t := range ts {
		t.Release()
	}
}

package nn

import (
	"fmt"

	"github.com/sdgo/sdgo/tensor"
)

// Attention is multi-head attention with separate query, key, value and output
// projections, as in CLIP (q_proj, k_proj, v_proj, out_proj) and in diffusers'
// Attention (to_q, to_k, to_v, to_out.0).
type Attention struct {
	Q, K, V, Out *Linear
	Heads        int
	Causal       bool
	// Mode and block sizes of the attention kernel; the zero value is the
	// default flash attention.
	Kernel tensor.AttentionParams
}

// AttentionNames are the names of an attention block's four projections.
type AttentionNames struct{ Q, K, V, Out string }

// LoadAttention loads the four projections of an attention block over dim
// features (keys and values from contextDim features), split into heads.
func LoadAttention(p Params, names AttentionNames, dim, contextDim, heads int, qkvBias bool) (*Attention, error) {
	if heads <= 0 || dim%heads != 0 {
		return nil, fmt.Errorf("attention: %d features in %d heads", dim, heads)
	}
	var a Attention
	var err error
	if a.Q, err = LoadLinear(Sub(p, names.Q), dim, dim, qkvBias); err != nil {
		return nil, err
	}
	if a.K, err = LoadLinear(Sub(p, names.K), contextDim, dim, qkvBias); err != nil {
		a.Release()
		return nil, err
	}
	if a.V, err = LoadLinear(Sub(p, names.V), contextDim, dim, qkvBias); err != nil {
		a.Release()
		return nil, err
	}
	if a.Out, err = LoadLinear(Sub(p, names.Out), dim, dim, true); err != nil {
		a.Release()
		return nil, err
	}
	a.Heads = heads
	return &a, nil
}

// Release releases the weights.
func (a *Attention) Release() {
	for _, l := range []*Linear{a.Q, a.K, a.V, a.Out} {
		if l != nil {
			l.Release()
		}
	}
}

// Forward attends from x [B, L, dim] to context [B, S, contextDim] (x itself when
// context is nil) and returns [B, L, dim].
func (a *Attention) Forward(x, context *tensor.Tensor) (*tensor.Tensor, error) {
	if context == nil {
		context = x
	}
	q, err := a.Q.Forward(x)
	if err != nil {
		return nil, err
	}
	defer q.Release()
	k, err := a.K.Forward(context)
	if err != nil {
		return nil, err
	}
	defer k.Release()
	v, err := a.V.Forward(context)
	if err != nil {
		return nil, err
	}
	defer v.Release()
	heads, err := splitHeads(q, k, v, a.Heads)
	if err != nil {
		return nil, err
	}
	defer releaseAll(heads...)
	b, l, dim := q.Dim(0), q.Dim(1), q.Dim(2)
	// The kernel writes [B, H, L, d] into a [B, L, H, d] buffer through a permuted
	// view, so the heads come out already merged for the output projection.
	merged, err := tensor.New(x.Backend(), tensor.F32, b, l, a.Heads, dim/a.Heads)
	if err != nil {
		return nil, err
	}
	defer merged.Release()
	dst, err := merged.Permute(0, 2, 1, 3)
	if err != nil {
		return nil, err
	}
	defer dst.Release()
	kp := a.Kernel
	kp.Causal = a.Causal
	if err := tensor.AttentionInto(dst, heads[0], heads[1], heads[2], kp); err != nil {
		return nil, err
	}
	flat, err := merged.Reshape(b, l, dim)
	if err != nil {
		return nil, err
	}
	defer flat.Release()
	return a.Out.Forward(flat)
}

// splitHeads views q, k, v [B, L, H·d] as [B, H, L, d] without copying.
func splitHeads(q, k, v *tensor.Tensor, heads int) ([]*tensor.Tensor, error) {
	var out []*tensor.Tensor
	for _, t := range []*tensor.Tensor{q, k, v} {
		r, err := t.Reshape(t.Dim(0), t.Dim(1), heads, t.Dim(2)/heads)
		if err != nil {
			releaseAll(out...)
			return nil, err
		}
		p, err := r.Permute(0, 2, 1, 3)
		r.Release()
		if err != nil {
			releaseAll(out...)
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func releaseAll(ts ...*tensor.Tensor) {
	for _, t := range ts {
		t.Release()
	}
}

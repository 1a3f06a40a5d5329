package nn

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"slices"

	"github.com/sdgo/sdgo/tensor"
)

// LowRank is a low-rank adapter of a Linear or Conv2d layer (a LoRA module,
// applied unmerged): the layer adds Scale·up(mid(down(x))) to its output, so
// its own weight is read as it is stored (an F16 weight stays F16) and never
// changed.
//
// On a Linear [out, in], Down is [rank, in] and Up [out, rank]: the layer adds
// Scale·(x·Downᵀ)·Upᵀ. On a Conv2d [out, in, k, k], Down is a convolution
// [rank, in, k, k] run with the layer's stride and padding, and Up a 1x1
// convolution [out, rank, 1, 1]; with LoCon's Tucker core Mid [rank, rank, k, k],
// Down is 1x1 [rank, in, 1, 1] and Mid is the convolution run with the layer's
// stride and padding. The factors may be of any dtype and are on the layer's
// backend; the branch is computed in float32 (and the scale applied to its
// rank-wide middle, where it costs least).
type LowRank struct {
	Down, Up *tensor.Tensor
	Mid      *tensor.Tensor // nil but for LoCon's Tucker form, on a Conv2d
	Scale    float32
}

// Adaptable is a layer that low-rank adapters attach to: *Linear and *Conv2d.
type Adaptable interface {
	// WeightShape returns the shape of the layer's weight: [out, in] for a
	// Linear, [out, in, kh, kw] for a Conv2d.
	WeightShape() []int
	// Backend returns the backend that holds the layer's weight, where its
	// adapters' factors must be.
	Backend() tensor.Backend
	// CheckAdapter reports whether a fits the layer (the factors' shapes, a
	// finite scale), without attaching it.
	CheckAdapter(a LowRank) error
	// SetAdapters replaces the layer's adapters with as (none removes them),
	// after checking each with CheckAdapter: on an error the layer keeps the
	// adapters it had.
	SetAdapters(as ...LowRank) error
}

var (
	_ Adaptable = (*Linear)(nil)
	_ Adaptable = (*Conv2d)(nil)
)

// WeightShape returns [out, in].
func (l *Linear) WeightShape() []int { return l.Weight.Shape() }

// Backend returns the backend of the layer's weight.
func (l *Linear) Backend() tensor.Backend { return l.Weight.Backend() }

// CheckAdapter reports whether a fits the layer: Down [rank, in], Up
// [out, rank], no Mid, a finite Scale.
func (l *Linear) CheckAdapter(a LowRank) error {
	if err := a.checkCommon(); err != nil {
		return err
	}
	out, in := l.Weight.Dim(0), l.Weight.Dim(1)
	if a.Mid != nil {
		return fmt.Errorf("adapter: a Tucker core %v on a linear layer", a.Mid)
	}
	if a.Down.Rank() != 2 || a.Down.Dim(1) != in {
		return fmt.Errorf("adapter: down factor %v; want [rank %d] for a linear layer %v", a.Down, in, l.Weight)
	}
	if r := a.Down.Dim(0); !slices.Equal(a.Up.Shape(), []int{out, r}) {
		return fmt.Errorf("adapter: up factor %v; want [%d %d] for down %v and a linear layer %v", a.Up, out, r, a.Down, l.Weight)
	}
	return nil
}

// SetAdapters replaces the layer's adapters (see Adaptable).
func (l *Linear) SetAdapters(as ...LowRank) error {
	for i, a := range as {
		if err := l.CheckAdapter(a); err != nil {
			return fmt.Errorf("adapter %d: %w", i, err)
		}
	}
	l.Adapters = slices.Clone(as)
	return nil
}

// WeightShape returns [out, in, kh, kw].
func (c *Conv2d) WeightShape() []int { return c.Weight.Shape() }

// Backend returns the backend of the layer's weight.
func (c *Conv2d) Backend() tensor.Backend { return c.Weight.Backend() }

// CheckAdapter reports whether a fits the layer: Down [rank, in, kh, kw] (the
// layer's kernel) and no Mid, or Down [rank, in, 1, 1] and Mid
// [rank, rank, kh, kw]; Up [out, rank, 1, 1]; a finite Scale.
func (c *Conv2d) CheckAdapter(a LowRank) error {
	if err := a.checkCommon(); err != nil {
		return err
	}
	w := c.Weight.Shape()
	out, in, kh, kw := w[0], w[1], w[2], w[3]
	d := a.Down.Shape()
	if len(d) != 4 || d[1] != in {
		return fmt.Errorf("adapter: down factor %v; want [rank %d kh kw] for a convolution %v", a.Down, in, c.Weight)
	}
	r := d[0]
	if a.Mid == nil {
		if d[2] != kh || d[3] != kw {
			return fmt.Errorf("adapter: down factor %v; want the layer's %dx%d kernel for a convolution %v", a.Down, kh, kw, c.Weight)
		}
	} else {
		if d[2] != 1 || d[3] != 1 {
			return fmt.Errorf("adapter: down factor %v; with a Tucker core the down factor is 1x1", a.Down)
		}
		if want := []int{r, r, kh, kw}; !slices.Equal(a.Mid.Shape(), want) {
			return fmt.Errorf("adapter: Tucker core %v; want %v for down %v and a convolution %v", a.Mid, want, a.Down, c.Weight)
		}
	}
	if want := []int{out, r, 1, 1}; !slices.Equal(a.Up.Shape(), want) {
		return fmt.Errorf("adapter: up factor %v; want %v for down %v and a convolution %v", a.Up, want, a.Down, c.Weight)
	}
	return nil
}

// SetAdapters replaces the layer's adapters (see Adaptable).
func (c *Conv2d) SetAdapters(as ...LowRank) error {
	for i, a := range as {
		if err := c.CheckAdapter(a); err != nil {
			return fmt.Errorf("adapter %d: %w", i, err)
		}
	}
	c.Adapters = slices.Clone(as)
	return nil
}

// checkCommon checks what every adapter needs: both factors, a non-zero rank
// and a finite scale.
func (a *LowRank) checkCommon() error {
	if a.Down == nil || a.Up == nil {
		return errors.New("adapter: a down and an up factor are needed")
	}
	if a.Down.Rank() < 2 || a.Down.Dim(0) == 0 {
		return fmt.Errorf("adapter: down factor %v has no rank", a.Down)
	}
	if s := float64(a.Scale); math.IsNaN(s) || math.IsInf(s, 0) {
		return fmt.Errorf("adapter: scale %v is not a finite number", a.Scale)
	}
	return nil
}

// addAdapters returns y plus the branch of every adapter on x, releasing y.
func addAdapters(y, x *tensor.Tensor, as []LowRank, branch func(*LowRank, *tensor.Tensor) (*tensor.Tensor, error)) (*tensor.Tensor, error) {
	for i := range as {
		d, err := branch(&as[i], x)
		if err != nil {
			y.Release()
			return nil, fmt.Errorf("adapter %d: %w", i, err)
		}
		sum, err := tensor.Add(y, d)
		d.Release()
		y.Release()
		if err != nil {
			return nil, err
		}
		y = sum
	}
	return y, nil
}

// linear returns Scale·(x·Downᵀ)·Upᵀ.
func (a *LowRank) linear(x *tensor.Tensor) (*tensor.Tensor, error) {
	h, err := tensor.Linear(x, a.Down, nil)
	if err != nil {
		return nil, err
	}
	if h, err = a.scaled(h); err != nil {
		return nil, err
	}
	defer h.Release()
	return tensor.Linear(h, a.Up, nil)
}

// conv returns Scale·up(mid(down(x))) for a convolution with parameters p.
func (a *LowRank) conv(x *tensor.Tensor, p tensor.Conv2dParams) (*tensor.Tensor, error) {
	var h *tensor.Tensor
	var err error
	if a.Mid == nil {
		h, err = tensor.Conv2d(x, a.Down, nil, p)
	} else {
		// A 1x1 down commutes with the zero padding: pad and stride apply to
		// the core.
		var d *tensor.Tensor
		if d, err = tensor.Conv2d(x, a.Down, nil, tensor.Conv2dParams{}); err != nil {
			return nil, err
		}
		h, err = tensor.Conv2d(d, a.Mid, nil, p)
		d.Release()
	}
	if err != nil {
		return nil, err
	}
	if h, err = a.scaled(h); err != nil {
		return nil, err
	}
	defer h.Release()
	return tensor.Conv2d(h, a.Up, nil, tensor.Conv2dParams{})
}

// scaled returns h·Scale, releasing h (h itself when Scale is 1).
func (a *LowRank) scaled(h *tensor.Tensor) (*tensor.Tensor, error) {
	if a.Scale == 1 {
		return h, nil
	}
	s, err := tensor.Scale(h, a.Scale)
	h.Release()
	return s, err
}

// LayerVisitor receives an adaptable layer and its name in diffusers' (or
// transformers') module tree.
type LayerVisitor func(name string, l Adaptable)

// LayerSeq turns a visit of a network's layers (a function that calls its
// LayerVisitor for each) into an iterator over them.
func LayerSeq(visit func(LayerVisitor)) iter.Seq2[string, Adaptable] {
	return func(yield func(string, Adaptable) bool) {
		stopped := false
		visit(func(name string, l Adaptable) {
			if !stopped && !yield(name, l) {
				stopped = true
			}
		})
	}
}

// join returns prefix.name, or name when prefix is empty.
func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// visitLinear calls v for l when it is set.
func visitLinear(v LayerVisitor, name string, l *Linear) {
	if l != nil {
		v(name, l)
	}
}

// visitConv calls v for c when it is set.
func visitConv(v LayerVisitor, name string, c *Conv2d) {
	if c != nil {
		v(name, c)
	}
}

// VisitLayers calls v for each projection, named prefix.<names.Q> and so on.
func (a *Attention) VisitLayers(prefix string, names AttentionNames, v LayerVisitor) {
	visitLinear(v, join(prefix, names.Q), a.Q)
	visitLinear(v, join(prefix, names.K), a.K)
	visitLinear(v, join(prefix, names.V), a.V)
	visitLinear(v, join(prefix, names.Out), a.Out)
}

// VisitLayers calls v for linear_1 and linear_2 under prefix.
func (m *TimeMLP) VisitLayers(prefix string, v LayerVisitor) {
	visitLinear(v, join(prefix, "linear_1"), m.Linear1)
	visitLinear(v, join(prefix, "linear_2"), m.Linear2)
}

// VisitLayers calls v for conv1, time_emb_proj, conv2 and conv_shortcut
// (those the block has) under prefix.
func (r *ResnetBlock2D) VisitLayers(prefix string, v LayerVisitor) {
	visitConv(v, join(prefix, "conv1"), r.Conv1)
	visitLinear(v, join(prefix, "time_emb_proj"), r.TimeProj)
	visitConv(v, join(prefix, "conv2"), r.Conv2)
	visitConv(v, join(prefix, "conv_shortcut"), r.Shortcut)
}

// VisitLayers calls v for the convolution, prefix.conv.
func (d *Downsample2D) VisitLayers(prefix string, v LayerVisitor) {
	visitConv(v, join(prefix, "conv"), d.Conv)
}

// VisitLayers calls v for the convolution, prefix.conv.
func (u *Upsample2D) VisitLayers(prefix string, v LayerVisitor) {
	visitConv(v, join(prefix, "conv"), u.Conv)
}

// VisitLayers calls v for proj_in, every transformer block's attention
// projections (attn1/attn2.to_q, to_k, to_v, to_out.0) and feed-forward
// layers (ff.net.0.proj, ff.net.2), and proj_out, under prefix.
func (t *Transformer2D) VisitLayers(prefix string, v LayerVisitor) {
	visitConv(v, join(prefix, "proj_in"), t.ProjInConv)
	visitLinear(v, join(prefix, "proj_in"), t.ProjInLinear)
	names := AttentionNames{Q: "to_q", K: "to_k", V: "to_v", Out: "to_out.0"}
	for i, b := range t.Blocks {
		bp := join(prefix, fmt.Sprintf("transformer_blocks.%d", i))
		if b.Attn1 != nil {
			b.Attn1.VisitLayers(join(bp, "attn1"), names, v)
		}
		if b.Attn2 != nil {
			b.Attn2.VisitLayers(join(bp, "attn2"), names, v)
		}
		visitLinear(v, join(bp, "ff.net.0.proj"), b.FFIn)
		visitLinear(v, join(bp, "ff.net.2"), b.FFOut)
	}
	visitConv(v, join(prefix, "proj_out"), t.ProjOutConv)
	visitLinear(v, join(prefix, "proj_out"), t.ProjOutLinear)
}

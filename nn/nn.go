// Package nn holds the layers Stable Diffusion's networks are made of, over
// package tensor: Linear, Conv2d, the norms, Embedding and multi-head attention.
// Layers are plain structs of weight tensors with a Forward method; they are
// built from a Params, which looks weights up by the names of diffusers' module
// tree, so a checkpoint's tensors load by name with no table. Linear and
// Conv2d also take low-rank adapters (LoRAs), applied at run time over their
// weights as stored (see LowRank and Adaptable).
//
// Forward methods never modify their inputs and release every intermediate
// tensor they make, so that the backend's buffers are reused from one call to the
// next.
package nn

import (
	"fmt"
	"slices"

	"github.com/sdgo/sdgo/tensor"
)

// Params gives a model its weights by name (diffusers' dotted module names,
// e.g. "text_model.encoder.layers.0.self_attn.q_proj.weight"), already on the
// backend the model runs on.
type Params interface {
	Tensor(name string) (*tensor.Tensor, error)
}

// Sub returns the Params of a submodule: names are looked up under prefix + ".".
func Sub(p Params, prefix string) Params {
	if prefix == "" {
		return p
	}
	return subParams{p, prefix + "."}
}

type subParams struct {
	p      Params
	prefix string
}

func (s subParams) Tensor(name string) (*tensor.Tensor, error) { return s.p.Tensor(s.prefix + name) }

// Synthesizer is implemented by Params that make weights on demand instead of
// reading them (benchmarks with synthetic weights of the real shapes): Get hands
// it the full name and the shape the layer expects.
type Synthesizer interface {
	Synthesize(name string, shape []int) (*tensor.Tensor, error)
}

// root returns the Params at the root of p's Sub chain and the full name of a
// parameter of p.
func root(p Params, name string) (Params, string) {
	for {
		s, ok := p.(subParams)
		if !ok {
			return p, name
		}
		p, name = s.p, s.prefix+name
	}
}

func rootSynthesizer(p Params, name string) (Synthesizer, bool) {
	r, _ := root(p, name)
	s, ok := r.(Synthesizer)
	return s, ok
}

// Get loads a parameter and checks its shape; the error names the parameter and
// both shapes.
func Get(p Params, name string, shape ...int) (*tensor.Tensor, error) {
	if s, ok := rootSynthesizer(p, name); ok {
		_, full := root(p, name)
		return s.Synthesize(full, shape)
	}
	t, err := p.Tensor(name)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(t.Shape(), shape) {
		t.Release()
		_, full := root(p, name)
		return nil, fmt.Errorf("%s: want %v, file has %v", full, shape, t.Shape())
	}
	return t, nil
}

// Linear is y = x·Wᵀ + b with W [out, in] in the dtype it is stored in, plus
// the output of its low-rank adapters, if any.
type Linear struct {
	Weight *tensor.Tensor // [out, in]
	Bias   *tensor.Tensor // [out], or nil
	// Adapters are added to the output at run time: y += Scale·(x·Downᵀ)·Upᵀ
	// for each (see LowRank; set them with SetAdapters). The layer does not
	// own their tensors: Release leaves them to whoever attached them.
	Adapters []LowRank
}

// LoadLinear loads "weight" (and "bias" if hasBias) for a layer of in→out features.
func LoadLinear(p Params, in, out int, hasBias bool) (*Linear, error) {
	w, err := Get(p, "weight", out, in)
	if err != nil {
		return nil, err
	}
	l := &Linear{Weight: w}
	if hasBias {
		if l.Bias, err = Get(p, "bias", out); err != nil {
			w.Release()
			return nil, err
		}
	}
	return l, nil
}

// Forward applies the layer to x [..., in].
func (l *Linear) Forward(x *tensor.Tensor) (*tensor.Tensor, error) {
	y, err := tensor.Linear(x, l.Weight, l.Bias)
	if err != nil || len(l.Adapters) == 0 {
		return y, err
	}
	return addAdapters(y, x, l.Adapters, (*LowRank).linear)
}

// Release releases the weights.
func (l *Linear) Release() { l.Weight.Release(); l.Bias.Release() }

// LayerNorm normalises over the last axis, then scales and shifts.
type LayerNorm struct {
	Weight, Bias *tensor.Tensor // [dim]
	Eps          float32
}

// LoadLayerNorm loads "weight" and "bias" of a LayerNorm over dim features.
func LoadLayerNorm(p Params, dim int, eps float64) (*LayerNorm, error) {
	w, err := Get(p, "weight", dim)
	if err != nil {
		return nil, err
	}
	b, err := Get(p, "bias", dim)
	if err != nil {
		w.Release()
		return nil, err
	}
	return &LayerNorm{Weight: w, Bias: b, Eps: float32(eps)}, nil
}

// Forward normalises x [..., dim].
func (n *LayerNorm) Forward(x *tensor.Tensor) (*tensor.Tensor, error) {
	return tensor.LayerNorm(x, n.Weight, n.Bias, n.Eps)
}

// Release releases the weights.
func (n *LayerNorm) Release() { n.Weight.Release(); n.Bias.Release() }

// GroupNorm normalises NCHW activations over groups of channels.
type GroupNorm struct {
	Weight, Bias *tensor.Tensor // [channels]
	Groups       int
	Eps          float32
}

// LoadGroupNorm loads "weight" and "bias" of a GroupNorm of channels in groups.
func LoadGroupNorm(p Params, groups, channels int, eps float64) (*GroupNorm, error) {
	if groups <= 0 || channels%groups != 0 {
		return nil, fmt.Errorf("group norm: %d channels in %d groups", channels, groups)
	}
	w, err := Get(p, "weight", channels)
	if err != nil {
		return nil, err
	}
	b, err := Get(p, "bias", channels)
	if err != nil {
		w.Release()
		return nil, err
	}
	return &GroupNorm{Weight: w, Bias: b, Groups: groups, Eps: float32(eps)}, nil
}

// Forward normalises x [N, C, ...].
func (n *GroupNorm) Forward(x *tensor.Tensor) (*tensor.Tensor, error) {
	return tensor.GroupNorm(x, n.Weight, n.Bias, n.Groups, n.Eps)
}

// ForwardSiLU normalises x and applies SiLU in the same pass.
func (n *GroupNorm) ForwardSiLU(x *tensor.Tensor) (*tensor.Tensor, error) {
	return tensor.GroupNormSiLU(x, n.Weight, n.Bias, n.Groups, n.Eps)
}

// Release releases the weights.
func (n *GroupNorm) Release() { n.Weight.Release(); n.Bias.Release() }

// Conv2d is a 2-D convolution over NCHW activations, plus the output of its
// low-rank adapters, if any.
type Conv2d struct {
	Weight *tensor.Tensor // [out, in, k, k]
	Bias   *tensor.Tensor // [out], or nil
	Params tensor.Conv2dParams
	// Adapters are added to the output at run time, each a k x k convolution
	// to its rank with the layer's stride and padding, then a 1x1 one to the
	// layer's outputs (see LowRank; set them with SetAdapters). The layer does
	// not own their tensors: Release leaves them to whoever attached them.
	Adapters []LowRank
}

// LoadConv2d loads "weight" [out, in, k, k] and "bias" [out].
func LoadConv2d(p Params, in, out, kernel int, cp tensor.Conv2dParams) (*Conv2d, error) {
	w, err := Get(p, "weight", out, in, kernel, kernel)
	if err != nil {
		return nil, err
	}
	b, err := Get(p, "bias", out)
	if err != nil {
		w.Release()
		return nil, err
	}
	return &Conv2d{Weight: w, Bias: b, Params: cp}, nil
}

// Forward convolves x [N, in, H, W].
func (c *Conv2d) Forward(x *tensor.Tensor) (*tensor.Tensor, error) {
	y, err := tensor.Conv2d(x, c.Weight, c.Bias, c.Params)
	if err != nil || len(c.Adapters) == 0 {
		return y, err
	}
	return addAdapters(y, x, c.Adapters, func(a *LowRank, x *tensor.Tensor) (*tensor.Tensor, error) {
		return a.conv(x, c.Params)
	})
}

// Release releases the weights.
func (c *Conv2d) Release() { c.Weight.Release(); c.Bias.Release() }

// Embedding maps ids to rows of a table.
type Embedding struct {
	Weight *tensor.Tensor // [num, dim]
}

// LoadEmbedding loads "weight" [num, dim].
func LoadEmbedding(p Params, num, dim int) (*Embedding, error) {
	w, err := Get(p, "weight", num, dim)
	if err != nil {
		return nil, err
	}
	return &Embedding{Weight: w}, nil
}

// Forward returns the rows of ids, [len(ids), dim].
func (e *Embedding) Forward(ids []int) (*tensor.Tensor, error) {
	return tensor.Embedding(e.Weight, ids)
}

// Release releases the weights.
func (e *Embedding) Release() { e.Weight.Release() }

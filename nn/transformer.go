package nn

import (
	"fmt"

	"github.com/sdgo/sdgo/tensor"
)

// Transformer2D is diffusers' Transformer2DModel as the UNet uses it: a group
// norm, an input projection (1x1 convolution, or linear with
// use_linear_projection), BasicTransformerBlocks over the H·W tokens, an output
// projection and the residual connection.
type Transformer2D struct {
	Norm            *GroupNorm
	ProjInConv      *Conv2d // one of ProjInConv and ProjInLinear is set
	ProjInLinear    *Linear
	ProjOutConv     *Conv2d
	ProjOutLinear   *Linear
	Blocks          []*TransformerBlock
	Channels, Inner int
}

// TransformerBlock is diffusers' BasicTransformerBlock: self-attention,
// cross-attention and a GEGLU feed-forward, each pre-normed and residual.
type TransformerBlock struct {
	Norm1, Norm2, Norm3 *LayerNorm
	Attn1, Attn2        *Attention
	FFIn, FFOut         *Linear // ff.net.0.proj (dim→2·4·dim), ff.net.2 (4·dim→dim)
}

// Transformer2DConfig is what a Transformer2D needs to know beyond its weights.
type Transformer2DConfig struct {
	Channels          int // in_channels
	Heads, HeadDim    int // num_attention_heads, attention_head_dim
	Layers            int // transformer_layers_per_block
	ContextDim        int // cross_attention_dim
	Groups            int // norm_num_groups
	LinearProjection  bool
	AttentionSettings tensor.AttentionParams
}

// LoadTransformer2D loads a Transformer2DModel.
func LoadTransformer2D(p Params, c Transformer2DConfig) (*Transformer2D, error) {
	inner := c.Heads * c.HeadDim
	t := &Transformer2D{Channels: c.Channels, Inner: inner}
	var err error
	if t.Norm, err = LoadGroupNorm(Sub(p, "norm"), c.Groups, c.Channels, 1e-6); err != nil {
		return nil, err
	}
	if c.LinearProjection {
		if t.ProjInLinear, err = LoadLinear(Sub(p, "proj_in"), c.Channels, inner, true); err == nil {
			t.ProjOutLinear, err = LoadLinear(Sub(p, "proj_out"), inner, c.Channels, true)
		}
	} else {
		if t.ProjInConv, err = LoadConv2d(Sub(p, "proj_in"), c.Channels, inner, 1, tensor.Conv2dParams{}); err == nil {
			t.ProjOutConv, err = LoadConv2d(Sub(p, "proj_out"), inner, c.Channels, 1, tensor.Conv2dParams{})
		}
	}
	if err != nil {
		t.Release()
		return nil, err
	}
	names := AttentionNames{Q: "to_q", K: "to_k", V: "to_v", Out: "to_out.0"}
	for i := range c.Layers {
		bp := Sub(p, fmt.Sprintf("transformer_blocks.%d", i))
		b := &TransformerBlock{}
		t.Blocks = append(t.Blocks, b)
		if b.Norm1, err = LoadLayerNorm(Sub(bp, "norm1"), inner, 1e-5); err != nil {
			break
		}
		if b.Attn1, err = LoadAttention(Sub(bp, "attn1"), names, inner, inner, c.Heads, false); err != nil {
			break
		}
		if b.Norm2, err = LoadLayerNorm(Sub(bp, "norm2"), inner, 1e-5); err != nil {
			break
		}
		if b.Attn2, err = LoadAttention(Sub(bp, "attn2"), names, inner, c.ContextDim, c.Heads, false); err != nil {
			break
		}
		if b.Norm3, err = LoadLayerNorm(Sub(bp, "norm3"), inner, 1e-5); err != nil {
			break
		}
		if b.FFIn, err = LoadLinear(Sub(bp, "ff.net.0.proj"), inner, 8*inner, true); err != nil {
			break
		}
		if b.FFOut, err = LoadLinear(Sub(bp, "ff.net.2"), 4*inner, inner, true); err != nil {
			break
		}
		b.Attn1.Kernel, b.Attn2.Kernel = c.AttentionSettings, c.AttentionSettings
	}
	if err != nil {
		t.Release()
		return nil, err
	}
	return t, nil
}

// Release releases the weights.
func (t *Transformer2D) Release() {
	if t.Norm != nil {
		t.Norm.Release()
	}
	for _, c := range []*Conv2d{t.ProjInConv, t.ProjOutConv} {
		if c != nil {
			c.Release()
		}
	}
	for _, l := range []*Linear{t.ProjInLinear, t.ProjOutLinear} {
		if l != nil {
			l.Release()
		}
	}
	for _, b := range t.Blocks {
		for _, n := range []*LayerNorm{b.Norm1, b.Norm2, b.Norm3} {
			if n != nil {
				n.Release()
			}
		}
		for _, a := range []*Attention{b.Attn1, b.Attn2} {
			if a != nil {
				a.Release()
			}
		}
		for _, l := range []*Linear{b.FFIn, b.FFOut} {
			if l != nil {
				l.Release()
			}
		}
	}
}

// Forward applies the transformer to x [B, C, H, W] with the text context
// [B, S, context_dim].
func (t *Transformer2D) Forward(x, context *tensor.Tensor) (*tensor.Tensor, error) {
	if x.Rank() != 4 || x.Dim(1) != t.Channels {
		return nil, fmt.Errorf("transformer: input %v, want [B %d H W]", x, t.Channels)
	}
	h, w := x.Dim(2), x.Dim(3)
	n, err := t.Norm.Forward(x)
	if err != nil {
		return nil, err
	}
	var tokens *tensor.Tensor // [B, H·W, inner]
	if t.ProjInConv != nil {
		p, err := t.ProjInConv.Forward(n)
		n.Release()
		if err != nil {
			return nil, err
		}
		tokens, err = channelsLast(p)
		p.Release()
		if err != nil {
			return nil, err
		}
	} else {
		cl, err := channelsLast(n)
		n.Release()
		if err != nil {
			return nil, err
		}
		tokens, err = t.ProjInLinear.Forward(cl)
		cl.Release()
		if err != nil {
			return nil, err
		}
	}
	for i, blk := range t.Blocks {
		next, err := blk.Forward(tokens, context)
		tokens.Release()
		if err != nil {
			return nil, fmt.Errorf("transformer_blocks.%d: %w", i, err)
		}
		tokens = next
	}
	var out *tensor.Tensor
	if t.ProjOutLinear != nil {
		p, err := t.ProjOutLinear.Forward(tokens)
		tokens.Release()
		if err != nil {
			return nil, err
		}
		out, err = channelsFirst(p, h, w)
		p.Release()
		if err != nil {
			return nil, err
		}
	} else {
		cf, err := channelsFirst(tokens, h, w)
		tokens.Release()
		if err != nil {
			return nil, err
		}
		out, err = t.ProjOutConv.Forward(cf)
		cf.Release()
		if err != nil {
			return nil, err
		}
	}
	defer out.Release()
	return tensor.Add(out, x)
}

// channelsLast turns [B, C, H, W] into a contiguous [B, H·W, C].
func channelsLast(x *tensor.Tensor) (*tensor.Tensor, error) {
	r, err := x.Reshape(x.Dim(0), x.Dim(1), x.Dim(2)*x.Dim(3))
	if err != nil {
		return nil, err
	}
	defer r.Release()
	tr, err := r.Transpose(1, 2)
	if err != nil {
		return nil, err
	}
	defer tr.Release()
	return tr.Contiguous()
}

// channelsFirst turns [B, H·W, C] into a contiguous [B, C, H, W].
func channelsFirst(x *tensor.Tensor, h, w int) (*tensor.Tensor, error) {
	tr, err := x.Transpose(1, 2)
	if err != nil {
		return nil, err
	}
	defer tr.Release()
	c, err := tr.Contiguous()
	if err != nil {
		return nil, err
	}
	defer c.Release()
	return c.Reshape(x.Dim(0), x.Dim(2), h, w)
}

// Forward applies the block to tokens x [B, L, dim] with context [B, S, context_dim].
func (b *TransformerBlock) Forward(x, context *tensor.Tensor) (*tensor.Tensor, error) {
	h, err := residual(x, func(in *tensor.Tensor) (*tensor.Tensor, error) {
		n, err := b.Norm1.Forward(in)
		if err != nil {
			return nil, err
		}
		defer n.Release()
		return b.Attn1.Forward(n, nil)
	})
	if err != nil {
		return nil, err
	}
	h2, err := residual(h, func(in *tensor.Tensor) (*tensor.Tensor, error) {
		n, err := b.Norm2.Forward(in)
		if err != nil {
			return nil, err
		}
		defer n.Release()
		return b.Attn2.Forward(n, context)
	})
	h.Release()
	if err != nil {
		return nil, err
	}
	defer h2.Release()
	return residual(h2, func(in *tensor.Tensor) (*tensor.Tensor, error) {
		n, err := b.Norm3.Forward(in)
		if err != nil {
			return nil, err
		}
		p, err := b.FFIn.Forward(n)
		n.Release()
		if err != nil {
			return nil, err
		}
		g, err := tensor.GEGLU(p)
		p.Release()
		if err != nil {
			return nil, err
		}
		defer g.Release()
		return b.FFOut.Forward(g)
	})
}

// residual returns x + f(x).
func residual(x *tensor.Tensor, f func(*tensor.Tensor) (*tensor.Tensor, error)) (*tensor.Tensor, error) {
	y, err := f(x)
	if err != nil {
		return nil, err
	}
	defer y.Release()
	return tensor.Add(x, y)
}

// SpatialAttention is the VAE's single-head self-attention over the H·W
// positions of an image: group norm, q/k/v/out projections, residual.
type SpatialAttention struct {
	Norm     *GroupNorm
	Attn     *Attention
	Channels int
}

// LoadSpatialAttention loads group_norm, to_q, to_k, to_v and to_out.0.
func LoadSpatialAttention(p Params, channels, groups int, eps float64) (*SpatialAttention, error) {
	n, err := LoadGroupNorm(Sub(p, "group_norm"), groups, channels, eps)
	if err != nil {
		return nil, err
	}
	a, err := LoadAttention(p, AttentionNames{Q: "to_q", K: "to_k", V: "to_v", Out: "to_out.0"}, channels, channels, 1, true)
	if err != nil {
		n.Release()
		return nil, err
	}
	return &SpatialAttention{Norm: n, Attn: a, Channels: channels}, nil
}

// Release releases the weights.
func (s *SpatialAttention) Release() { s.Norm.Release(); s.Attn.Release() }

// Forward applies the attention to x [B, C, H, W].
func (s *SpatialAttention) Forward(x *tensor.Tensor) (*tensor.Tensor, error) {
	n, err := s.Norm.Forward(x)
	if err != nil {
		return nil, err
	}
	tokens, err := channelsLast(n)
	n.Release()
	if err != nil {
		return nil, err
	}
	a, err := s.Attn.Forward(tokens, nil)
	tokens.Release()
	if err != nil {
		return nil, err
	}
	cf, err := channelsFirst(a, x.Dim(2), x.Dim(3))
	a.Release()
	if err != nil {
		return nil, err
	}
	defer cf.Release()
	return tensor.Add(cf, x)
}

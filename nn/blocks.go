package nn

import (
	"fmt"

	"github.com/sdgo/sdgo/tensor"
)

// SinusoidalEmbedding returns diffusers' get_timestep_embedding of timesteps t:
// [len(t), dim], half sines and half cosines of t·e^(-ln(10⁴)·i/(dim/2 - freqShift)),
// cosines first when flipSinToCos, and a zero column when dim is odd. The
// timesteps are uploaded to b and the embedding is computed there
// (tensor.TimestepEmbedding). Each step is rounded to float32 where torch
// computes in float32, so the result matches torch's bit for bit up to the last
// ulp of sin and cos.
func SinusoidalEmbedding(b tensor.Backend, t []float32, dim int, flipSinToCos bool, freqShift float64) (*tensor.Tensor, error) {
	ts, err := tensor.FromFloat32(b, t, len(t))
	if err != nil {
		return nil, err
	}
	defer ts.Release()
	return tensor.TimestepEmbedding(ts, dim, tensor.TimestepEmbeddingParams{FlipSinToCos: flipSinToCos, FreqShift: freqShift})
}

// TimeMLP is diffusers' TimestepEmbedding: linear_1, SiLU, linear_2.
type TimeMLP struct{ Linear1, Linear2 *Linear }

// LoadTimeMLP loads linear_1 (in→out) and linear_2 (out→out).
func LoadTimeMLP(p Params, in, out int) (*TimeMLP, error) {
	l1, err := LoadLinear(Sub(p, "linear_1"), in, out, true)
	if err != nil {
		return nil, err
	}
	l2, err := LoadLinear(Sub(p, "linear_2"), out, out, true)
	if err != nil {
		l1.Release()
		return nil, err
	}
	return &TimeMLP{l1, l2}, nil
}

// Forward maps x [B, in] to [B, out].
func (m *TimeMLP) Forward(x *tensor.Tensor) (*tensor.Tensor, error) {
	h, err := m.Linear1.Forward(x)
	if err != nil {
		return nil, err
	}
	a, err := tensor.SiLU(h)
	h.Release()
	if err != nil {
		return nil, err
	}
	defer a.Release()
	return m.Linear2.Forward(a)
}

// Release releases the weights.
func (m *TimeMLP) Release() { m.Linear1.Release(); m.Linear2.Release() }

// ResnetBlock2D is diffusers' ResnetBlock2D with the default time embedding
// ("default" scale-shift: the projected embedding is added after conv1).
type ResnetBlock2D struct {
	Norm1, Norm2 *GroupNorm
	Conv1, Conv2 *Conv2d
	TimeProj     *Linear // time_emb_proj; nil without a time embedding (the VAE)
	Shortcut     *Conv2d // conv_shortcut, 1x1; nil when in == out
	OutputScale  float32 // output_scale_factor
	In, Out      int
}

// LoadResnetBlock2D loads a block of in→out channels; temb is the width of the
// time embedding (0 for none).
func LoadResnetBlock2D(p Params, in, out, temb, groups int, eps float64) (*ResnetBlock2D, error) {
	r := &ResnetBlock2D{OutputScale: 1, In: in, Out: out}
	var err error
	pad := tensor.Conv2dParams{Padding: 1}
	if r.Norm1, err = LoadGroupNorm(Sub(p, "norm1"), groups, in, eps); err != nil {
		return nil, err
	}
	if r.Conv1, err = LoadConv2d(Sub(p, "conv1"), in, out, 3, pad); err != nil {
		r.Release()
		return nil, err
	}
	if temb > 0 {
		if r.TimeProj, err = LoadLinear(Sub(p, "time_emb_proj"), temb, out, true); err != nil {
			r.Release()
			return nil, err
		}
	}
	if r.Norm2, err = LoadGroupNorm(Sub(p, "norm2"), groups, out, eps); err != nil {
		r.Release()
		return nil, err
	}
	if r.Conv2, err = LoadConv2d(Sub(p, "conv2"), out, out, 3, pad); err != nil {
		r.Release()
		return nil, err
	}
	if in != out {
		if r.Shortcut, err = LoadConv2d(Sub(p, "conv_shortcut"), in, out, 1, tensor.Conv2dParams{}); err != nil {
			r.Release()
			return nil, err
		}
	}
	return r, nil
}

// Release releases the weights.
func (r *ResnetBlock2D) Release() {
	for _, n := range []*GroupNorm{r.Norm1, r.Norm2} {
		if n != nil {
			n.Release()
		}
	}
	for _, c := range []*Conv2d{r.Conv1, r.Conv2, r.Shortcut} {
		if c != nil {
			c.Release()
		}
	}
	if r.TimeProj != nil {
		r.TimeProj.Release()
	}
}

// Forward applies the block to x [B, in, H, W]; temb is the raw time embedding
// [B, temb] (the block applies SiLU and its projection) or nil.
func (r *ResnetBlock2D) Forward(x, temb *tensor.Tensor) (*tensor.Tensor, error) {
	if x.Rank() != 4 || x.Dim(1) != r.In {
		return nil, fmt.Errorf("resnet: input %v, want [B %d H W]", x, r.In)
	}
	h, err := r.Norm1.ForwardSiLU(x)
	if err != nil {
		return nil, err
	}
	h2, err := r.Conv1.Forward(h)
	h.Release()
	if err != nil {
		return nil, err
	}
	if r.TimeProj != nil && temb != nil {
		a, err := tensor.SiLU(temb)
		if err != nil {
			h2.Release()
			return nil, err
		}
		t, err := r.TimeProj.Forward(a)
		a.Release()
		if err != nil {
			h2.Release()
			return nil, err
		}
		t4, err := t.Reshape(t.Dim(0), t.Dim(1), 1, 1)
		t.Release()
		if err != nil {
			h2.Release()
			return nil, err
		}
		sum, err := tensor.Add(h2, t4)
		t4.Release()
		h2.Release()
		if err != nil {
			return nil, err
		}
		h2 = sum
	}
	h3, err := r.Norm2.ForwardSiLU(h2)
	h2.Release()
	if err != nil {
		return nil, err
	}
	h4, err := r.Conv2.Forward(h3)
	h3.Release()
	if err != nil {
		return nil, err
	}
	defer h4.Release()
	sc := x
	if r.Shortcut != nil {
		if sc, err = r.Shortcut.Forward(x); err != nil {
			return nil, err
		}
		defer sc.Release()
	}
	out, err := tensor.Add(sc, h4)
	if err != nil || r.OutputScale == 1 {
		return out, err
	}
	defer out.Release()
	return tensor.Scale(out, 1/r.OutputScale)
}

// Downsample2D halves the resolution with a stride-2 3x3 convolution ("conv").
type Downsample2D struct{ Conv *Conv2d }

// LoadDownsample2D loads the convolution; padding is the UNet's 1 on each side,
// or 0 for the VAE encoder, which pads only the bottom and right by one.
func LoadDownsample2D(p Params, channels, padding int) (*Downsample2D, error) {
	cp := tensor.Conv2dParams{Stride: 2, Padding: padding}
	if padding == 0 {
		cp.PadEnd = 1
	}
	c, err := LoadConv2d(Sub(p, "conv"), channels, channels, 3, cp)
	if err != nil {
		return nil, err
	}
	return &Downsample2D{c}, nil
}

// Forward downsamples x [B, C, H, W].
func (d *Downsample2D) Forward(x *tensor.Tensor) (*tensor.Tensor, error) { return d.Conv.Forward(x) }

// Release releases the weights.
func (d *Downsample2D) Release() { d.Conv.Release() }

// Upsample2D doubles the resolution by nearest neighbour (or resamples to a
// given size) and applies a 3x3 convolution ("conv").
type Upsample2D struct{ Conv *Conv2d }

// LoadUpsample2D loads the convolution.
func LoadUpsample2D(p Params, channels int) (*Upsample2D, error) {
	c, err := LoadConv2d(Sub(p, "conv"), channels, channels, 3, tensor.Conv2dParams{Padding: 1})
	if err != nil {
		return nil, err
	}
	return &Upsample2D{c}, nil
}

// Forward upsamples x [B, C, H, W] to [B, C, h, w], or to twice its size when h
// and w are 0.
func (u *Upsample2D) Forward(x *tensor.Tensor, h, w int) (*tensor.Tensor, error) {
	if h == 0 || w == 0 {
		h, w = 2*x.Dim(2), 2*x.Dim(3)
	}
	up, err := tensor.ResizeNearest(x, h, w)
	if err != nil {
		return nil, err
	}
	defer up.Release()
	return u.Conv.Forward(up)
}

// Release releases the weights.
func (u *Upsample2D) Release() { u.Conv.Release() }

package vae

import (
	"fmt"
	"slices"

	"github.com/sdgo/sdgo/nn"
	"github.com/sdgo/sdgo/tensor"
)

// arch is an AutoencoderKL configuration in the form the network is built from.
type arch struct {
	inChannels, outChannels, latentChannels int
	channels                                []int // block_out_channels
	layers                                  int   // layers_per_block
	groups                                  int
	midAttention                            bool
	quantConv, postQuantConv                bool
}

// the VAE's norms all use eps 1e-6 (diffusers hard-codes it for the autoencoder).
const eps = 1e-6

// Model is an AutoencoderKL: an encoder from images to the mean and log-variance
// of the latent distribution, and a decoder back.
type Model struct {
	arch arch
	cfg  Config

	encConvIn  *nn.Conv2d
	encDown    []encoderBlock
	encMid     midBlock
	encNormOut *nn.GroupNorm
	encConvOut *nn.Conv2d
	quantConv  *nn.Conv2d // nil without use_quant_conv
	postQuant  *nn.Conv2d // nil without use_post_quant_conv
	decConvIn  *nn.Conv2d
	decMid     midBlock
	decUp      []decoderBlock
	decNormOut *nn.GroupNorm
	decConvOut *nn.Conv2d
}

type encoderBlock struct {
	resnets    []*nn.ResnetBlock2D
	downsample *nn.Downsample2D
}

type decoderBlock struct {
	resnets  []*nn.ResnetBlock2D
	upsample *nn.Upsample2D
}

type midBlock struct {
	resnets   [2]*nn.ResnetBlock2D
	attention *nn.SpatialAttention // nil without mid_block_add_attention
}

// Load builds an autoencoder from its config and weights named as in diffusers'
// diffusion_pytorch_model.safetensors.
func Load(p nn.Params, cfg Config) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("vae config: %w", err)
	}
	a := arch{
		inChannels: cfg.InChannels, outChannels: cfg.OutChannels, latentChannels: cfg.LatentChannels,
		channels: slices.Clone(cfg.BlockOutChannels), layers: cfg.LayersPerBlock, groups: cfg.NormNumGroups,
		midAttention: cfg.MidBlockAddAttention, quantConv: cfg.UseQuantConv, postQuantConv: cfg.UsePostQuantConv,
	}
	m := &Model{arch: a, cfg: cfg.Clone()}
	if err := m.load(p); err != nil {
		m.Release()
		return nil, fmt.Errorf("vae: %w", err)
	}
	return m, nil
}

// Config returns the model's configuration.
func (m *Model) Config() Config { return m.cfg.Clone() }

func loadMid(p nn.Params, ch, groups int, attention bool, mb *midBlock) error {
	var err error
	if mb.resnets[0], err = nn.LoadResnetBlock2D(nn.Sub(p, "resnets.0"), ch, ch, 0, groups, eps); err != nil {
		return err
	}
	if attention {
		if mb.attention, err = nn.LoadSpatialAttention(nn.Sub(p, "attentions.0"), ch, groups, eps); err != nil {
			return err
		}
	}
	mb.resnets[1], err = nn.LoadResnetBlock2D(nn.Sub(p, "resnets.1"), ch, ch, 0, groups, eps)
	return err
}

func (m *Model) load(p nn.Params) error {
	a := &m.arch
	pad1 := tensor.Conv2dParams{Padding: 1}
	last := len(a.channels) - 1
	var err error
	// Encoder.
	ep := nn.Sub(p, "encoder")
	if m.encConvIn, err = nn.LoadConv2d(nn.Sub(ep, "conv_in"), a.inChannels, a.channels[0], 3, pad1); err != nil {
		return err
	}
	out := a.channels[0]
	for i := range a.channels {
		in := out
		out = a.channels[i]
		bp := nn.Sub(ep, fmt.Sprintf("down_blocks.%d", i))
		var b encoderBlock
		for j := range a.layers {
			rin := out
			if j == 0 {
				rin = in
			}
			r, err := nn.LoadResnetBlock2D(nn.Sub(bp, fmt.Sprintf("resnets.%d", j)), rin, out, 0, a.groups, eps)
			if err != nil {
				return err
			}
			b.resnets = append(b.resnets, r)
		}
		if i < last {
			if b.downsample, err = nn.LoadDownsample2D(nn.Sub(bp, "downsamplers.0"), out, 0); err != nil {
				return err
			}
		}
		m.encDown = append(m.encDown, b)
	}
	if err = loadMid(nn.Sub(ep, "mid_block"), a.channels[last], a.groups, a.midAttention, &m.encMid); err != nil {
		return err
	}
	if m.encNormOut, err = nn.LoadGroupNorm(nn.Sub(ep, "conv_norm_out"), a.groups, a.channels[last], eps); err != nil {
		return err
	}
	if m.encConvOut, err = nn.LoadConv2d(nn.Sub(ep, "conv_out"), a.channels[last], 2*a.latentChannels, 3, pad1); err != nil {
		return err
	}
	if a.quantConv {
		if m.quantConv, err = nn.LoadConv2d(nn.Sub(p, "quant_conv"), 2*a.latentChannels, 2*a.latentChannels, 1, tensor.Conv2dParams{}); err != nil {
			return err
		}
	}
	if a.postQuantConv {
		if m.postQuant, err = nn.LoadConv2d(nn.Sub(p, "post_quant_conv"), a.latentChannels, a.latentChannels, 1, tensor.Conv2dParams{}); err != nil {
			return err
		}
	}
	// Decoder.
	dp := nn.Sub(p, "decoder")
	if m.decConvIn, err = nn.LoadConv2d(nn.Sub(dp, "conv_in"), a.latentChannels, a.channels[last], 3, pad1); err != nil {
		return err
	}
	if err = loadMid(nn.Sub(dp, "mid_block"), a.channels[last], a.groups, a.midAttention, &m.decMid); err != nil {
		return err
	}
	out = a.channels[last]
	for i := range a.channels {
		in := out
		out = a.channels[last-i]
		bp := nn.Sub(dp, fmt.Sprintf("up_blocks.%d", i))
		var b decoderBlock
		for j := range a.layers + 1 {
			rin := out
			if j == 0 {
				rin = in
			}
			r, err := nn.LoadResnetBlock2D(nn.Sub(bp, fmt.Sprintf("resnets.%d", j)), rin, out, 0, a.groups, eps)
			if err != nil {
				return err
			}
			b.resnets = append(b.resnets, r)
		}
		if i < last {
			if b.upsample, err = nn.LoadUpsample2D(nn.Sub(bp, "upsamplers.0"), out); err != nil {
				return err
			}
		}
		m.decUp = append(m.decUp, b)
	}
	if m.decNormOut, err = nn.LoadGroupNorm(nn.Sub(dp, "conv_norm_out"), a.groups, a.channels[0], eps); err != nil {
		return err
	}
	m.decConvOut, err = nn.LoadConv2d(nn.Sub(dp, "conv_out"), a.channels[0], a.outChannels, 3, pad1)
	return err
}

// Release releases the weights.
func (m *Model) Release() {
	var rel []interface{ Release() }
	add := func(xs ...interface{ Release() }) { rel = append(rel, xs...) }
	addConv := func(cs ...*nn.Conv2d) {
		for _, c := range cs {
			if c != nil {
				add(c)
			}
		}
	}
	addMid := func(mb *midBlock) {
		for _, r := range mb.resnets {
			if r != nil {
				add(r)
			}
		}
		if mb.attention != nil {
			add(mb.attention)
		}
	}
	addConv(m.encConvIn, m.encConvOut, m.quantConv, m.postQuant, m.decConvIn, m.decConvOut)
	for _, b := range m.encDown {
		for _, r := range b.resnets {
			add(r)
		}
		if b.downsample != nil {
			add(b.downsample)
		}
	}
	for _, b := range m.decUp {
		for _, r := range b.resnets {
			add(r)
		}
		if b.upsample != nil {
			add(b.upsample)
		}
	}
	addMid(&m.encMid)
	addMid(&m.decMid)
	for _, n := range []*nn.GroupNorm{m.encNormOut, m.decNormOut} {
		if n != nil {
			add(n)
		}
	}
	for _, r := range rel {
		r.Release()
	}
}

func (mb *midBlock) forward(x *tensor.Tensor) (*tensor.Tensor, error) {
	h, err := mb.resnets[0].Forward(x, nil)
	if err != nil {
		return nil, fmt.Errorf("mid_block.resnets.0: %w", err)
	}
	if mb.attention != nil {
		next, err := mb.attention.Forward(h)
		h.Release()
		if err != nil {
			return nil, fmt.Errorf("mid_block.attentions.0: %w", err)
		}
		h = next
	}
	out, err := mb.resnets[1].Forward(h, nil)
	h.Release()
	if err != nil {
		return nil, fmt.Errorf("mid_block.resnets.1: %w", err)
	}
	return out, nil
}

// chain runs x through fs, releasing each intermediate (but not x).
func chain(x *tensor.Tensor, fs ...func(*tensor.Tensor) (*tensor.Tensor, error)) (*tensor.Tensor, error) {
	h := x
	for _, f := range fs {
		next, err := f(h)
		if h != x {
			h.Release()
		}
		if err != nil {
			return nil, err
		}
		h = next
	}
	if h == x {
		return x.Contiguous()
	}
	return h, nil
}

// Encode maps images x [B, in_channels, H, W] in [-1, 1] to the mean and the
// log-variance (clamped to [-30, 20], as diffusers does) of the latent
// distribution, each [B, latent_channels, H/8, W/8]; no scaling factor is applied.
func (m *Model) Encode(x *tensor.Tensor) (mean, logvar *tensor.Tensor, err error) {
	if x.Rank() != 4 || x.Dim(1) != m.arch.inChannels {
		return nil, nil, fmt.Errorf("vae: image %v, want [B %d H W]", x, m.arch.inChannels)
	}
	fs := []func(*tensor.Tensor) (*tensor.Tensor, error){m.encConvIn.Forward}
	for i, b := range m.encDown {
		for j, r := range b.resnets {
			fs = append(fs, func(h *tensor.Tensor) (*tensor.Tensor, error) {
				out, err := r.Forward(h, nil)
				if err != nil {
					return nil, fmt.Errorf("vae: encoder.down_blocks.%d.resnets.%d: %w", i, j, err)
				}
				return out, nil
			})
		}
		if b.downsample != nil {
			fs = append(fs, b.downsample.Forward)
		}
	}
	fs = append(fs, m.encMid.forward, m.encNormOut.ForwardSiLU, m.encConvOut.Forward)
	if m.quantConv != nil {
		fs = append(fs, m.quantConv.Forward)
	}
	moments, err := chain(x, fs...)
	if err != nil {
		return nil, nil, err
	}
	defer moments.Release()
	lc := m.arch.latentChannels
	meanView, err := moments.Narrow(1, 0, lc)
	if err != nil {
		return nil, nil, err
	}
	defer meanView.Release()
	lvView, err := moments.Narrow(1, lc, lc)
	if err != nil {
		return nil, nil, err
	}
	defer lvView.Release()
	if mean, err = meanView.Contiguous(); err != nil {
		return nil, nil, err
	}
	lv, err := lvView.Contiguous()
	if err != nil {
		mean.Release()
		return nil, nil, err
	}
	defer lv.Release()
	if logvar, err = tensor.Clamp(lv, -30, 20); err != nil {
		mean.Release()
		return nil, nil, err
	}
	return mean, logvar, nil
}

// Decode maps latents z [B, latent_channels, h, w] (already divided by the
// scaling factor) to images [B, out_channels, 8h, 8w] in about [-1, 1].
func (m *Model) Decode(z *tensor.Tensor) (*tensor.Tensor, error) {
	if z.Rank() != 4 || z.Dim(1) != m.arch.latentChannels {
		return nil, fmt.Errorf("vae: latent %v, want [B %d h w]", z, m.arch.latentChannels)
	}
	var fs []func(*tensor.Tensor) (*tensor.Tensor, error)
	if m.postQuant != nil {
		fs = append(fs, m.postQuant.Forward)
	}
	fs = append(fs, m.decConvIn.Forward, m.decMid.forward)
	for i, b := range m.decUp {
		for j, r := range b.resnets {
			fs = append(fs, func(h *tensor.Tensor) (*tensor.Tensor, error) {
				out, err := r.Forward(h, nil)
				if err != nil {
					return nil, fmt.Errorf("vae: decoder.up_blocks.%d.resnets.%d: %w", i, j, err)
				}
				return out, nil
			})
		}
		if b.upsample != nil {
			fs = append(fs, func(h *tensor.Tensor) (*tensor.Tensor, error) { return b.upsample.Forward(h, 0, 0) })
		}
	}
	fs = append(fs, m.decNormOut.ForwardSiLU, m.decConvOut.Forward)
	return chain(z, fs...)
}

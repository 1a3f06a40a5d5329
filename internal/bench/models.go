package bench

import (
	"fmt"
	"math"

	"github.com/sdgo/sdgo/diffusion/clip"
	"github.com/sdgo/sdgo/diffusion/unet"
	"github.com/sdgo/sdgo/diffusion/vae"
	"github.com/sdgo/sdgo/tensor"
)

// Arch names a model family whose real shapes the benchmarks use.
type Arch string

// The families.
const (
	SD15 Arch = "sd15"
	SD21 Arch = "sd21"
	SDXL Arch = "sdxl"
)

// UNetConfig returns the family's UNet architecture.
func UNetConfig(a Arch) (unet.Config, error) {
	switch a {
	case SD15:
		return unet.SD15(), nil
	case SD21:
		return unet.SD21(), nil
	case SDXL:
		return unet.SDXL(), nil
	}
	return unet.Config{}, fmt.Errorf("bench: unknown arch %q (want sd15, sd21 or sdxl)", a)
}

// VAEConfig returns the family's autoencoder architecture.
func VAEConfig(a Arch) (vae.Config, error) {
	switch a {
	case SD15, SD21:
		return vae.SD(), nil
	case SDXL:
		return vae.SDXL(), nil
	}
	return vae.Config{}, fmt.Errorf("bench: unknown arch %q (want sd15, sd21 or sdxl)", a)
}

// TextConfigs returns the family's text encoders.
func TextConfigs(a Arch) ([]clip.Config, error) {
	switch a {
	case SD15:
		return []clip.Config{clip.ViTL14()}, nil
	case SD21:
		return []clip.Config{clip.OpenCLIPH14()}, nil
	case SDXL:
		return []clip.Config{clip.ViTL14(), clip.OpenCLIPBigG14()}, nil
	}
	return nil, fmt.Errorf("bench: unknown arch %q (want sd15, sd21 or sdxl)", a)
}

// UNetInput makes a call's inputs for a latent of size latent×latent: random
// latents, timestep 500, a 77-token context and, for SDXL, the added conditions.
func UNetInput(b tensor.Backend, cfg unet.Config, batch, latent int) (unet.Input, error) {
	rnd := func(shape ...int) (*tensor.Tensor, error) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(math.Sin(float64(i) * 0.618))
		}
		return tensor.FromFloat32(b, v, shape...)
	}
	var in unet.Input
	var err error
	if in.Sample, err = rnd(batch, cfg.InChannels, latent, latent); err != nil {
		return in, err
	}
	if in.Context, err = rnd(batch, 77, cfg.CrossAttentionDimAt(0)); err != nil {
		return in, err
	}
	for range batch {
		in.Timestep = append(in.Timestep, 500)
	}
	if cfg.AdditionEmbedType == "text_time" {
		ids := 6
		pooled := cfg.ProjectionClassEmbeddingsInputDim - ids*cfg.AdditionTimeEmbedDim
		if in.TextEmbeds, err = rnd(batch, pooled); err != nil {
			return in, err
		}
		if in.TimeIDs, err = rnd(batch, ids); err != nil {
			return in, err
		}
	}
	return in, nil
}

// UNetGFLOP estimates a UNet call's work: twice the multiply-adds of its
// convolutions, linear layers and attention products, from the architecture.
func UNetGFLOP(cfg unet.Config, batch, latent int) float64 {
	var macs float64
	conv := func(cin, cout, k, h, w int) { macs += float64(cin*cout*k*k) * float64(h*w) }
	linear := func(in, out, tokens int) { macs += float64(in*out) * float64(tokens) }
	resnet := func(cin, cout, h, w int) {
		conv(cin, cout, 3, h, w)
		conv(cout, cout, 3, h, w)
		if cin != cout {
			conv(cin, cout, 1, h, w)
		}
	}
	transformer := func(ch, layers, ctx, h, w int) {
		t := h * w
		conv(ch, ch, 1, h, w)
		conv(ch, ch, 1, h, w)
		for range layers {
			linear(ch, 3*ch, t) // q, k, v
			macs += 2 * float64(t) * float64(t) * float64(ch)
			linear(ch, ch, t)
			linear(ch, ch, t)
			linear(ctx, 2*ch, 77)
			macs += 2 * float64(t) * 77 * float64(ch)
			linear(ch, ch, t)
			linear(ch, 8*ch, t)
			linear(4*ch, ch, t)
		}
	}
	levels := cfg.Levels()
	h := latent
	conv(cfg.InChannels, cfg.BlockOutChannels[0], 3, h, h)
	out := cfg.BlockOutChannels[0]
	var skips []int
	skips = append(skips, out)
	for i := range levels {
		in := out
		out = cfg.BlockOutChannels[i]
		for j := range cfg.Layers(i) {
			c := out
			if j == 0 {
				c = in
			}
			resnet(c, out, h, h)
			if cfg.HasCrossAttention(i) {
				transformer(out, cfg.TransformerLayers(i), cfg.CrossAttentionDimAt(i), h, h)
			}
			skips = append(skips, out)
		}
		if i < levels-1 {
			conv(out, out, 3, h/2, h/2)
			h /= 2
			skips = append(skips, out)
		}
	}
	top := cfg.BlockOutChannels[levels-1]
	resnet(top, top, h, h)
	transformer(top, cfg.MidTransformerLayers(), cfg.MidCrossAttentionDim(), h, h)
	resnet(top, top, h, h)
	prev := top
	for i := range levels {
		level := levels - 1 - i
		out := cfg.BlockOutChannels[level]
		for j := range cfg.UpLayers(i) {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			c := out
			if j == 0 {
				c = prev
			}
			resnet(c+skip, out, h, h)
			if cfg.UpHasCrossAttention(i) {
				transformer(out, cfg.UpTransformerLayers(i), cfg.UpCrossAttentionDim(i), h, h)
			}
		}
		prev = out
		if i < levels-1 {
			h *= 2
			conv(out, out, 3, h, h)
		}
	}
	conv(cfg.BlockOutChannels[0], cfg.OutChannels, 3, h, h)
	return 2 * macs * float64(batch) / 1e9
}

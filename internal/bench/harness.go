package bench

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/sdgo/sdgo/diffusion/clip"
	"github.com/sdgo/sdgo/diffusion/unet"
	"github.com/sdgo/sdgo/diffusion/vae"
	"github.com/sdgo/sdgo/tensor"
)

// Spec is one benchmark: a component of a family at a size.
type Spec struct {
	Arch Arch
	// Component is unet, vae-decode, vae-encode, text or pipeline.
	Component string
	// Size is the image side in pixels (latents are Size/8).
	Size  int
	Batch int
	// Steps is the denoising steps of a pipeline run (classifier-free guidance,
	// so each step is a UNet call on twice the batch).
	Steps int
	Iters int
	// Device names the backend; only "cpu" exists so far.
	Device string
}

// Report is a benchmark's result, in the JSON form `sd bench --json` prints
// (the keys are a contract).
type Report struct {
	Arch      string  `json:"arch"`
	Component string  `json:"component"`
	Size      int     `json:"size"`
	Batch     int     `json:"batch"`
	Device    string  `json:"device"`
	Threads   int     `json:"threads"`
	Iters     int     `json:"iters"`
	MsMedian  float64 `json:"ms_median"`
	MsMin     float64 `json:"ms_min"`
	GFLOP     float64 `json:"gflop"`
	GFLOPS    float64 `json:"gflops"`
	PeakRSSMB float64 `json:"peak_rss_mb"`
}

// Run builds the component with synthetic F16 weights of the real shapes, calls
// it Iters times after one warm-up call, and reports the timings.
func Run(ctx context.Context, s Spec) (Report, error) {
	if s.Device == "" {
		s.Device = "cpu"
	}
	if s.Device != "cpu" {
		return Report{}, fmt.Errorf("bench: device %q is not available (cpu only)", s.Device)
	}
	if s.Size <= 0 || s.Size%8 != 0 || s.Size > 4096 {
		return Report{}, fmt.Errorf("bench: size %d must be a multiple of 8 up to 4096", s.Size)
	}
	s.Batch, s.Iters, s.Steps = max(s.Batch, 1), max(s.Iters, 1), max(s.Steps, 1)
	call, gflop, release, err := build(s)
	if err != nil {
		return Report{}, err
	}
	defer release()
	if err := call(); err != nil { // warm-up: first-touch allocations, pools
		return Report{}, err
	}
	var ms []float64
	for range s.Iters {
		if err := ctx.Err(); err != nil {
			return Report{}, err
		}
		start := time.Now()
		if err := call(); err != nil {
			return Report{}, err
		}
		ms = append(ms, float64(time.Since(start).Microseconds())/1e3)
	}
	slices.Sort(ms)
	med := ms[len(ms)/2]
	if len(ms)%2 == 0 {
		med = (ms[len(ms)/2-1] + ms[len(ms)/2]) / 2
	}
	return Report{
		Arch: string(s.Arch), Component: s.Component, Size: s.Size, Batch: s.Batch, Device: s.Device,
		Threads: runtime.GOMAXPROCS(0), Iters: s.Iters, MsMedian: med, MsMin: ms[0],
		GFLOP: gflop, GFLOPS: gflop / (med / 1e3), PeakRSSMB: PeakRSSMB(),
	}, nil
}

// build returns the call to time, its work in GFLOP and a release function.
func build(s Spec) (call func() error, gflop float64, release func(), err error) {
	cpu := tensor.NewCPU()
	syn := &Synthetic{Backend: cpu, DType: tensor.F16}
	latent := s.Size / 8
	switch s.Component {
	case "unet":
		cfg, err := UNetConfig(s.Arch)
		if err != nil {
			return nil, 0, nil, err
		}
		m, err := unet.Load(syn, cfg, unet.Options{})
		if err != nil {
			return nil, 0, nil, err
		}
		in, err := UNetInput(cpu, cfg, s.Batch, latent)
		if err != nil {
			m.Release()
			return nil, 0, nil, err
		}
		return func() error { return releaseOut(m.Forward(in, nil)) }, UNetGFLOP(cfg, s.Batch, latent), m.Release, nil
	case "vae-decode", "vae-encode":
		cfg, err := VAEConfig(s.Arch)
		if err != nil {
			return nil, 0, nil, err
		}
		m, err := vae.Load(syn, cfg)
		if err != nil {
			return nil, 0, nil, err
		}
		if s.Component == "vae-decode" {
			z, err := tensor.Full(cpu, tensor.F32, 0.5, s.Batch, cfg.LatentChannels, latent, latent)
			if err != nil {
				m.Release()
				return nil, 0, nil, err
			}
			return func() error { return releaseOut(m.Decode(z)) }, VAEGFLOP(cfg, s.Batch, s.Size, true), m.Release, nil
		}
		x, err := tensor.Full(cpu, tensor.F32, 0.1, s.Batch, cfg.InChannels, s.Size, s.Size)
		if err != nil {
			m.Release()
			return nil, 0, nil, err
		}
		return func() error {
			mean, logvar, err := m.Encode(x)
			mean.Release()
			logvar.Release()
			return err
		}, VAEGFLOP(cfg, s.Batch, s.Size, false), m.Release, nil
	case "text":
		cfgs, err := TextConfigs(s.Arch)
		if err != nil {
			return nil, 0, nil, err
		}
		var models []*clip.TextModel
		rel := func() {
			for _, m := range models {
				m.Release()
			}
		}
		for _, c := range cfgs {
			m, err := clip.Load(syn, c)
			if err != nil {
				rel()
				return nil, 0, nil, err
			}
			models = append(models, m)
			gflop += TextGFLOP(c, s.Batch)
		}
		ids := tokenIDs(s.Batch)
		return func() error {
			for _, m := range models {
				out, err := m.Forward(ids)
				if err != nil {
					return err
				}
				out.Release()
			}
			return nil
		}, gflop, rel, nil
	case "pipeline":
		return buildPipeline(s)
	}
	return nil, 0, nil, fmt.Errorf("bench: unknown component %q (want unet, vae-decode, vae-encode, text or pipeline)", s.Component)
}

// buildPipeline times what a text-to-image run costs: the text encoders on the
// prompt and the empty negative prompt, Steps UNet calls on the doubled batch
// (classifier-free guidance), and the decode of each image.
func buildPipeline(s Spec) (func() error, float64, func(), error) {
	parts := []string{"text", "unet", "vae-decode"}
	var calls []func() error
	var rels []func()
	var total float64
	release := func() {
		for _, r := range rels {
			r()
		}
	}
	for _, c := range parts {
		sub := s
		sub.Component = c
		switch c {
		case "text":
			sub.Batch = 2
		case "unet":
			sub.Batch = 2 * s.Batch
		}
		call, g, rel, err := build(sub)
		if err != nil {
			release()
			return nil, 0, nil, err
		}
		rels = append(rels, rel)
		n := 1
		if c == "unet" {
			n = s.Steps
		}
		for range n {
			calls = append(calls, call)
		}
		total += g * float64(n)
	}
	return func() error {
		for _, c := range calls {
			if err := c(); err != nil {
				return err
			}
		}
		return nil
	}, total, release, nil
}

func releaseOut(t *tensor.Tensor, err error) error {
	if t != nil {
		t.Release()
	}
	return err
}

func tokenIDs(batch int) [][]int {
	ids := make([][]int, batch)
	for b := range ids {
		ids[b] = make([]int, 77)
		for i := range ids[b] {
			ids[b][i] = (i*997 + b) % 49408
		}
	}
	return ids
}

// VAEGFLOP estimates a VAE call's work (decoder when decode, else encoder) at
// size×size pixels: twice the multiply-adds of its convolutions and the mid
// block's attention.
func VAEGFLOP(cfg vae.Config, batch, size int, decode bool) float64 {
	var macs float64
	conv := func(cin, cout, k, h int) { macs += float64(cin*cout*k*k) * float64(h*h) }
	resnet := func(cin, cout, h int) {
		conv(cin, cout, 3, h)
		conv(cout, cout, 3, h)
		if cin != cout {
			conv(cin, cout, 1, h)
		}
	}
	ch := cfg.BlockOutChannels
	top := ch[len(ch)-1]
	mid := func(h int) {
		resnet(top, top, h)
		t := float64(h * h)
		macs += 4*float64(top*top)*t + 2*t*t*float64(top)
		resnet(top, top, h)
	}
	levels := len(ch)
	if decode {
		h := size >> (levels - 1)
		conv(cfg.LatentChannels, cfg.LatentChannels, 1, h)
		conv(cfg.LatentChannels, top, 3, h)
		mid(h)
		prev := top
		for i := range levels {
			out := ch[levels-1-i]
			for j := range cfg.LayersPerBlock + 1 {
				in := out
				if j == 0 {
					in = prev
				}
				resnet(in, out, h)
			}
			prev = out
			if i < levels-1 {
				h *= 2
				conv(out, out, 3, h)
			}
		}
		conv(ch[0], cfg.OutChannels, 3, h)
	} else {
		h := size
		conv(cfg.InChannels, ch[0], 3, h)
		prev := ch[0]
		for i := range levels {
			out := ch[i]
			for j := range cfg.LayersPerBlock {
				in := out
				if j == 0 {
					in = prev
				}
				resnet(in, out, h)
			}
			prev = out
			if i < levels-1 {
				h /= 2
				conv(out, out, 3, h)
			}
		}
		mid(h)
		conv(top, 2*cfg.LatentChannels, 3, h)
		conv(2*cfg.LatentChannels, 2*cfg.LatentChannels, 1, h)
	}
	return 2 * macs * float64(batch) / 1e9
}

// TextGFLOP estimates a text encoder call on 77 tokens.
func TextGFLOP(c clip.Config, batch int) float64 {
	l, d, i := 77.0, float64(c.HiddenSize), float64(c.IntermediateSize)
	per := 4*d*d*l + 2*l*l*d + 2*d*i*l
	return 2 * per * float64(c.NumHiddenLayers) * float64(batch) / 1e9
}

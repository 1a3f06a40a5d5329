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
	"github.com/sdgo/sdgo/diffusion/weights"
	"github.com/sdgo/sdgo/nn"
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
	// Device names the backend, as tensor.OpenDevice takes it ("cpu",
	// "cuda:0"); devices other than the CPU need their package imported.
	Device string
	// Open, when set, opens Device instead of tensor.OpenDevice (to set a
	// device's precision, say).
	Open func(device string) (tensor.Backend, error) `json:"-"`
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
	if s.Size <= 0 || s.Size%8 != 0 || s.Size > 4096 {
		return Report{}, fmt.Errorf("bench: size %d must be a multiple of 8 up to 4096", s.Size)
	}
	s.Batch, s.Iters, s.Steps = max(s.Batch, 1), max(s.Iters, 1), max(s.Steps, 1)
	b, err := build(s)
	if err != nil {
		return Report{}, err
	}
	defer b.release()
	call, gflop := b.call, b.gflop
	// A warm-up call first (first-touch allocations, pools, weights' pages),
	// except for a whole pipeline, which is measured as a user's generation
	// runs: from a loaded model whose weights are mapped but not yet read.
	if s.Component != "pipeline" {
		if err := call(); err != nil {
			return Report{}, err
		}
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

// built is a component ready to time.
type built struct {
	call    func() error // one call of the component
	gflop   float64      // its work
	evict   func()       // drops its weights from resident memory (Offload)
	release func()
	// output makes one call and returns its result (the UNet and VAE decode
	// only), to compare devices.
	output func() (*tensor.Tensor, error)
}

// build makes the component of s with synthetic F16 weights, written once to a
// checkpoint in CacheDir and used in place from its mapping, as real weights
// are.
func build(s Spec) (built, error) {
	open := s.Open
	if open == nil {
		open = tensor.OpenDevice
	}
	dev, err := open(s.Device)
	if err != nil {
		return built{}, fmt.Errorf("bench: %w", err)
	}
	b, err := buildOn(dev, s)
	if err != nil {
		closeBackend(dev)
		return built{}, err
	}
	// A device that runs asynchronously finishes each call before the clock
	// stops; the backend is closed with the component.
	if sy, ok := dev.(interface{ Synchronize() error }); ok {
		call := b.call
		b.call = func() error {
			if err := call(); err != nil {
				return err
			}
			return sy.Synchronize()
		}
	}
	rel := b.release
	b.release = func() { rel(); closeBackend(dev) }
	return b, nil
}

func closeBackend(b tensor.Backend) {
	if c, ok := b.(interface{ Close() error }); ok {
		c.Close()
	}
}

func buildOn(cpu tensor.Backend, s Spec) (built, error) {
	// Synthetic weights are recorded on the host; the model loads them onto cpu
	// (whatever the device) from the checkpoint.
	syn := &Synthetic{Backend: tensor.NewCPU(), DType: tensor.F16}
	latent := s.Size / 8
	// load makes a network from the synthetic checkpoint named key; mk builds it
	// from Params and returns its release function.
	load := func(key string, mk func(nn.Params) (func(), error)) (*weights.Tracked, func(), error) {
		src, err := syn.File(string(s.Arch)+"-"+key, mk)
		if err != nil {
			return nil, nil, err
		}
		tp := weights.Track(src, cpu)
		rel, err := mk(tp)
		if err != nil {
			src.Close()
			return nil, nil, err
		}
		return tp, func() { rel(); src.Close() }, nil
	}
	switch s.Component {
	case "unet":
		cfg, err := UNetConfig(s.Arch)
		if err != nil {
			return built{}, err
		}
		var m *unet.Model
		tp, rel, err := load("unet", func(p nn.Params) (func(), error) {
			var err error
			m, err = unet.Load(p, cfg, unet.Options{})
			if err != nil {
				return nil, err
			}
			return m.Release, nil
		})
		if err != nil {
			return built{}, err
		}
		in, err := UNetInput(cpu, cfg, s.Batch, latent)
		if err != nil {
			rel()
			return built{}, err
		}
		out := func() (*tensor.Tensor, error) { return m.Forward(in, nil) }
		return built{func() error { return releaseOut(out()) }, UNetGFLOP(cfg, s.Batch, latent), tp.Evict, rel, out}, nil
	case "vae-decode", "vae-encode":
		cfg, err := VAEConfig(s.Arch)
		if err != nil {
			return built{}, err
		}
		var m *vae.Model
		tp, rel, err := load("vae", func(p nn.Params) (func(), error) {
			var err error
			m, err = vae.Load(p, cfg)
			if err != nil {
				return nil, err
			}
			return m.Release, nil
		})
		if err != nil {
			return built{}, err
		}
		if s.Component == "vae-decode" {
			z, err := tensor.Full(cpu, tensor.F32, 0.5, s.Batch, cfg.LatentChannels, latent, latent)
			if err != nil {
				rel()
				return built{}, err
			}
			out := func() (*tensor.Tensor, error) { return m.Decode(z) }
			return built{func() error { return releaseOut(out()) }, VAEGFLOP(cfg, s.Batch, s.Size, true), tp.Evict, rel, out}, nil
		}
		x, err := tensor.Full(cpu, tensor.F32, 0.1, s.Batch, cfg.InChannels, s.Size, s.Size)
		if err != nil {
			rel()
			return built{}, err
		}
		return built{func() error {
			mean, logvar, err := m.Encode(x)
			mean.Release()
			logvar.Release()
			return err
		}, VAEGFLOP(cfg, s.Batch, s.Size, false), tp.Evict, rel, nil}, nil
	case "text":
		cfgs, err := TextConfigs(s.Arch)
		if err != nil {
			return built{}, err
		}
		var models []*clip.TextModel
		var evicts, rels []func()
		rel := func() {
			for _, r := range rels {
				r()
			}
		}
		var gflop float64
		for i, c := range cfgs {
			var m *clip.TextModel
			tp, r, err := load(fmt.Sprintf("text%d", i), func(p nn.Params) (func(), error) {
				var err error
				m, err = clip.Load(p, c)
				if err != nil {
					return nil, err
				}
				return m.Release, nil
			})
			if err != nil {
				rel()
				return built{}, err
			}
			models = append(models, m)
			evicts, rels = append(evicts, tp.Evict), append(rels, r)
			gflop += TextGFLOP(c, s.Batch)
		}
		ids := tokenIDs(s.Batch)
		return built{func() error {
			for _, m := range models {
				out, err := m.Forward(ids)
				if err != nil {
					return err
				}
				out.Release()
			}
			return nil
		}, gflop, func() {
			for _, e := range evicts {
				e()
			}
		}, rel, func() (*tensor.Tensor, error) {
			out, err := models[0].Forward(ids)
			if err != nil {
				return nil, err
			}
			last, err := out.LastHiddenState.Contiguous() // a view that outlives out
			out.Release()
			return last, err
		}}, nil
	case "pipeline":
		return buildPipeline(cpu, s)
	}
	return built{}, fmt.Errorf("bench: unknown component %q (want unet, vae-decode, vae-encode, text or pipeline)", s.Component)
}

// buildPipeline times what a text-to-image run costs, as diffusion.Pipeline
// runs it with Offload (sd generate's default): the text encoders on the prompt
// and the empty negative prompt, Steps UNet calls on the doubled batch
// (classifier-free guidance), and the decode of each image, each network's
// weights dropped from resident memory once its part is done.
func buildPipeline(cpu tensor.Backend, s Spec) (built, error) {
	var parts []built
	release := func() {
		for _, p := range parts {
			p.release()
		}
	}
	var total float64
	for _, c := range []string{"text", "unet", "vae-decode"} {
		sub := s
		sub.Component = c
		switch c {
		case "text":
			sub.Batch = 2
		case "unet":
			sub.Batch = 2 * s.Batch
		}
		b, err := buildOn(cpu, sub)
		if err != nil {
			release()
			return built{}, err
		}
		b.evict() // loaded but not yet used, as a pipeline's networks are
		n := 1
		if c == "unet" {
			n = s.Steps
		}
		total += b.gflop * float64(n)
		c, calls := b.call, n
		b.call = func() error {
			for range calls {
				if err := c(); err != nil {
					return err
				}
			}
			return nil
		}
		parts = append(parts, b)
	}
	return built{func() error {
		for _, p := range parts {
			if err := p.call(); err != nil {
				return err
			}
			p.evict()
		}
		return nil
	}, total, func() {}, release, nil}, nil
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

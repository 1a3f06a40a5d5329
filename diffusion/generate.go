package diffusion

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"time"

	"github.com/sdgo/sdgo/diffusion/lora"
	"github.com/sdgo/sdgo/diffusion/model"
	"github.com/sdgo/sdgo/diffusion/sched"
	"github.com/sdgo/sdgo/diffusion/textcond"
	"github.com/sdgo/sdgo/diffusion/unet"
	"github.com/sdgo/sdgo/tensor"
)

// Generator is a source of standard normal numbers continuing one stream, as a
// torch.Generator is for torch.randn. The pipelines draw every random number
// of a run from one Generator, in diffusers' order.
type Generator interface {
	Randn(n int) []float32
}

// Request describes one generation. The zero values of the optional fields
// mean what diffusers' defaults mean.
type Request struct {
	Prompt string
	// NegativePrompt is nil when absent: SDXL then uses zero embeddings (when
	// the model asks for it with force_zeros_for_empty_prompt), while an empty
	// string is encoded like any prompt.
	NegativePrompt *string
	// Prompt2 and NegativePrompt2 go to SDXL's second text encoder; nil means
	// the same as Prompt and NegativePrompt.
	Prompt2, NegativePrompt2 *string

	// Width and Height in pixels, multiples of 8; 0 means the model's native
	// size (text-to-image) or the init image's size.
	Width, Height int
	Steps         int
	// Guidance is the classifier-free guidance scale; guidance applies only
	// above 1 (Turbo models run with 0).
	Guidance float64
	// Generator supplies the random numbers; nil is an error. NewGenerator makes
	// torch's CPU or CUDA generator from a seed.
	Generator Generator

	// Scheduler names a scheduler ("euler_a", "DPM++ 2M Karras", ...) applied
	// over the model's scheduler config; "" keeps the model's scheduler.
	Scheduler string
	// SchedulerConfig is a whole scheduler_config.json used instead of the
	// model's (Scheduler then applies over it).
	SchedulerConfig []byte
	// Eta is DDIM's eta (and TCD's gamma); 0 is the default.
	Eta float64

	// InitImage makes an image-to-image run (or an inpainting one with Mask);
	// Strength in (0, 1] is how much of it is repainted (0 means 0.8 for
	// image-to-image and 1 for inpainting, diffusers' defaults).
	InitImage image.Image
	Strength  float64
	// Mask marks with white the pixels to repaint.
	Mask image.Image

	// ClipSkip skips final text-encoder layers (diffusers' meaning).
	ClipSkip int
	// PlainPrompt turns off the weighting syntax and long-prompt chunking.
	PlainPrompt bool

	// SDXL size conditioning, (width, height) and (top, left); zero values mean
	// the image's size and (0, 0).
	OriginalSize, TargetSize image.Point
	CropTopLeft              image.Point

	// Batch is the number of images (diffusers' num_images_per_prompt); 0 is 1.
	Batch int

	// LoRAs, when not nil, are the adapters this run uses: Generate attaches
	// them (ApplyLoRAs, a no-op when they are already the pipeline's set) and
	// leaves them attached; an empty non-nil list removes the pipeline's. nil
	// keeps whatever the pipeline has.
	LoRAs []lora.Adapter

	// VAETiling chooses how latents are decoded: TilingAuto (the default) decodes
	// whole up to one megapixel, exactly as diffusers does, and in overlapping
	// tiles above (diffusers' enable_vae_tiling), so that a 2048x2048 decode needs
	// about what a 512x512 one does; TilingOn and TilingOff force either way.
	VAETiling Tiling

	// Progress is called after every step; Latents is valid only during the call.
	Progress func(Progress)
}

// Tiling is a VAE decoding choice; see Request.VAETiling.
type Tiling int

// The VAE decoding choices.
const (
	TilingAuto Tiling = iota
	TilingOn
	TilingOff
)

// tilingThreshold is the image area above which TilingAuto tiles.
const tilingThreshold = 1024 * 1024

// Progress reports a finished step.
type Progress struct {
	Step, Steps int
	// Latents are the latents after the step, [Batch, 4, h, w], on the
	// pipeline's backend (on a GPU, a view of the latents there: nothing is
	// copied unless the callback reads them, e.g. with Float32s for a preview).
	// They are released when the callback returns.
	Latents *tensor.Tensor
}

// Result is what Generate made.
type Result struct {
	Images []*image.NRGBA
	// Latents are the final latents, [Batch, 4, h, w], before decoding.
	Latents []float32
	// Timings of the phases.
	Encode, Denoise, Decode time.Duration
	// Warnings say what the run changed from the request, e.g. a plain prompt
	// cut at 77 tokens (diffusers logs the same warning).
	Warnings []string
}

type mode int

const (
	textToImage mode = iota
	imageToImage
	inpaint
)

// Generate runs the pipeline for req.
func (p *Pipeline) Generate(ctx context.Context, req Request) (*Result, error) {
	if p.unet == nil {
		return nil, errClosed
	}
	if req.LoRAs != nil {
		if err := p.ApplyLoRAs(req.LoRAs...); err != nil {
			return nil, err
		}
	}
	r, err := p.plan(req)
	if err != nil {
		return nil, err
	}
	defer r.release()
	res := &Result{}
	start := time.Now()
	if err := r.encodePrompts(p); err != nil {
		return nil, err
	}
	p.evictAfter(p.textParams...)
	res.Warnings = r.warnings
	if err := r.prepareLatents(p); err != nil {
		return nil, err
	}
	p.evictAfter(p.vaeParams) // image-to-image and inpainting encoded with it
	res.Encode = time.Since(start)

	start = time.Now()
	err = r.denoise(ctx, p)
	p.evictAfter(p.unetParams)
	if err != nil {
		return nil, err
	}
	res.Denoise = time.Since(start)

	start = time.Now()
	if res.Latents, err = r.arith.ToHost(r.latents); err != nil {
		return nil, err
	}
	res.Images, err = r.decode(p)
	p.evictAfter(p.vaeParams)
	if err != nil {
		return nil, err
	}
	res.Decode = time.Since(start)
	return res, nil
}

// run is one generation's state.
type run struct {
	req           Request
	mode          mode
	batch         int
	width, height int
	lh, lw        int
	cfg           bool
	sched         sched.Scheduler
	timesteps     []float64
	context       *tensor.Tensor // [B or 2B, L, D]; negatives first
	pooled        *tensor.Tensor // SDXL
	timeIDs       *tensor.Tensor // SDXL
	// arith is where the latents live and the scheduler computes: host slices
	// on the CPU, the device's memory otherwise (see arithFor).
	arith   sched.Arith
	latents sched.Vec // [B, 4, lh, lw]
	// 4-channel inpainting's blend: the mask at latent resolution repeated over
	// the 4 channels, the init image's latents and the initial noise.
	blendMask, imageLatents, noise sched.Vec
	// 9-channel inpainting's extra UNet input channels.
	maskInput          *tensor.Tensor // [B, 1, lh, lw]
	maskedImageLatents *tensor.Tensor // [B, 4, lh, lw]
	warnings           []string
	initImage          []float32 // [3, h, w] in [-1, 1]
	pixelMask          []float32 // [1, h, w]
}

func (r *run) release() {
	r.context.Release()
	r.pooled.Release()
	r.timeIDs.Release()
	r.maskInput.Release()
	r.maskedImageLatents.Release()
	if r.sched != nil {
		r.sched.SetArith(nil) // frees what the scheduler keeps between steps (histories, saved samples)
	}
	if r.arith != nil {
		for _, v := range []sched.Vec{r.latents, r.blendMask, r.imageLatents, r.noise} {
			if v != nil {
				r.arith.Free(v)
			}
		}
	}
}

// scaled returns v·s as a new Vec.
func (r *run) scaled(v sched.Vec, s float32) (sched.Vec, error) {
	return r.arith.Eval(sched.V(v).Mul(sched.C(s)))
}

// upload puts host values where the latents live.
func (r *run) upload(v []float32) (sched.Vec, error) { return r.arith.FromHost(v) }

// latentTensor returns v as a tensor of the given shape: a view of the device
// latents, or an upload of host ones. The caller releases it.
func (r *run) latentTensor(p *Pipeline, v sched.Vec, shape ...int) (*tensor.Tensor, error) {
	if h, ok := v.(sched.HostVec); ok {
		return tensor.FromFloat32(p.backend, h, shape...)
	}
	d, ok := v.(*deviceVec)
	if !ok || d.t == nil {
		return nil, fmt.Errorf("diffusion: latents %T are not on %s", v, p.backend.Name())
	}
	return d.t.Reshape(shape...)
}

// latentVec returns t's elements as a Vec where the latents live: a flat view
// on the device (t stays the caller's to release), a download on the host.
func (r *run) latentVec(t *tensor.Tensor) (sched.Vec, error) {
	if _, ok := r.arith.(sched.HostArith); ok {
		v, err := t.Float32s()
		return sched.HostVec(v), err
	}
	flat, err := t.Reshape(t.Numel())
	if err != nil {
		return nil, err
	}
	return &deviceVec{flat}, nil
}

// halves splits a Vec of 2n elements into views of its two halves.
func (r *run) halves(v sched.Vec) (sched.Vec, sched.Vec, error) {
	n := v.Len() / 2
	if h, ok := v.(sched.HostVec); ok {
		return h[:n], h[n:], nil
	}
	t := v.(*deviceVec).t
	a, err := t.Narrow(0, 0, n)
	if err != nil {
		return nil, nil, err
	}
	b, err := t.Narrow(0, n, n)
	if err != nil {
		a.Release()
		return nil, nil, err
	}
	return &deviceVec{a}, &deviceVec{b}, nil
}

func (p *Pipeline) plan(req Request) (*run, error) {
	r := &run{req: req, batch: max(req.Batch, 1)}
	if req.Generator == nil {
		return nil, errors.New("diffusion: the request has no generator (see NewGenerator)")
	}
	if req.Steps < 1 {
		return nil, fmt.Errorf("diffusion: steps is %d; expected at least 1", req.Steps)
	}
	if math.IsNaN(req.Guidance) || math.IsInf(req.Guidance, 0) || req.Guidance < 0 {
		return nil, fmt.Errorf("diffusion: guidance is %v; expected a finite number >= 0", req.Guidance)
	}
	if req.Batch < 0 || req.Batch > 64 {
		return nil, fmt.Errorf("diffusion: batch is %d; expected 1 to 64", req.Batch)
	}
	r.cfg = req.Guidance > 1
	switch {
	case req.Mask != nil && req.InitImage == nil:
		return nil, errors.New("diffusion: a mask needs an init image")
	case req.Mask != nil:
		r.mode = inpaint
	case req.InitImage != nil:
		r.mode = imageToImage
	}
	if p.Model.Inpaint && r.mode != inpaint {
		return nil, errors.New("diffusion: this is an inpainting model: give an init image and a mask")
	}
	strength := req.Strength
	if strength == 0 {
		strength = 0.8
		if r.mode == inpaint {
			strength = 1
		}
	}
	if r.mode != textToImage && !(strength > 0 && strength <= 1) {
		return nil, fmt.Errorf("diffusion: strength is %v; expected a value in (0, 1]", strength)
	}
	r.req.Strength = strength

	f := p.VAEScaleFactor()
	w, h := req.Width, req.Height
	if r.mode != textToImage && (w == 0 || h == 0) {
		b := req.InitImage.Bounds()
		if w == 0 {
			w = b.Dx() / f * f
		}
		if h == 0 {
			h = b.Dy() / f * f
		}
	}
	dw, dh := p.DefaultSize()
	if w == 0 {
		w = dw
	}
	if h == 0 {
		h = dh
	}
	if w <= 0 || h <= 0 || w%f != 0 || h%f != 0 {
		return nil, fmt.Errorf("diffusion: size %dx%d is not a multiple of %d (nearest: %dx%d)", w, h, f, max(f, w/f*f), max(f, h/f*f))
	}
	if w > 8192 || h > 8192 {
		return nil, fmt.Errorf("diffusion: size %dx%d exceeds 8192 pixels a side", w, h)
	}
	r.width, r.height, r.lw, r.lh = w, h, w/f, h/f

	var err error
	cfgJSON := p.Model.SchedulerConfig
	if req.SchedulerConfig != nil {
		cfgJSON = req.SchedulerConfig
	}
	if r.sched, err = sched.FromName(req.Scheduler, cfgJSON); err != nil {
		return nil, fmt.Errorf("diffusion: %w", err)
	}
	r.arith = arithFor(p.backend)
	if p.deviceLatents {
		r.arith = deviceArith{p.backend}
	}
	r.sched.SetArith(r.arith)
	if req.Eta != 0 {
		es, ok := r.sched.(sched.EtaScheduler)
		if !ok {
			return nil, fmt.Errorf("diffusion: eta is set but %s takes none", r.sched.Class())
		}
		if err := es.SetEta(req.Eta); err != nil {
			return nil, fmt.Errorf("diffusion: %w", err)
		}
	}
	if r.mode == textToImage {
		if err = r.sched.SetTimesteps(req.Steps); err == nil {
			r.timesteps = r.sched.Timesteps()
		}
	} else {
		r.timesteps, err = sched.SetTimestepsStrength(r.sched, req.Steps, strength)
	}
	if err != nil {
		return nil, fmt.Errorf("diffusion: %w", err)
	}
	if r.mode != textToImage {
		r.initImage = imageToLatentInput(req.InitImage, w, h)
	}
	if r.mode == inpaint {
		r.pixelMask = maskToInput(req.Mask, w, h)
	}
	return r, nil
}

func strOr(s *string, def string) string {
	if s != nil {
		return *s
	}
	return def
}

// encodePrompts builds the text conditioning: [negatives, positives] with
// guidance, each repeated per image.
func (r *run) encodePrompts(p *Pipeline) error {
	req := r.req
	opts := textcond.Options{ClipSkip: req.ClipSkip, Plain: req.PlainPrompt}
	xl := p.Model.Family == model.SDXL
	pos := textcond.Texts{req.Prompt}
	if xl {
		pos = append(pos, strOr(req.Prompt2, req.Prompt))
	}
	var posRes, negRes *textcond.Result
	var err error
	zeroNegative := xl && req.NegativePrompt == nil && p.Model.Index.ForceZerosForEmptyPrompt
	switch {
	case !r.cfg || zeroNegative:
		posRes, err = p.cond.EncodeTexts(pos, opts)
	default:
		negText := strOr(req.NegativePrompt, "")
		neg := textcond.Texts{negText}
		if xl {
			neg = append(neg, strOr(req.NegativePrompt2, negText))
		}
		posRes, negRes, err = p.cond.EncodePair(pos, neg, opts)
	}
	if err != nil {
		return err
	}
	defer posRes.Release()
	defer negRes.Release()
	if posRes.Truncated || (negRes != nil && negRes.Truncated) {
		r.warnings = append(r.warnings, "the prompt is longer than the text encoder's 77 tokens and was truncated (--plain-prompt); without it, long prompts are encoded in chunks")
	}
	if r.cfg && negRes == nil {
		// SDXL's zero negative conditioning.
		negRes = &textcond.Result{}
		if negRes.Context, err = tensor.Zeros(p.backend, tensor.F32, posRes.Context.Shape()...); err != nil {
			return err
		}
		if negRes.Pooled, err = tensor.Zeros(p.backend, tensor.F32, posRes.Pooled.Shape()...); err != nil {
			return err
		}
	}
	stack := func(neg, pos *tensor.Tensor) (*tensor.Tensor, error) {
		var parts []*tensor.Tensor
		if r.cfg {
			for range r.batch {
				parts = append(parts, neg)
			}
		}
		for range r.batch {
			parts = append(parts, pos)
		}
		return tensor.Concat(0, parts...)
	}
	var negCtx, negPooled *tensor.Tensor
	if negRes != nil {
		negCtx, negPooled = negRes.Context, negRes.Pooled
	}
	if r.context, err = stack(negCtx, posRes.Context); err != nil {
		return err
	}
	if xl {
		if r.pooled, err = stack(negPooled, posRes.Pooled); err != nil {
			return err
		}
		orig, target := req.OriginalSize, req.TargetSize
		if orig == (image.Point{}) {
			orig = image.Pt(r.width, r.height)
		}
		if target == (image.Point{}) {
			target = image.Pt(r.width, r.height)
		}
		ids := []float32{float32(orig.Y), float32(orig.X), float32(req.CropTopLeft.Y), float32(req.CropTopLeft.X), float32(target.Y), float32(target.X)}
		n := r.batch
		if r.cfg {
			n *= 2
		}
		all := make([]float32, 0, 6*n)
		for range n {
			all = append(all, ids...)
		}
		if r.timeIDs, err = tensor.FromFloat32(p.backend, all, n, 6); err != nil {
			return err
		}
	}
	return nil
}

// encodeImage encodes [B, 3, h, w] pixels and samples the latent distribution
// with the generator (diffusers' latent_dist.sample(generator)), times the
// scaling factor.
func (r *run) encodeImage(p *Pipeline, pixels []float32) ([]float32, error) {
	defer p.upcastVAE()()
	x, err := tensor.FromFloat32(p.backend, pixels, 1, 3, r.height, r.width)
	if err != nil {
		return nil, err
	}
	defer x.Release()
	mean, logvar, err := p.vae.Encode(x)
	if err != nil {
		return nil, err
	}
	defer mean.Release()
	defer logvar.Release()
	m, err := mean.Float32s()
	if err != nil {
		return nil, err
	}
	lv, err := logvar.Float32s()
	if err != nil {
		return nil, err
	}
	eps := r.req.Generator.Randn(len(m))
	sf, shift := float32(p.Model.VAE.ScalingFactor), float32(p.Model.VAE.ShiftFactor)
	out := make([]float32, len(m))
	for i := range m {
		std := float32(math.Exp(float64(0.5 * lv[i])))
		out[i] = ((m[i] + std*eps[i]) - shift) * sf
	}
	return out, nil
}

// repeat returns v repeated n times (one copy per image of the batch).
func repeat(v []float32, n int) []float32 {
	out := make([]float32, 0, n*len(v))
	for range n {
		out = append(out, v...)
	}
	return out
}

func (r *run) prepareLatents(p *Pipeline) error {
	n := r.batch * 4 * r.lh * r.lw
	gen := r.req.Generator
	var err error
	switch r.mode {
	case textToImage:
		noise, err := r.upload(gen.Randn(n))
		if err != nil {
			return err
		}
		defer r.arith.Free(noise)
		r.latents, err = r.scaled(noise, float32(r.sched.InitNoiseSigma()))
		return err
	case imageToImage:
		init, err := r.encodeImage(p, r.initImage)
		if err != nil {
			return err
		}
		x0, err := r.upload(repeat(init, r.batch))
		if err != nil {
			return err
		}
		defer r.arith.Free(x0)
		noise, err := r.upload(gen.Randn(n))
		if err != nil {
			return err
		}
		defer r.arith.Free(noise)
		r.latents, err = r.sched.AddNoiseVec(x0, noise, r.timesteps[0])
		return err
	}
	// Inpainting, in diffusers' order of draws: the image latents when needed,
	// the noise, then the masked image's latents for 9-channel models.
	nine := p.Model.UNet.InChannels == 9
	maxStrength := r.req.Strength == 1
	if !nine || !maxStrength {
		init, err := r.encodeImage(p, r.initImage)
		if err != nil {
			return err
		}
		if r.imageLatents, err = r.upload(repeat(init, r.batch)); err != nil {
			return err
		}
	}
	if r.noise, err = r.upload(gen.Randn(n)); err != nil {
		return err
	}
	if maxStrength {
		r.latents, err = r.scaled(r.noise, float32(r.sched.InitNoiseSigma()))
	} else {
		r.latents, err = r.sched.AddNoiseVec(r.imageLatents, r.noise, r.timesteps[0])
	}
	if err != nil {
		return err
	}
	// The mask at latent resolution (nearest), and the masked image.
	m, err := tensor.FromFloat32(p.backend, r.pixelMask, 1, 1, r.height, r.width)
	if err != nil {
		return err
	}
	defer m.Release()
	small, err := tensor.ResizeNearest(m, r.lh, r.lw)
	if err != nil {
		return err
	}
	defer small.Release()
	sm, err := small.Float32s()
	if err != nil {
		return err
	}
	if !nine {
		// The blend's mask, one copy per latent channel.
		blend := make([]float32, 0, n)
		for range r.batch * 4 {
			blend = append(blend, sm...)
		}
		r.blendMask, err = r.upload(blend)
		return err
	}
	if r.maskInput, err = tensor.FromFloat32(p.backend, repeat(sm, r.batch), r.batch, 1, r.lh, r.lw); err != nil {
		return err
	}
	hw := r.height * r.width
	masked := make([]float32, len(r.initImage))
	for c := range 3 {
		for i := range hw {
			if r.pixelMask[i] < 0.5 {
				masked[c*hw+i] = r.initImage[c*hw+i]
			}
		}
	}
	mlat, err := r.encodeImage(p, masked)
	if err != nil {
		return err
	}
	r.maskedImageLatents, err = tensor.FromFloat32(p.backend, repeat(mlat, r.batch), r.batch, 4, r.lh, r.lw)
	return err
}

// modelInput assembles the UNet's sample for one step: the scaled latents (and
// for 9-channel inpainting the mask and masked-image latents), twice with
// guidance.
func (r *run) modelInput(p *Pipeline, scaled sched.Vec) (*tensor.Tensor, error) {
	x, err := r.latentTensor(p, scaled, r.batch, 4, r.lh, r.lw)
	if err != nil {
		return nil, err
	}
	if p.Model.UNet.InChannels == 9 {
		all, err := tensor.Concat(1, x, r.maskInput, r.maskedImageLatents)
		x.Release()
		if err != nil {
			return nil, err
		}
		x = all
	}
	if r.cfg {
		both, err := tensor.Concat(0, x, x)
		x.Release()
		if err != nil {
			return nil, err
		}
		x = both
	}
	return x, nil
}

func (r *run) denoise(ctx context.Context, p *Pipeline) error {
	gen := r.req.Generator
	noise := sched.NoiseFunc(gen.Randn)
	n := r.batch
	if r.cfg {
		n *= 2
	}
	for i, t := range r.timesteps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.step(p, i, t, n, noise); err != nil {
			return fmt.Errorf("diffusion: step %d: %w", i, err)
		}
		if r.mode == inpaint && p.Model.UNet.InChannels == 4 {
			if err := r.blendKnown(i); err != nil {
				return err
			}
		}
		if r.req.Progress != nil {
			lat, err := r.latentTensor(p, r.latents, r.batch, 4, r.lh, r.lw)
			if err != nil {
				return err
			}
			r.req.Progress(Progress{Step: i + 1, Steps: len(r.timesteps), Latents: lat})
			lat.Release()
		}
	}
	return nil
}

// step runs the UNet on the latents at timestep t (n samples: twice the batch
// with guidance), guides its prediction and advances the scheduler.
func (r *run) step(p *Pipeline, i int, t float64, n int, noise sched.Noise) error {
	scaled, err := r.sched.ScaleModelInputVec(r.latents, t)
	if err != nil {
		return err
	}
	x, err := r.modelInput(p, scaled)
	r.arith.Free(scaled)
	if err != nil {
		return err
	}
	ts := make([]float32, n)
	for k := range ts {
		ts[k] = float32(t)
	}
	out, err := p.unet.Forward(unet.Input{Sample: x, Timestep: ts, Context: r.context, TextEmbeds: r.pooled, TimeIDs: r.timeIDs}, nil)
	x.Release()
	if err != nil {
		return err
	}
	pred, err := r.latentVec(out)
	out.Release()
	if err != nil {
		return err
	}
	if r.cfg {
		uncond, text, err := r.halves(pred)
		if err != nil {
			r.arith.Free(pred)
			return err
		}
		// uncond + g·(text − uncond), as diffusers writes it.
		guided, err := r.arith.Eval(sched.V(uncond).Add(sched.C(float32(r.req.Guidance)).Mul(sched.V(text).Sub(sched.V(uncond)))))
		r.arith.Free(uncond)
		r.arith.Free(text)
		r.arith.Free(pred)
		if err != nil {
			return err
		}
		pred = guided
	}
	next, err := r.sched.StepVec(pred, t, r.latents, noise)
	r.arith.Free(pred)
	if err != nil {
		return err
	}
	r.arith.Free(r.latents)
	r.latents = next
	return nil
}

// blendKnown keeps the unmasked region of a 4-channel inpainting run on the
// init image, noised to the next step's level, as diffusers does.
func (r *run) blendKnown(i int) error {
	proper := r.imageLatents
	if i < len(r.timesteps)-1 {
		var err error
		if proper, err = r.sched.AddNoiseVec(r.imageLatents, r.noise, r.timesteps[i+1]); err != nil {
			return err
		}
		defer r.arith.Free(proper)
	}
	// (1 − m)·proper + m·latents
	m := sched.V(r.blendMask)
	blended, err := r.arith.Eval(sched.C(1).Sub(m).Mul(sched.V(proper)).Add(m.Mul(sched.V(r.latents))))
	if err != nil {
		return err
	}
	r.arith.Free(r.latents)
	r.latents = blended
	return nil
}

func (r *run) decode(p *Pipeline) ([]*image.NRGBA, error) {
	defer p.upcastVAE()()
	sf, shift := float32(p.Model.VAE.ScalingFactor), float32(p.Model.VAE.ShiftFactor)
	zv, err := r.arith.Eval(sched.V(r.latents).Div(sched.C(sf)).Add(sched.C(shift)))
	if err != nil {
		return nil, err
	}
	defer r.arith.Free(zv)
	z, err := r.latentTensor(p, zv, r.batch, 4, r.lh, r.lw)
	if err != nil {
		return nil, err
	}
	defer z.Release()
	var imgs []*image.NRGBA
	for b := range r.batch {
		// One image at a time bounds the decoder's memory (diffusers' slicing).
		zt, err := z.Narrow(0, b, 1)
		if err != nil {
			return nil, err
		}
		var dec *tensor.Tensor
		if tile := r.req.VAETiling; tile == TilingOn || (tile == TilingAuto && r.width*r.height > tilingThreshold) {
			dec, err = p.vae.DecodeTiled(zt, p.vae.DefaultTiling())
		} else {
			dec, err = p.vae.Decode(zt)
		}
		zt.Release()
		if err != nil {
			return nil, err
		}
		v, err := dec.Float32s()
		dec.Release()
		if err != nil {
			return nil, err
		}
		img, err := toImages(v, 1, r.height, r.width)
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, img...)
	}
	return imgs, nil
}

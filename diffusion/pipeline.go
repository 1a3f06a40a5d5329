// Package diffusion runs Stable Diffusion: it loads a model (a diffusers folder,
// a single-file checkpoint, or a Hugging Face repository) and generates images
// from text, from an image, or into a masked region, following diffusers'
// pipelines step for step so that a seed gives the image diffusers gives.
//
// The parts live in sub-packages: model (loading), tokenizer, clip and
// textcond (prompts), unet and vae (the networks), sched (schedulers), rng
// (torch-compatible random numbers).
package diffusion

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"

	"github.com/sdgo/sdgo/diffusion/clip"
	"github.com/sdgo/sdgo/diffusion/hub"
	"github.com/sdgo/sdgo/diffusion/lora"
	"github.com/sdgo/sdgo/diffusion/model"
	"github.com/sdgo/sdgo/diffusion/rng"
	"github.com/sdgo/sdgo/diffusion/textcond"
	"github.com/sdgo/sdgo/diffusion/tokenizer"
	"github.com/sdgo/sdgo/diffusion/unet"
	"github.com/sdgo/sdgo/diffusion/vae"
	"github.com/sdgo/sdgo/diffusion/weights"
	"github.com/sdgo/sdgo/nn"
	"github.com/sdgo/sdgo/tensor"
)

// Options configure Load.
type Options struct {
	// Variant, Config and PredictionType are model.Options': the weight variant
	// of a diffusers folder ("fp16"), a diffusers folder giving a single file's
	// architecture, and an override of what the UNet predicts.
	Variant, Config, PredictionType string
	// Backend runs the networks; nil is the CPU.
	Backend tensor.Backend
	// Attention selects the attention kernel (flash by default, or sliced) and
	// its block sizes, for every attention of the UNet.
	Attention tensor.AttentionParams
	// Hub downloads repository ids; nil uses hub.NewClientFromEnv.
	Hub *hub.Client
	// LoRAs are attached to the UNet and text encoders once they are loaded
	// (see Pipeline.ApplyLoRAs).
	LoRAs []lora.Adapter
	// Offload drops each network's weights from resident memory once its part
	// of a generation is done: the text encoders after the prompts are encoded,
	// the UNet after the last step, the VAE after decoding. Peak memory is then
	// the largest network and its activations rather than all networks at
	// once (SD 1.5 at 512x512: the 1.7 GB UNet, not 2.1 GB of weights), as
	// stable-diffusion.cpp's CLI frees each model after use. The pipeline stays
	// whole: the weights are used in place from the model's memory-mapped
	// safetensors files (F32, F16 and BF16 on the CPU), so the pages come back
	// from the page cache, or the file, when the network next runs; weights
	// that had to be copied (pickle checkpoints, dtype conversions) stay
	// resident.
	Offload bool
}

// Pipeline is a loaded model, ready to generate. Its methods are not safe for
// concurrent use: run one Generate at a time per Pipeline.
type Pipeline struct {
	Model   *model.Model
	backend tensor.Backend
	unet    *unet.Model
	vae     *vae.Model
	texts   []*clip.TextModel
	cond    *textcond.Encoder
	// The weights each network loaded, for Options.Offload.
	offload               bool
	unetParams, vaeParams *weights.Tracked
	textParams            []*weights.Tracked
	// For ApplyLoRAs: the networks' layers by name, and the LoRAs attached
	// to them now (nil for none).
	loraTarget *lora.Target
	loras      *lora.Set
	// deviceLatents keeps the latents in tensors on the CPU too (tests of the
	// device path).
	deviceLatents bool
}

// Load loads a model from a diffusers folder, a single-file checkpoint, or a
// Hugging Face repository id ("org/name", "org/name@revision"), which is
// downloaded into (or found in) the shared Hugging Face cache: see package hub
// for the environment variables it honours (HF_HOME, HF_TOKEN,
// HF_HUB_OFFLINE, ...). Options.Hub replaces that client.
func Load(ctx context.Context, path string, opts Options) (*Pipeline, error) {
	if hub.IsRepoID(path) {
		c := opts.Hub
		if c == nil {
			var err error
			if c, err = hub.NewClientFromEnv(); err != nil {
				return nil, err
			}
		}
		dir, err := c.LocalPath(ctx, path, &hub.Options{Variant: opts.Variant})
		if err != nil {
			return nil, err
		}
		path = dir
	}
	m, err := model.Load(path, model.Options{Variant: opts.Variant, Config: opts.Config, PredictionType: opts.PredictionType})
	if err != nil {
		return nil, err
	}
	p, err := build(m, opts)
	if err != nil {
		m.Close()
		return nil, err
	}
	if len(opts.LoRAs) > 0 {
		if err := p.ApplyLoRAs(opts.LoRAs...); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

func build(m *model.Model, opts Options) (*Pipeline, error) {
	var fam textcond.Family
	switch m.Family {
	case model.SD1:
		fam = textcond.SD1
	case model.SD2:
		fam = textcond.SD2
	case model.SDXL:
		fam = textcond.SDXL
	default:
		return nil, fmt.Errorf("diffusion: %s models are not supported by the pipelines yet", m.Family)
	}
	b := opts.Backend
	if b == nil {
		b = tensor.NewCPU()
	}
	p := &Pipeline{Model: m, backend: b, offload: opts.Offload}
	p.unetParams = weights.Track(m.UNetWeights, b)
	p.vaeParams = weights.Track(m.VAEWeights, b)
	var err error
	if p.unet, err = unet.Load(p.unetParams, m.UNet, unet.Options{Attention: opts.Attention}); err != nil {
		return nil, err
	}
	// LoRAs attach to the UNet's and text encoders' layers (ApplyLoRAs).
	p.loraTarget = &lora.Target{Family: m.Family, UNet: m.UNet, Components: map[string]iter.Seq2[string, nn.Adaptable]{lora.UNet: p.unet.Layers()}}
	if p.vae, err = vae.Load(p.vaeParams, m.VAE); err != nil {
		p.Close()
		return nil, err
	}
	var toks []*tokenizer.Tokenizer
	for i, te := range m.TextEncoders {
		tp := weights.Track(te.Weights, b)
		p.textParams = append(p.textParams, tp)
		tm, err := clip.Load(tp, te.Config)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("diffusion: %s: %w", te.Name, err)
		}
		p.texts = append(p.texts, tm)
		p.loraTarget.Components[te.Name] = tm.Layers()
		tok, err := loadTokenizer(te, fam, i)
		if err != nil {
			p.Close()
			return nil, err
		}
		toks = append(toks, tok)
	}
	if p.cond, err = textcond.New(fam, toks, p.texts); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// loadTokenizer reads a text encoder's tokenizer folder, or takes the built-in
// CLIP vocabulary (single files) padded as the family's reference tokenizer is:
// with <|endoftext|> for CLIP-L, with "!" for the OpenCLIP encoders.
func loadTokenizer(te model.TextEncoder, fam textcond.Family, i int) (*tokenizer.Tokenizer, error) {
	if te.Tokenizer != "" {
		t, err := tokenizer.Load(te.Tokenizer)
		if err != nil {
			return nil, fmt.Errorf("diffusion: %s tokenizer: %w", te.Name, err)
		}
		return t, nil
	}
	t := tokenizer.Builtin()
	if fam == textcond.SD2 || (fam == textcond.SDXL && i == 1) {
		return t.WithPad("!")
	}
	return t, nil
}

// ApplyLoRAs attaches LoRAs to the UNet and the text encoders, each at its
// scale, replacing the set attached before; RemoveLoRAs (or a call with none)
// detaches them. The LoRAs are applied at run time, as diffusers applies
// unmerged adapters (set_adapters): every layer a LoRA updates computes
// W x + b + Σ scale x alpha/rank x up(down(x)), with its weight W as loaded (an
// F16 weight stays F16, widened in the kernel) and the low-rank branch in
// float32, which reproduces diffusers to float32 rounding. The model's weights
// are neither copied nor written: the LoRAs cost the memory of their factors
// in float32 (see LoRAStats) and a few percent more time per UNet call (the
// low-rank products and one add per updated layer), and removing them gives
// back the model's own results bit for bit.
//
// Every adapter is checked against the model first (the family it is for,
// each module matching a layer of the right shape, finite scales, finite
// values): on an error the pipeline is left as it was, with nothing half
// attached. Asking again for the set attached now (the same *lora.LoRA values
// at the same scales, in the same order) does nothing, so a server may call it
// before every request.
func (p *Pipeline) ApplyLoRAs(adapters ...lora.Adapter) error {
	if p.unet == nil {
		return errClosed
	}
	if slices.Equal(adapters, p.LoRAs()) {
		return nil
	}
	var next *lora.Set
	if len(adapters) > 0 {
		var err error
		if next, err = lora.Prepare(p.loraTarget, adapters); err != nil {
			return fmt.Errorf("diffusion: %w", err)
		}
	}
	p.loras.Detach()
	if err := next.Attach(); err != nil {
		next.Release()
		if rerr := p.loras.Attach(); rerr != nil {
			return fmt.Errorf("diffusion: applying LoRAs: %w (and putting back the LoRAs before: %v)", err, rerr)
		}
		return fmt.Errorf("diffusion: applying LoRAs: %w", err)
	}
	p.loras.Release()
	p.loras = next
	return nil
}

// RemoveLoRAs detaches the LoRAs: the networks compute what the model
// computes on its own, bit for bit.
func (p *Pipeline) RemoveLoRAs() error { return p.ApplyLoRAs() }

// LoRAs returns the adapters attached to the pipeline now.
func (p *Pipeline) LoRAs() []lora.Adapter { return p.loras.Adapters() }

// LoRAStats describes the LoRAs attached now (zero without LoRAs): the
// modules, the layers they update and the memory of their factors.
func (p *Pipeline) LoRAStats() lora.Stats { return p.loras.Stats() }

// Close releases the networks and the model's files.
func (p *Pipeline) Close() error {
	p.loras.Release()
	p.loras, p.loraTarget = nil, nil
	if p.unet != nil {
		p.unet.Release()
	}
	if p.vae != nil {
		p.vae.Release()
	}
	for _, t := range p.texts {
		t.Release()
	}
	p.unet, p.vae, p.texts = nil, nil, nil
	p.unetParams, p.vaeParams, p.textParams = nil, nil, nil
	if p.Model == nil {
		return nil
	}
	err := p.Model.Close()
	p.Model = nil
	return err
}

// upcastVAE runs the VAE in full precision on a backend in a reduced-precision
// mode when its config asks for it (force_upcast: the SDXL VAE overflows
// F16), as diffusers does; call the result when the VAE is done.
func (p *Pipeline) upcastVAE() (restore func()) {
	if !p.Model.VAE.ForceUpcast {
		return func() {}
	}
	return tensor.FullPrecision(p.backend)
}

// evictAfter drops the weights of a network whose part of the generation is
// done, when the pipeline offloads (Options.Offload).
func (p *Pipeline) evictAfter(params ...*weights.Tracked) {
	if !p.offload {
		return
	}
	for _, tp := range params {
		if tp != nil {
			tp.Evict()
		}
	}
}

// VAEScaleFactor is the side of the pixel square one latent covers (8).
func (p *Pipeline) VAEScaleFactor() int { return p.Model.VAE.DownscaleFactor() }

// DefaultSize is the model's native image size in pixels.
func (p *Pipeline) DefaultSize() (width, height int) {
	h, w := p.Model.UNet.Sample()
	f := p.VAEScaleFactor()
	return w * f, h * f
}

var errClosed = errors.New("diffusion: pipeline is closed")

// NewGenerator returns torch's generator of that kind ("cpu", diffusers'
// default, or "cuda", the Philox stream A1111-style UIs use) seeded with seed.
func NewGenerator(kind string, seed uint64) (Generator, error) {
	g, err := rng.New(kind, seed)
	if err != nil {
		return nil, fmt.Errorf("diffusion: %w", err)
	}
	return g, nil
}

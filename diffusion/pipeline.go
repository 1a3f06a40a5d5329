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
	// LoRAs are merged into the UNet and text encoders once they are loaded
	// (see Pipeline.ApplyLoRAs).
	LoRAs []lora.Adapter
	// LoRAFloat32 holds the weights LoRAs change in float32 rather than in
	// the dtype of the weights they replace (see lora.Options.Float32): what
	// diffusers' unmerged adapters compute, to float32 rounding, at twice the
	// memory for those weights.
	LoRAFloat32 bool
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
	// For ApplyLoRAs: the networks' original weights by name, the weights
	// the LoRAs merged now change, and what rebuilding the networks needs.
	loraTarget  *lora.Target
	loras       *lora.Merged
	loraFloat32 bool
	attention   tensor.AttentionParams
	family      textcond.Family
	toks        []*tokenizer.Tokenizer
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
	p := &Pipeline{Model: m, backend: b, loraFloat32: opts.LoRAFloat32, attention: opts.Attention, family: fam}
	// The UNet's and text encoders' weights are recorded by name as they
	// load: LoRAs are merged from them (ApplyLoRAs).
	p.loraTarget = &lora.Target{Family: m.Family, UNet: m.UNet, Components: map[string]*lora.Weights{}}
	record := func(component string, src weights.Source) nn.Params {
		params, w := lora.Record(weights.Params(src, b))
		p.loraTarget.Components[component] = w
		return params
	}
	var err error
	if p.unet, err = unet.Load(record(lora.UNet, m.UNetWeights), m.UNet, unet.Options{Attention: opts.Attention}); err != nil {
		p.loraTarget.Components[lora.UNet].Release()
		return nil, err
	}
	if p.vae, err = vae.Load(weights.Params(m.VAEWeights, b), m.VAE); err != nil {
		p.Close()
		return nil, err
	}
	var toks []*tokenizer.Tokenizer
	for i, te := range m.TextEncoders {
		tm, err := clip.Load(record(te.Name, te.Weights), te.Config)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("diffusion: %s: %w", te.Name, err)
		}
		p.texts = append(p.texts, tm)
		tok, err := loadTokenizer(te, fam, i)
		if err != nil {
			p.Close()
			return nil, err
		}
		toks = append(toks, tok)
	}
	p.toks = toks
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

// ApplyLoRAs merges LoRAs into the UNet and the text encoders, each at its
// scale, replacing the set merged before; RemoveLoRAs (or a call with none)
// goes back to the model's own weights. Each weight a LoRA changes becomes
// W + Σ scale x alpha/rank x up @ down, computed in float32 and stored in the
// weight's dtype (an F16 weight is rounded to F16, as fusing LoRAs into an F16
// model rounds it) or, with Options.LoRAFloat32, in float32, which reproduces
// diffusers' unmerged adapters to float32 rounding. Generating then costs
// what it costs without LoRAs.
//
// The model's own weights are never written to: the networks are rebuilt over
// the merged weights and the unchanged ones (shared, not copied), so removing
// or replacing the LoRAs restores the original weights exactly, without
// reading the model again. While LoRAs are merged, the weights they change
// take their memory twice, once as loaded and once merged (three times for F16
// weights with LoRAFloat32); see LoRAStats.
//
// Every adapter is checked against the model first (the family it is for,
// each module matching a layer of the right shape, finite scales, finite
// values): on an error the pipeline is left as it was. Asking again for the
// set merged now (the same *lora.LoRA values at the same scales, in the same
// order) does nothing, so a server may call it before every request.
func (p *Pipeline) ApplyLoRAs(adapters ...lora.Adapter) error {
	if p.unet == nil {
		return errClosed
	}
	if slices.Equal(adapters, p.LoRAs()) {
		return nil
	}
	var merged *lora.Merged
	if len(adapters) > 0 {
		var err error
		if merged, err = lora.Merge(p.loraTarget, adapters, lora.Options{Float32: p.loraFloat32}); err != nil {
			return fmt.Errorf("diffusion: %w", err)
		}
	}
	// Rebuild the networks whose weights change: those the new set changes
	// and those the old set changed.
	rebuild := map[string]bool{}
	for _, m := range []*lora.Merged{p.loras, merged} {
		if m != nil {
			for _, c := range m.Components() {
				rebuild[c] = true
			}
		}
	}
	u, texts := p.unet, slices.Clone(p.texts)
	var built []interface{ Release() }
	fail := func(err error) error {
		for _, n := range built {
			n.Release()
		}
		merged.Release()
		return fmt.Errorf("diffusion: applying LoRAs: %w", err)
	}
	if rebuild[lora.UNet] {
		var err error
		if u, err = unet.Load(p.loraTarget.Params(lora.UNet, merged), p.Model.UNet, unet.Options{Attention: p.attention}); err != nil {
			return fail(err)
		}
		built = append(built, u)
	}
	for i, te := range p.Model.TextEncoders {
		if !rebuild[te.Name] {
			continue
		}
		tm, err := clip.Load(p.loraTarget.Params(te.Name, merged), te.Config)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", te.Name, err))
		}
		texts[i] = tm
		built = append(built, tm)
	}
	cond, err := textcond.New(p.family, p.toks, texts)
	if err != nil {
		return fail(err)
	}
	if u != p.unet {
		p.unet.Release()
	}
	for i, t := range p.texts {
		if texts[i] != t {
			t.Release()
		}
	}
	p.loras.Release()
	p.unet, p.texts, p.cond, p.loras = u, texts, cond, merged
	return nil
}

// RemoveLoRAs goes back to the model's own weights, exactly as loaded.
func (p *Pipeline) RemoveLoRAs() error { return p.ApplyLoRAs() }

// LoRAs returns the adapters merged into the pipeline now.
func (p *Pipeline) LoRAs() []lora.Adapter {
	if p.loras == nil {
		return nil
	}
	return p.loras.Adapters()
}

// LoRAStats describes the weights the merged LoRAs change (zero without LoRAs).
func (p *Pipeline) LoRAStats() lora.Stats {
	if p.loras == nil {
		return lora.Stats{}
	}
	return p.loras.Stats()
}

// Close releases the networks and the model's files.
func (p *Pipeline) Close() error {
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
	p.loras.Release()
	if p.loraTarget != nil {
		for _, w := range p.loraTarget.Components {
			w.Release()
		}
	}
	p.loras, p.loraTarget = nil, nil
	if p.Model == nil {
		return nil
	}
	err := p.Model.Close()
	p.Model = nil
	return err
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

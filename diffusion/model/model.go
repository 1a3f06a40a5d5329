// Package model loads Stable Diffusion models (SD 1.x, SD 2.x, SDXL base and
// refiner, and their inpainting variants) in the layouts they are shared in,
// and presents every layout the same way: the architecture as diffusers'
// configs (unet.Config, vae.Config, clip.Config), and each component's weights
// as a weights.Source under exactly the tensor names of a diffusers folder.
//
// Layouts:
//
//   - diffusers folders (as on the Hub): model_index.json, each component's
//     config.json, scheduler/scheduler_config.json, tokenizer folders, and
//     weights as diffusion_pytorch_model.safetensors / model.safetensors, a
//     variant (model.fp16.safetensors, chosen with Options.Variant), sharded
//     (*.safetensors.index.json), or PyTorch .bin files (read by package
//     pickle, or Options.OpenPickle). Text encoders written by transformers 5,
//     without the text_model. prefix, are presented with it.
//   - single-file checkpoints (.safetensors; .ckpt through package pickle)
//     in the original CompVis/Stability layout: the family is recognised from
//     the keys and shapes, keys are mapped to diffusers names (fused OpenCLIP
//     attention split, VAE attention convolutions reshaped, OpenCLIP's
//     text_projection transposed), and the architecture is the family's
//     standard one, or that of a diffusers folder given as Options.Config (as
//     diffusers' from_single_file(..., config=...)).
//
// Nothing is read from the weight files but their headers until a tensor is
// loaded.
package model

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sdgo/sdgo/diffusion/clip"
	"github.com/sdgo/sdgo/diffusion/unet"
	"github.com/sdgo/sdgo/diffusion/vae"
	"github.com/sdgo/sdgo/diffusion/weights"
)

// Family is a kind of Stable Diffusion model, which decides its text encoders,
// conditioning and defaults. Inpainting models are the same family with a
// 9-channel UNet input (Model.Inpaint).
type Family string

// The families.
const (
	SD1         Family = "sd1"          // SD 1.x: CLIP ViT-L/14
	SD2         Family = "sd2"          // SD 2.x: OpenCLIP ViT-H/14
	SDXL        Family = "sdxl"         // SDXL base (and Turbo): CLIP ViT-L/14 + OpenCLIP bigG/14
	SDXLRefiner Family = "sdxl-refiner" // SDXL refiner: OpenCLIP bigG/14 only, aesthetic score conditioning
)

// String names the family for people.
func (f Family) String() string {
	switch f {
	case SD1:
		return "SD 1.x"
	case SD2:
		return "SD 2.x"
	case SDXL:
		return "SDXL"
	case SDXLRefiner:
		return "SDXL refiner"
	}
	return string(f)
}

// Layout is how a model was stored.
type Layout string

// The layouts.
const (
	Folder     Layout = "diffusers-folder"
	SingleFile Layout = "single-file"
)

// Prediction types, as diffusers' schedulers spell them.
const (
	Epsilon     = "epsilon"
	VPrediction = "v_prediction"
	Sample      = "sample"
)

// Options control Load.
type Options struct {
	// Variant picks weight files of a variant in a diffusers folder ("fp16" for
	// model.fp16.safetensors). A component without that variant falls back to
	// its plain files, with a note in Model.Notes.
	Variant string
	// Config is a diffusers folder whose configs (model_index.json, each
	// component's config.json, the scheduler config and tokenizers, not its
	// weights) give the architecture of a single-file checkpoint, instead of
	// its family's standard one. It must describe the file's family.
	Config string
	// PredictionType overrides what the model predicts (epsilon, v_prediction
	// or sample). By default a folder's scheduler config decides; for a single
	// file without Config, SD 2.x non-inpainting checkpoints are taken as the
	// 768-v models (v_prediction), as diffusers does (except a .ckpt whose
	// global_step is 875000, SD 2.0 512-base), and all others as epsilon.
	// Weights do not tell 2.x 768-v from 512-base: pass "epsilon" for a
	// 512-base file, which also selects the 512-base UNet config.
	PredictionType string
	// OpenPickle opens PyTorch pickle files (.ckpt, .pt, .pth, .bin) as a
	// weights.Source with the checkpoint's tensor names (the state_dict's
	// keys). nil uses OpenPickle in this package (package pickle's reader).
	OpenPickle func(path string) (weights.Source, error)
}

// TextEncoder is one text encoder and the tokenizer paired with it.
type TextEncoder struct {
	// Name is the component: "text_encoder" or "text_encoder_2".
	Name string
	// Class is transformers' class: CLIPTextModel or CLIPTextModelWithProjection.
	Class   string
	Config  clip.Config
	Weights weights.Source
	// Tokenizer is the folder of its tokenizer ("tokenizer", "tokenizer_2" of a
	// diffusers folder), or "" for the built-in CLIP vocabulary (single files).
	Tokenizer string
}

// Model is a loaded model: its architecture and its weights, not yet read.
// Close it when done.
type Model struct {
	// Path is the folder or file it was loaded from.
	Path   string
	Layout Layout
	// ConfigDir is the diffusers folder that gave the architecture: Path for a
	// folder, Options.Config for a single file given one, "" when the family's
	// standard configs were used.
	ConfigDir string
	Family    Family
	// Inpaint is set for inpainting models (a 9-channel UNet input).
	Inpaint bool
	// Index is the pipeline description (model_index.json; for a single file
	// without Config, the standard one of its family).
	Index ModelIndex

	UNet         unet.Config
	UNetWeights  weights.Source
	VAE          vae.Config
	VAEWeights   weights.Source
	TextEncoders []TextEncoder

	// SchedulerClass is the scheduler's diffusers class ("EulerDiscreteScheduler").
	SchedulerClass string
	// SchedulerConfig is scheduler_config.json as stored, for the scheduler
	// package to parse; for a single file without Config, that of the family's
	// reference repository. When Options.PredictionType overrides the stored
	// prediction_type, the JSON is rewritten (keys sorted; Python's bare
	// Infinity/NaN become strings, which pyjson.Float reads).
	SchedulerConfig []byte
	// PredictionType is what the UNet predicts: epsilon, v_prediction or sample.
	PredictionType string

	// Unused lists the single file's tensors that no component uses: EMA
	// copies, OpenCLIP blocks beyond num_hidden_layers, SD 2.x's unused
	// text_projection, scheduler buffers and the like. Empty for folders.
	Unused []string
	// Notes say what Load chose on the caller's behalf (variant fallbacks,
	// ignored tensors), one sentence each.
	Notes []string

	files map[string][]string // component -> weight files
}

// Part is one component that holds weights.
type Part struct {
	Name    string // the component: "unet", "vae", "text_encoder", ...
	Class   string // its diffusers or transformers class
	Weights weights.Source
	Files   []string // the files its weights are read from
}

// Parts lists the components that hold weights: the UNet, the VAE and the text
// encoders, in that order.
func (m *Model) Parts() []Part {
	parts := []Part{
		{Name: "unet", Class: m.Index.Components["unet"].Class, Weights: m.UNetWeights, Files: m.files["unet"]},
		{Name: "vae", Class: m.Index.Components["vae"].Class, Weights: m.VAEWeights, Files: m.files["vae"]},
	}
	for _, te := range m.TextEncoders {
		parts = append(parts, Part{Name: te.Name, Class: te.Class, Weights: te.Weights, Files: m.files[te.Name]})
	}
	return parts
}

// Close releases the weight files of every component. It is safe to call
// twice.
func (m *Model) Close() error {
	var errs []error
	closeSrc := func(s weights.Source) {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	closeSrc(m.UNetWeights)
	closeSrc(m.VAEWeights)
	for _, te := range m.TextEncoders {
		closeSrc(te.Weights)
	}
	m.UNetWeights, m.VAEWeights = nil, nil
	for i := range m.TextEncoders {
		m.TextEncoders[i].Weights = nil
	}
	return errors.Join(errs...)
}

// ErrUnknownModel is wrapped by the error for a single file that is not a
// Stable Diffusion checkpoint this package recognises.
var ErrUnknownModel = errors.New("not a recognised Stable Diffusion checkpoint")

// Load opens a model: a diffusers folder, or a single-file checkpoint
// (.safetensors, or .ckpt/.pt/.pth through the pickle reader).
func Load(path string, opts Options) (*Model, error) {
	switch opts.PredictionType {
	case "", Epsilon, VPrediction, Sample:
	default:
		return nil, fmt.Errorf("model: prediction type %q (want %s, %s or %s)", opts.PredictionType, Epsilon, VPrediction, Sample)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if st.IsDir() {
		if opts.Config != "" {
			return nil, fmt.Errorf("model: %s is a diffusers folder; Options.Config applies to single files only", path)
		}
		return loadFolder(path, opts)
	}
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".safetensors", ".ckpt", ".pt", ".pth", ".bin":
		return loadSingle(path, opts)
	default:
		return nil, fmt.Errorf("model: %s: unknown file type %q (want a diffusers folder, .safetensors or .ckpt)", path, ext)
	}
}

// isPickle reports whether a weight file is a PyTorch pickle.
func isPickle(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".ckpt", ".pt", ".pth", ".bin":
		return true
	}
	return false
}

// openWeights opens one weights file of either format.
func openWeights(path string, opts Options) (weights.Source, error) {
	if isPickle(path) {
		open := opts.OpenPickle
		if open == nil {
			open = OpenPickle
		}
		return open(path)
	}
	s, err := weights.OpenSafetensors(path)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Package convert writes a loaded Stable Diffusion model (a model.Model, from
// a diffusers folder or a single-file checkpoint) in either layout:
//
//   - ToDiffusers writes a diffusers folder as the Hub holds one:
//     model_index.json, scheduler/scheduler_config.json, unet/ and vae/ with
//     config.json and diffusion_pytorch_model.safetensors, text_encoder[_2]/
//     with config.json and model.safetensors (names under text_model., as the
//     Hub's files have them), and tokenizer[_2]/ folders (copied from the
//     source, or the built-in CLIP vocabulary for a single file).
//   - ToSingleFile writes one .safetensors file in the original layout that the
//     A1111 and ComfyUI world uses (CompVis LDM for SD 1.x/2.x, Stability SGM for
//     SDXL, with OpenCLIP text towers), the exact inverse of what package
//     model's single-file loader maps: VAE mid attention as 1x1 convolutions,
//     OpenCLIP's fused in_proj, text_projection as a bare transposed tensor.
//
// Either may change the dtype of the float weights (Options.DType): F32 or
// BF16 to F16, rounded to nearest even as package tensor rounds, and so on.
//
// Memory stays bounded: tensors are read, converted and written one at a time,
// the safetensors header first (from the tensors' shapes and dtypes) and then
// each tensor's bytes. Output is atomic: a folder is written as DST.tmp-XXXX
// and a file as DST.tmp-XXXX beside DST, renamed to DST only once complete;
// on failure or cancellation the temporary output is removed, so nothing
// half-written is ever found under DST.
package convert

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sdgo/sdgo/diffusion/model"
	"github.com/sdgo/sdgo/diffusion/safetensors"
)

// DType says what becomes of the float weights' dtype.
type DType string

// The dtype choices.
const (
	Keep DType = "keep" // as stored (the default); F64 is written as F32
	F16  DType = "f16"  // float16: F32, BF16 and F64 narrowed, rounding to nearest even
	BF16 DType = "bf16" // bfloat16: F32, F16 and F64 rounded to nearest even
	F32  DType = "f32"  // float32: F16 and BF16 widened exactly
)

// ParseDType reads a dtype as the command line spells it: keep, f16 (or
// fp16, float16), bf16 (bfloat16), f32 (fp32, float32); "" is keep.
func ParseDType(s string) (DType, error) {
	switch strings.ToLower(s) {
	case "", "keep":
		return Keep, nil
	case "f16", "fp16", "float16", "half":
		return F16, nil
	case "bf16", "bfloat16":
		return BF16, nil
	case "f32", "fp32", "float32", "float":
		return F32, nil
	}
	return "", fmt.Errorf("convert: unknown dtype %q (want keep, f16, bf16 or f32)", s)
}

// Options control a conversion.
type Options struct {
	// DType converts the float weights; "" keeps them as stored. Integer
	// tensors are never converted. A finite value beyond the new dtype's range
	// (an F32 weight over float16's 65504, say) fails the conversion, naming
	// the tensor, rather than becoming an infinity.
	DType DType
	// Force replaces an existing DST: for ToDiffusers a diffusers folder (one
	// holding model_index.json) or an empty folder, for ToSingleFile a file.
	// Anything else there is never replaced. The old one is removed only once
	// the new one is complete.
	Force bool
	// Progress, when set, is called after each tensor is written with the
	// number written and the total.
	Progress func(done, total int)
}

// Result describes what a conversion wrote.
type Result struct {
	// Path is DST.
	Path string
	// Files are the weight files written, under their final paths.
	Files []string
	// Tensors is the number of tensors written, Bytes their total size.
	Tensors int
	Bytes   int64
	// Converted counts the tensors whose dtype was changed.
	Converted int
	// DTypes counts the parameters written per dtype ("F16": 859520964).
	DTypes map[safetensors.DType]int64
	// Notes say what the conversion chose or left out, one sentence each.
	Notes []string
}

// ErrExists is wrapped by the error for a DST that exists when Options.Force
// is not set (Force replaces it).
var ErrExists = errors.New("already exists")

func (o *Options) check() (DType, error) {
	return ParseDType(string(o.DType))
}

// checkModel refuses a model without the parts a conversion writes.
func checkModel(m *model.Model) error {
	if m == nil {
		return fmt.Errorf("convert: no model")
	}
	if m.UNetWeights == nil || m.VAEWeights == nil {
		return fmt.Errorf("convert: %s: the model is closed", m.Path)
	}
	for _, te := range m.TextEncoders {
		if te.Weights == nil {
			return fmt.Errorf("convert: %s: the model is closed", m.Path)
		}
	}
	return nil
}

// noteUnused notes the source's tensors that no component uses (a single
// file's EMA copies, training buffers and the like), which are not written.
func noteUnused(m *model.Model, res *Result) {
	switch n := len(m.Unused); n {
	case 0:
	case 1:
		res.Notes = append(res.Notes, fmt.Sprintf("1 tensor of the source that the model does not use is not written: %q", m.Unused[0]))
	default:
		res.Notes = append(res.Notes, fmt.Sprintf("%d tensors of the source that the model does not use are not written, from %q", n, m.Unused[0]))
	}
}

// Package lora reads LoRA files in the layouts people share them in and
// attaches them to a loaded model's layers, which apply them at run time.
//
// Layouts read:
//
//   - kohya-ss / A1111: lora_unet_<module>, lora_te_<module> (SD 1.x/2.x) or
//     lora_te1_/lora_te2_ (SDXL), each with .lora_down.weight, .lora_up.weight
//     and an optional scalar .alpha, with "_" for the module path's dots. UNet
//     modules are named the diffusers way (down_blocks_0_attentions_0_...) or
//     the original LDM/SGM way that SDXL LoRAs use
//     (input_blocks_4_1_transformer_blocks_0_attn1_to_q).
//   - diffusers training scripts: unet.<module>.lora.down/up.weight,
//     text_encoder[_2].text_model.<module>.lora_linear_layer.down/up.weight, and
//     the older attention-processor keys (...attn1.processor.to_q_lora.down.weight).
//   - PEFT: <component>.<module>.lora_A/lora_B.weight.
//
// Linear layers and convolutions are targets: 1x1 convolutions (SD 1.x's
// proj_in/proj_out) with 2-D or 1x1 factors, and k x k convolutions ("LoCon":
// lora_down [rank, in, k, k], lora_up [out, rank, 1, 1], or with a Tucker core
// lora_mid [rank, rank, k, k]). LyCORIS's other variants (LoHa, LoKr, IA3,
// GLoRA, OFT, full diffs) and DoRA are refused with an error naming the variant.
//
// A module's update is delta W = scale x alpha/rank x up @ down, where scale is
// the adapter's multiplier (A1111's <lora:name:scale>, diffusers'
// set_adapters weight) and alpha defaults to rank. It is not merged into W:
// Prepare puts each module's factors on the layer's backend in float32 as an
// nn.LowRank with scale x alpha/rank as its Scale, and Set.Attach hands them
// to the layers, whose Forward adds scale x alpha/rank x up(down(x)) to
// W x + b, as diffusers computes unmerged adapters (set_adapters) and LyCORIS
// its LoCon modules. This way
//
//   - the result is diffusers' to float32 rounding: the F16 weight is widened
//     in the kernel as without LoRAs, and the low-rank branch is float32.
//     Merging instead rounds W + delta W to F16, which moves each changed
//     weight by up to half an F16 ulp and put the fixtures' latents 10 to 70
//     times their tolerance away; merging into float32 copies matched, at
//     twice the memory of every changed weight;
//   - the model's weights are neither copied nor written: detaching restores
//     the model bit for bit, and a set costs only its factors (two LoRAs of
//     rank 8 and 32 on all 560 attention projections of SDXL's UNet: 221 MB of
//     float32 factors, where merged weights took 1822 MB in F16 and 3644 MB in
//     float32);
//   - the price is the low-rank products and one add per adapted layer on
//     every call: with those two LoRAs, an SDXL UNet call at 1024x1024 on 16
//     CPU cores took 35.4 s instead of 34.5 s (2.6%; see TestMeasureSDXL).
//
// Resolve, ParseSpec and ExtractPromptTags turn what people type (a file with
// a scale, A1111's <lora:name:scale> in a prompt) into files, resolving names
// only inside a configured folder.
package lora

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/sdgo/sdgo/diffusion/model"
	"github.com/sdgo/sdgo/diffusion/safetensors"
)

// Format is the key layout of a LoRA file.
type Format string

// The layouts Parse reads.
const (
	Kohya     Format = "kohya"     // lora_unet_*, lora_te*_*: .lora_down/.lora_up/.alpha
	Diffusers Format = "diffusers" // unet.*.lora.down/up, text_encoder.*.lora_linear_layer.down/up
	PEFT      Format = "peft"      // <component>.<module>.lora_A/lora_B
)

// The components a LoRA updates, named as in a diffusers folder.
const (
	UNet         = "unet"
	TextEncoder  = "text_encoder"
	TextEncoder2 = "text_encoder_2"
)

// Factor is one of a module's low-rank factors as stored: its tensor's name in
// the file, its shape and its values (widened to float32).
type Factor struct {
	Key   string
	Shape []int
	Data  []float32
}

// Module is the low-rank update of one layer.
type Module struct {
	// Key is the module's name in the file, the common prefix of its tensors
	// ("lora_unet_input_blocks_4_1_proj_in", "unet.down_blocks.0.attentions.0.proj_in").
	Key string
	// Component is the network it updates: UNet, TextEncoder or TextEncoder2.
	Component string
	// Path is the layer inside the component as the file names it: dotted for
	// diffusers and PEFT files ("down_blocks.0.attentions.0.proj_in"), with "_"
	// for "." in kohya files ("input_blocks_4_1_proj_in").
	Path        string
	Underscored bool
	// Rank is the inner dimension of the factors.
	Rank int
	// Alpha is the file's alpha; HasAlpha is false when it has none (alpha is
	// then the rank).
	Alpha    float32
	HasAlpha bool
	AlphaKey string
	// Down is [rank, in] or [rank, in, kh, kw]; Up is [out, rank] or
	// [out, rank, 1, 1]; Mid, LoCon's Tucker core [rank, rank, kh, kw], is
	// usually absent (nil Data).
	Down, Up, Mid Factor
}

// Multiplier is alpha/rank, the factor the file's own scale puts on up @ down.
func (m *Module) Multiplier() float64 {
	if !m.HasAlpha || m.Alpha == 0 {
		return 1 // kohya's convention: no (or zero) alpha means alpha = rank
	}
	return float64(m.Alpha) / float64(m.Rank)
}

// Conv reports whether the update is for a convolution with a kernel larger
// than 1x1 (a LoCon module).
func (m *Module) Conv() bool {
	s := m.Down.Shape
	return m.Mid.Data != nil || (len(s) == 4 && (s[2] != 1 || s[3] != 1))
}

// LoRA is a parsed LoRA file, held in memory.
type LoRA struct {
	// Name is the file it was read from (for messages).
	Name   string
	Format Format
	// Modules are sorted by Key.
	Modules []*Module
	// Metadata is the safetensors metadata (kohya's ss_* training notes).
	Metadata map[string]string
}

// Open reads a LoRA .safetensors file. Every tensor is read and checked (pairs
// of factors, shapes, ranks, finite values) before it returns.
func Open(path string) (*LoRA, error) {
	if ext := strings.ToLower(filepath.Ext(path)); ext != ".safetensors" {
		return nil, fmt.Errorf("lora: %s: LoRAs are read from .safetensors files (this is %q)", path, ext)
	}
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, fmt.Errorf("lora: %w", err)
	}
	defer f.Close()
	return Parse(path, f)
}

// Parse reads a LoRA from an open safetensors file; name is used in messages.
// The result does not refer to f.
func Parse(name string, f *safetensors.File) (*LoRA, error) {
	l := &LoRA{Name: name, Metadata: f.Metadata()}
	fail := func(key, format string, args ...any) error {
		return fmt.Errorf("lora: %s: %s: %s", name, key, fmt.Sprintf(format, args...))
	}
	mods := map[string]*Module{}
	formats := map[Format]bool{}
	for _, key := range f.Names() {
		k, err := classify(key)
		if err != nil {
			return nil, fmt.Errorf("lora: %s: %w", name, err)
		}
		formats[k.format] = true
		m := mods[k.module]
		if m == nil {
			m = &Module{Key: k.module}
			if m.Component, m.Path, m.Underscored, err = component(k.module); err != nil {
				return nil, fail(key, "%v", err)
			}
			mods[k.module] = m
		}
		info, _ := f.Info(key)
		switch info.DType {
		case safetensors.F16, safetensors.BF16, safetensors.F32, safetensors.F64:
		case safetensors.I64, safetensors.I32, safetensors.I16, safetensors.I8, safetensors.U8:
			if k.part != partAlpha { // some tools store alpha as an integer
				return nil, fail(key, "dtype %s; want a float type", info.DType)
			}
		default:
			return nil, fail(key, "dtype %s; want a float type", info.DType)
		}
		v, err := f.Float32s(key)
		if err != nil {
			return nil, fmt.Errorf("lora: %w", err)
		}
		for i, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, fail(key, "element %d is %v", i, x)
			}
		}
		fac := Factor{Key: key, Shape: info.Shape, Data: v}
		var slot *Factor
		switch k.part {
		case partAlpha:
			if len(v) != 1 {
				return nil, fail(key, "alpha has shape %v; want a scalar", info.Shape)
			}
			m.Alpha, m.HasAlpha, m.AlphaKey = v[0], true, key
			continue
		case partDown:
			slot = &m.Down
		case partUp:
			slot = &m.Up
		case partMid:
			slot = &m.Mid
		}
		if slot.Data != nil {
			return nil, fail(key, "a second %s factor for module %s (the first is %s)", k.part, k.module, slot.Key)
		}
		*slot = fac
	}
	for _, m := range mods {
		l.Modules = append(l.Modules, m)
	}
	sort.Slice(l.Modules, func(i, j int) bool { return l.Modules[i].Key < l.Modules[j].Key })
	if len(l.Modules) == 0 {
		return nil, fmt.Errorf("lora: %s: no LoRA tensors in the file", name)
	}
	for _, m := range l.Modules {
		if err := m.check(); err != nil {
			return nil, fmt.Errorf("lora: %s: %w", name, err)
		}
	}
	switch {
	case formats[Kohya]:
		l.Format = Kohya
	case formats[PEFT]:
		l.Format = PEFT
	default:
		l.Format = Diffusers
	}
	return l, nil
}

// check validates a module's factors: both present, of matching ranks.
func (m *Module) check() error {
	switch {
	case m.Down.Data == nil && m.Up.Data == nil:
		return fmt.Errorf("%s: an alpha without lora_down/lora_up factors", m.AlphaKey)
	case m.Down.Data == nil:
		return fmt.Errorf("%s: no down factor to go with it", m.Up.Key)
	case m.Up.Data == nil:
		return fmt.Errorf("%s: no up factor to go with it", m.Down.Key)
	}
	d, u := m.Down.Shape, m.Up.Shape
	if len(d) != 2 && len(d) != 4 {
		return fmt.Errorf("%s: shape %v; want [rank, in] or [rank, in, kh, kw]", m.Down.Key, d)
	}
	if !(len(u) == 2 || len(u) == 4 && u[2] == 1 && u[3] == 1) {
		return fmt.Errorf("%s: shape %v; want [out, rank] or [out, rank, 1, 1]", m.Up.Key, u)
	}
	m.Rank = d[0]
	if m.Rank == 0 || slices.Contains(d, 0) || slices.Contains(u, 0) {
		return fmt.Errorf("%s: empty factor %v", m.Down.Key, d)
	}
	if u[1] != m.Rank {
		return fmt.Errorf("%s: rank mismatch: %s has rank %d (shape %v) but %s has rank %d (shape %v)",
			m.Key, m.Down.Key, m.Rank, d, m.Up.Key, u[1], u)
	}
	if m.Mid.Data != nil {
		c := m.Mid.Shape
		if len(c) != 4 || c[0] != m.Rank || c[1] != m.Rank {
			return fmt.Errorf("%s: shape %v; want [%d, %d, kh, kw] for rank %d", m.Mid.Key, c, m.Rank, m.Rank, m.Rank)
		}
		if len(d) == 4 && (d[2] != 1 || d[3] != 1) {
			return fmt.Errorf("%s: shape %v; with a lora_mid core the down factor is 1x1", m.Down.Key, d)
		}
	}
	if a := float64(m.Alpha); m.HasAlpha && a < 0 {
		return fmt.Errorf("%s: alpha %v is negative", m.AlphaKey, a)
	}
	return nil
}

// In returns the input features (times the kernel area for a convolution) and
// Out the output features of the updated layer.
func (m *Module) In() int {
	n := 1
	for _, d := range m.Down.Shape[1:] {
		n *= d
	}
	if m.Mid.Data != nil {
		n *= m.Mid.Shape[2] * m.Mid.Shape[3]
	}
	return n
}

// Out returns the output features of the updated layer.
func (m *Module) Out() int { return m.Up.Shape[0] }

// Params returns the number of values of the factors.
func (m *Module) Params() int { return len(m.Down.Data) + len(m.Up.Data) + len(m.Mid.Data) }

// Family guesses the model family the LoRA was made for, and the key that
// tells: SDXL for a LoRA of either of two text encoders (lora_te1_,
// lora_te2_, text_encoder_2.) or of UNet modules under their SGM names
// (input_blocks_*), else from the width of the text encoder or of the
// cross-attention (768: SD 1.x, 1024: SD 2.x, 2048 or 1280: SDXL), else from
// the training metadata kohya-ss and the model spec write
// (ss_base_model_version, modelspec.architecture). It returns "" when nothing
// tells.
func (l *LoRA) Family() (model.Family, string) {
	for _, m := range l.Modules {
		if m.Component == TextEncoder2 || strings.HasPrefix(m.Key, "lora_te1_") {
			return model.SDXL, m.Key
		}
		if m.Component == UNet && m.Underscored && sgmName(m.Path) {
			return model.SDXL, m.Key
		}
	}
	for _, m := range l.Modules {
		in := m.Down.Shape[1]
		switch {
		case m.Component == TextEncoder && strings.HasSuffix(m.Path, "q_proj"):
			switch in {
			case 768:
				return model.SD1, m.Key
			case 1024:
				return model.SD2, m.Key
			case 1280:
				return model.SDXL, m.Key
			}
		case m.Component == UNet && (strings.HasSuffix(m.Path, "attn2.to_k") || strings.HasSuffix(m.Path, "attn2_to_k")):
			switch in {
			case 768:
				return model.SD1, m.Key
			case 1024:
				return model.SD2, m.Key
			case 2048:
				return model.SDXL, m.Key
			}
		}
	}
	for _, k := range []string{"ss_base_model_version", "modelspec.architecture"} {
		v := strings.ToLower(l.Metadata[k])
		switch {
		case v == "":
		case strings.Contains(v, "xl") && !strings.Contains(v, "refiner"):
			return model.SDXL, "metadata " + k
		case strings.HasPrefix(v, "sd_v1") || strings.HasPrefix(v, "sd_1") || strings.HasPrefix(v, "stable-diffusion-v1"):
			return model.SD1, "metadata " + k
		case strings.HasPrefix(v, "sd_v2") || strings.HasPrefix(v, "sd_2") || strings.HasPrefix(v, "stable-diffusion-v2"):
			return model.SD2, "metadata " + k
		}
	}
	return "", ""
}

// Detect reports whether tensor names are those of a LoRA (or of a LyCORIS
// variant, which Open then refuses by name) rather than of a model.
func Detect(names []string) bool {
	for _, n := range names {
		if _, err := classify(n); err == nil || strings.Contains(err.Error(), "is not supported") {
			return true
		}
	}
	return false
}

// sgmName reports whether an underscored UNet path uses the original layout.
func sgmName(p string) bool {
	for _, s := range []string{"input_blocks_", "middle_block_", "output_blocks_"} {
		if strings.HasPrefix(p, s) {
			return true
		}
	}
	return false
}

// Components lists the components the LoRA updates, in UNet, TextEncoder,
// TextEncoder2 order.
func (l *LoRA) Components() []string {
	var out []string
	for _, c := range []string{UNet, TextEncoder, TextEncoder2} {
		for _, m := range l.Modules {
			if m.Component == c {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

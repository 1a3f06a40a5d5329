package lora

import (
	"fmt"
	"strings"
)

// part is what a tensor of a module is.
type part int

const (
	partDown part = iota
	partUp
	partMid
	partAlpha
)

func (p part) String() string {
	return [...]string{"down", "up", "mid", "alpha"}[p]
}

// key is a classified tensor name.
type key struct {
	module string
	part   part
	format Format
}

// suffixes are the LoRA tensors' name endings, longest first where one ends
// another.
var suffixes = []struct {
	s      string
	part   part
	format Format
}{
	{".lora_down.weight", partDown, Kohya},
	{".lora_up.weight", partUp, Kohya},
	{".lora_mid.weight", partMid, Kohya},
	{".lora_linear_layer.down.weight", partDown, Diffusers},
	{".lora_linear_layer.up.weight", partUp, Diffusers},
	{".lora.down.weight", partDown, Diffusers},
	{".lora.up.weight", partUp, Diffusers},
	{".lora_A.weight", partDown, PEFT},
	{".lora_B.weight", partUp, PEFT},
	{".alpha", partAlpha, Kohya},
}

// variants are the endings of the tensors of LoRA variants this package does
// not apply, with the variant's name for the error.
var variants = []struct{ s, name string }{
	{".dora_scale", "DoRA (weight-decomposed LoRA, dora_scale)"},
	{".lora_magnitude_vector", "DoRA (weight-decomposed LoRA, lora_magnitude_vector)"},
	{".hada_w1_a", "LoHa (LyCORIS Hadamard product)"},
	{".hada_w1_b", "LoHa (LyCORIS Hadamard product)"},
	{".hada_w2_a", "LoHa (LyCORIS Hadamard product)"},
	{".hada_w2_b", "LoHa (LyCORIS Hadamard product)"},
	{".hada_t1", "LoHa (LyCORIS Hadamard product)"},
	{".hada_t2", "LoHa (LyCORIS Hadamard product)"},
	{".lokr_w1", "LoKr (LyCORIS Kronecker product)"},
	{".lokr_w1_a", "LoKr (LyCORIS Kronecker product)"},
	{".lokr_w1_b", "LoKr (LyCORIS Kronecker product)"},
	{".lokr_w2", "LoKr (LyCORIS Kronecker product)"},
	{".lokr_w2_a", "LoKr (LyCORIS Kronecker product)"},
	{".lokr_w2_b", "LoKr (LyCORIS Kronecker product)"},
	{".lokr_t2", "LoKr (LyCORIS Kronecker product)"},
	{".oft_blocks", "OFT (LyCORIS orthogonal fine-tuning)"},
	{".oft_diag", "OFT (LyCORIS orthogonal fine-tuning)"},
	{".boft_R", "BOFT (butterfly orthogonal fine-tuning)"},
	{".on_input", "IA3 (LyCORIS)"},
	{".a1.weight", "GLoRA (LyCORIS)"},
	{".a2.weight", "GLoRA (LyCORIS)"},
	{".b1.weight", "GLoRA (LyCORIS)"},
	{".b2.weight", "GLoRA (LyCORIS)"},
	{".diff", "a full weight difference (LyCORIS full/diff)"},
	{".diff_b", "a full bias difference (LyCORIS diff_b)"},
	{".lora_down.bias", "a LoRA with biases"},
	{".lora_up.bias", "a LoRA with biases"},
	{".lora_A.bias", "a LoRA with biases"},
	{".lora_B.bias", "a LoRA with biases"},
	{".lora_embedding_A", "an embedding LoRA (lora_embedding_A)"},
	{".lora_embedding_B", "an embedding LoRA (lora_embedding_B)"},
}

// classify splits a tensor name into its module and part.
func classify(name string) (key, error) {
	for _, v := range variants {
		if strings.HasSuffix(name, v.s) {
			return key{}, fmt.Errorf("%s: %s is not supported (only LoRA and LoCon: lora_down/lora_up factors)", name, v.name)
		}
	}
	if strings.HasPrefix(name, "bundle_emb.") {
		return key{}, fmt.Errorf("%s: textual-inversion embeddings bundled in a LoRA are not supported", name)
	}
	// diffusers' original attention-processor layout:
	// <module>.processor.to_q_lora.down.weight.
	if head, tail, ok := strings.Cut(name, ".processor."); ok {
		for _, p := range []string{"to_q", "to_k", "to_v", "to_out"} {
			for _, side := range []struct {
				s    string
				part part
			}{{"_lora.down.weight", partDown}, {"_lora.up.weight", partUp}} {
				if tail == p+side.s {
					mod := head + "." + p
					if p == "to_out" {
						mod += ".0"
					}
					return key{module: mod, part: side.part, format: Diffusers}, nil
				}
			}
		}
	}
	for _, s := range suffixes {
		if mod, ok := strings.CutSuffix(name, s.s); ok && mod != "" {
			f := s.format
			switch {
			case strings.HasPrefix(mod, "lora_"):
				f = Kohya
			case f == Kohya:
				f = Diffusers
			}
			return key{module: mod, part: s.part, format: f}, nil
		}
	}
	return key{}, fmt.Errorf("%s: not a LoRA tensor (want .lora_down/.lora_up/.alpha, .lora.down/.lora.up, .lora_linear_layer.down/.up or .lora_A/.lora_B)", name)
}

// component finds the network a module updates and its path inside it.
func component(mod string) (comp, path string, underscored bool, err error) {
	for _, p := range []struct{ prefix, comp string }{
		{"lora_unet_", UNet}, {"lora_te1_", TextEncoder}, {"lora_te2_", TextEncoder2}, {"lora_te_", TextEncoder},
	} {
		if rest, ok := strings.CutPrefix(mod, p.prefix); ok {
			return p.comp, rest, true, nil
		}
	}
	if strings.HasPrefix(mod, "lora_") {
		return "", "", false, fmt.Errorf("unknown kohya prefix (want lora_unet_, lora_te_, lora_te1_ or lora_te2_)")
	}
	path = strings.TrimPrefix(mod, "base_model.model.")
	for _, p := range []struct{ prefix, comp string }{
		{"unet.", UNet}, {"text_encoder_2.", TextEncoder2}, {"text_encoder.", TextEncoder},
	} {
		if rest, ok := strings.CutPrefix(path, p.prefix); ok {
			comp, path = p.comp, rest
			break
		}
	}
	if comp == "" {
		// Files of one network without a component prefix.
		for _, s := range []string{"down_blocks.", "mid_block.", "up_blocks.", "conv_in", "conv_out", "time_embedding.", "add_embedding."} {
			if strings.HasPrefix(path, s) {
				comp = UNet
			}
		}
		if strings.HasPrefix(path, "text_model.") {
			comp = TextEncoder
		}
	}
	if comp == "" {
		return "", "", false, fmt.Errorf("cannot tell which network the module %q is for (want a unet., text_encoder. or text_encoder_2. prefix)", mod)
	}
	if comp != UNet && !strings.HasPrefix(path, "text_model.") && path != "text_projection" {
		// transformers 5 writes CLIP without its text_model. root.
		path = "text_model." + path
	}
	return comp, path, false, nil
}

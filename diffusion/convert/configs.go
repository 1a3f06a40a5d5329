package convert

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sdgo/sdgo/diffusion/model"
	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/diffusion/tokenizer"
	"github.com/sdgo/sdgo/internal/pyjson"
)

// object is a JSON object whose values are kept as written.
type object map[string]json.RawMessage

// readObject reads a JSON object from the model's config folder (rel is a
// path inside it); a model without one, or a missing file, gives an empty
// object.
func readObject(m *model.Model, rel string) (object, error) {
	o := object{}
	if m.ConfigDir == "" {
		return o, nil
	}
	path := filepath.Join(m.ConfigDir, rel)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return o, nil
	}
	if err != nil {
		return nil, err
	}
	if err := pyjson.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object: %w", path, err)
	}
	return o, nil
}

// set stores v under key.
func (o object) set(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("key %q: %w", key, err)
	}
	o[key] = b
	return nil
}

// overlay sets every key of the JSON object b.
func (o object) overlay(b []byte) error {
	var top object
	if err := json.Unmarshal(b, &top); err != nil {
		return err
	}
	for k, v := range top {
		o[k] = v
	}
	return nil
}

// marshal writes the object as Python's json.dump(indent=2, sort_keys=True)
// does, with a final newline.
func (o object) marshal() ([]byte, error) {
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// componentConfig writes a diffusers component's config.json: the source's
// file (which may hold keys this engine does not read) with every key of the
// parsed config written over it, so that it parses to the same config.
func componentConfig(m *model.Model, name string, cfg json.Marshaler) ([]byte, error) {
	o, err := readObject(m, filepath.Join(name, "config.json"))
	if err != nil {
		return nil, err
	}
	b, err := cfg.MarshalJSON()
	if err != nil {
		return nil, err
	}
	if err := o.overlay(b); err != nil {
		return nil, fmt.Errorf("%s config: %w", name, err)
	}
	return o.marshal()
}

// torchDType is PyTorch's name of a dtype.
func torchDType(d safetensors.DType) string {
	switch d {
	case safetensors.F16:
		return "float16"
	case safetensors.BF16:
		return "bfloat16"
	}
	return "float32"
}

// textConfig writes a text encoder's config.json as transformers does: the
// source's file, or the keys transformers writes for a CLIPTextConfig, with
// the parsed config over it and the dtype of the weights written.
func textConfig(m *model.Model, te model.TextEncoder, weights safetensors.DType) ([]byte, error) {
	o, err := readObject(m, filepath.Join(te.Name, "config.json"))
	if err != nil {
		return nil, err
	}
	defaults := map[string]any{
		"model_type":         "clip_text_model",
		"attention_dropout":  0.0,
		"initializer_factor": 1.0,
		"initializer_range":  0.02,
	}
	for k, v := range defaults {
		if _, ok := o[k]; !ok {
			if err := o.set(k, v); err != nil {
				return nil, err
			}
		}
	}
	cfg := te.Config
	cfg.Architectures = []string{te.Class}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if err := o.overlay(b); err != nil {
		return nil, err
	}
	// transformers 5 writes "dtype", earlier versions "torch_dtype".
	keys := []string{}
	for _, k := range []string{"dtype", "torch_dtype"} {
		if _, ok := o[k]; ok {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		keys = []string{"torch_dtype"}
	}
	for _, k := range keys {
		if err := o.set(k, torchDType(weights)); err != nil {
			return nil, err
		}
	}
	return o.marshal()
}

// tokenizerOf is the tokenizer component of a text encoder.
func tokenizerOf(encoder string) string {
	if encoder == "text_encoder_2" {
		return "tokenizer_2"
	}
	return "tokenizer"
}

// modelIndex writes model_index.json for the components written: the source's
// (its pipeline options kept, components not written set to [null, null]),
// or one made from the model's index.
func modelIndex(m *model.Model, tokenizerClass map[string]string) ([]byte, error) {
	o, err := readObject(m, "model_index.json")
	if err != nil {
		return nil, err
	}
	written := map[string][2]string{
		"unet":      {"diffusers", "UNet2DConditionModel"},
		"vae":       {"diffusers", "AutoencoderKL"},
		"scheduler": {"diffusers", m.SchedulerClass},
	}
	for _, c := range []string{"unet", "vae"} {
		if x, ok := m.Index.Components[c]; ok {
			written[c] = [2]string{x.Library, x.Class}
		}
	}
	for _, te := range m.TextEncoders {
		written[te.Name] = [2]string{"transformers", te.Class}
		tok := tokenizerOf(te.Name)
		written[tok] = [2]string{"transformers", tokenizerClass[tok]}
	}
	if len(o) == 0 {
		// No source index: the keys diffusers writes for the family's pipeline.
		if err := o.set("_class_name", m.Index.ClassName); err != nil {
			return nil, err
		}
		if m.Index.DiffusersVersion != "" {
			if err := o.set("_diffusers_version", m.Index.DiffusersVersion); err != nil {
				return nil, err
			}
		}
		optional := []string{"feature_extractor", "image_encoder"}
		switch m.Family {
		case model.SD1, model.SD2:
			optional = append(optional, "safety_checker")
			if err := o.set("requires_safety_checker", m.Index.RequiresSafetyChecker); err != nil {
				return nil, err
			}
		case model.SDXL:
			if err := o.set("force_zeros_for_empty_prompt", m.Index.ForceZerosForEmptyPrompt); err != nil {
				return nil, err
			}
		case model.SDXLRefiner:
			if err := o.set("requires_aesthetics_score", m.Index.RequiresAestheticsScore); err != nil {
				return nil, err
			}
			if err := o.set("force_zeros_for_empty_prompt", m.Index.ForceZerosForEmptyPrompt); err != nil {
				return nil, err
			}
		}
		for _, c := range optional {
			o[c] = json.RawMessage("[null, null]")
		}
	}
	// Components of the source that are not written (a safety checker, say)
	// become absent, as diffusers writes them.
	for k, v := range o {
		if _, ok := written[k]; ok || len(k) == 0 || k[0] == '_' {
			continue
		}
		var pair []*string
		if json.Unmarshal(v, &pair) == nil && len(pair) == 2 && pair[0] != nil && pair[1] != nil {
			o[k] = json.RawMessage("[null, null]")
		}
	}
	for k, v := range written {
		if err := o.set(k, []string{v[0], v[1]}); err != nil {
			return nil, err
		}
	}
	return o.marshal()
}

// writeTokenizer writes the tokenizer folder of a text encoder into dir: a
// copy of the source's, or the built-in vocabulary with the encoder's pad
// token. It returns the tokenizer's class for model_index.json.
func writeTokenizer(m *model.Model, te model.TextEncoder, dir string, res *Result) (string, error) {
	if te.Tokenizer != "" {
		if err := copyFolder(te.Tokenizer, dir); err != nil {
			return "", fmt.Errorf("tokenizer of %s: %w", te.Name, err)
		}
		class := "CLIPTokenizer"
		if c, ok := m.Index.Components[tokenizerOf(te.Name)]; ok && c.Class != "" {
			class = c.Class
		}
		return class, nil
	}
	pad := tokenizer.EndOfText
	if spec, ok := textSpecOf(m.Family, te.Name); ok && spec.openCLIP {
		pad = "!" // OpenCLIP's tokenizer pads with "!" (id 0)
	}
	if err := tokenizer.WriteBuiltin(dir, pad); err != nil {
		return "", err
	}
	res.Notes = append(res.Notes, fmt.Sprintf("%s: the built-in CLIP vocabulary is written as %s, padding with %q", te.Name, tokenizerOf(te.Name), pad))
	return "CLIPTokenizer", nil
}

// copyFolder copies the regular files of src (following links, as a Hub cache
// snapshot holds them) into dst, which it creates.
func copyFolder(src, dst string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(src, e.Name())
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			continue
		}
		if err := copyFile(p, filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return nil
}

// writeJSON writes a small file of the output folder.
func writeJSON(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

package model

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/sdgo/sdgo/internal/pyjson"
)

// Component is one entry of model_index.json: the library and class that
// build it ("diffusers", "UNet2DConditionModel").
type Component struct {
	Library string `json:"library"`
	Class   string `json:"class"`
}

// ModelIndex is a pipeline's model_index.json.
type ModelIndex struct {
	// ClassName is the pipeline class ("StableDiffusionXLPipeline").
	ClassName        string `json:"_class_name"`
	DiffusersVersion string `json:"_diffusers_version,omitempty"`
	// Components maps component names (unet, vae, text_encoder, tokenizer,
	// scheduler, ...) to their classes; components stored as [null, null]
	// (absent) are left out.
	Components map[string]Component `json:"components"`
	// ForceZerosForEmptyPrompt makes SDXL's negative embeddings zeros when no
	// negative prompt is given.
	ForceZerosForEmptyPrompt bool `json:"force_zeros_for_empty_prompt"`
	// RequiresAestheticsScore makes SDXL img2img/inpainting condition on an
	// aesthetic score instead of the target size (the refiner).
	RequiresAestheticsScore bool `json:"requires_aesthetics_score"`
	RequiresSafetyChecker   bool `json:"requires_safety_checker"`
}

// Names returns the component names, sorted.
func (x ModelIndex) Names() []string {
	var n []string
	for k := range x.Components {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Has reports whether the index lists a (non-null) component.
func (x ModelIndex) Has(name string) bool {
	_, ok := x.Components[name]
	return ok
}

// ParseModelIndex reads model_index.json's bytes; name is used in errors.
func ParseModelIndex(name string, b []byte) (ModelIndex, error) {
	var raw map[string]json.RawMessage
	if err := pyjson.Unmarshal(b, &raw); err != nil {
		return ModelIndex{}, fmt.Errorf("%s: not a JSON object: %w", name, err)
	}
	x := ModelIndex{Components: map[string]Component{}}
	for key, v := range raw {
		var err error
		switch key {
		case "_class_name":
			err = json.Unmarshal(v, &x.ClassName)
		case "_diffusers_version":
			err = json.Unmarshal(v, &x.DiffusersVersion)
		case "force_zeros_for_empty_prompt":
			err = json.Unmarshal(v, &x.ForceZerosForEmptyPrompt)
		case "requires_aesthetics_score":
			err = json.Unmarshal(v, &x.RequiresAestheticsScore)
		case "requires_safety_checker":
			err = json.Unmarshal(v, &x.RequiresSafetyChecker)
		default:
			if len(key) > 0 && key[0] == '_' {
				continue
			}
			var pair []*string
			if json.Unmarshal(v, &pair) != nil || len(pair) != 2 {
				continue // another pipeline option, not a component
			}
			switch {
			case pair[0] == nil && pair[1] == nil:
			case pair[0] == nil || pair[1] == nil:
				err = fmt.Errorf("want [library, class] or [null, null]")
			default:
				x.Components[key] = Component{Library: *pair[0], Class: *pair[1]}
			}
		}
		if err != nil {
			return ModelIndex{}, fmt.Errorf("%s: key %q: %s: %v", name, key, v, err)
		}
	}
	if x.ClassName == "" {
		return ModelIndex{}, fmt.Errorf("%s: no _class_name: not a diffusers pipeline index", name)
	}
	return x, nil
}

// LoadModelIndex reads a model_index.json.
func LoadModelIndex(path string) (ModelIndex, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return ModelIndex{}, fmt.Errorf("model index: %w", err)
	}
	return ParseModelIndex(path, b)
}

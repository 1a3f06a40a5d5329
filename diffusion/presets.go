package diffusion

import (
	"slices"
	"strings"
)

// Preset is a well-known model: where it lives on the Hugging Face Hub and how
// it is meant to be run.
type Preset struct {
	Name string
	// Repo is the Hub repository id.
	Repo string
	// Size is the native image side in pixels.
	Size int
	// Steps and Guidance are sensible defaults (the model card's).
	Steps    int
	Guidance float64
	// Scheduler names the scheduler the model is meant to run with ("" keeps
	// the repository's own).
	Scheduler string
	// Note says what the model is.
	Note string
}

// Presets returns the built-in presets, by name.
func Presets() []Preset {
	return []Preset{
		{Name: "v1-5", Repo: "stable-diffusion-v1-5/stable-diffusion-v1-5", Size: 512, Steps: 25, Guidance: 7.5, Note: "Stable Diffusion 1.5"},
		{Name: "v1-5-inpaint", Repo: "stable-diffusion-v1-5/stable-diffusion-inpainting", Size: 512, Steps: 25, Guidance: 7.5, Note: "Stable Diffusion 1.5 inpainting"},
		{Name: "v2-1", Repo: "stabilityai/stable-diffusion-2-1", Size: 768, Steps: 25, Guidance: 7.5, Note: "Stable Diffusion 2.1 (768, v-prediction)"},
		{Name: "v2-inpaint", Repo: "stabilityai/stable-diffusion-2-inpainting", Size: 512, Steps: 25, Guidance: 7.5, Note: "Stable Diffusion 2 inpainting"},
		{Name: "xl", Repo: "stabilityai/stable-diffusion-xl-base-1.0", Size: 1024, Steps: 30, Guidance: 5, Note: "SDXL base 1.0"},
		{Name: "xl-inpaint", Repo: "diffusers/stable-diffusion-xl-1.0-inpainting-0.1", Size: 1024, Steps: 30, Guidance: 8, Note: "SDXL inpainting 0.1"},
		{Name: "turbo", Repo: "stabilityai/sdxl-turbo", Size: 512, Steps: 1, Guidance: 0, Scheduler: "euler_a", Note: "SDXL-Turbo: 1 to 4 steps, no guidance"},
		{Name: "sd-turbo", Repo: "stabilityai/sd-turbo", Size: 512, Steps: 1, Guidance: 0, Scheduler: "euler_a", Note: "SD-Turbo (2.1 distilled): 1 to 4 steps, no guidance"},
	}
}

// LookupPreset finds a preset by name (case-insensitive).
func LookupPreset(name string) (Preset, bool) {
	ps := Presets()
	i := slices.IndexFunc(ps, func(p Preset) bool { return strings.EqualFold(p.Name, name) })
	if i < 0 {
		return Preset{}, false
	}
	return ps[i], true
}

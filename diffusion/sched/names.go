package sched

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Preset is a scheduler chosen by name: a diffusers class and the config keys
// to set on top of a model's scheduler config.
type Preset struct {
	Class     string
	Overrides map[string]any
}

// presets maps normalised names (see normalizeName) to presets; a
// _karras/_exponential/_beta suffix adds the sigma schedule.
var presets = map[string]Preset{
	"ddim":              {Class: "DDIMScheduler"},
	"ddpm":              {Class: "DDPMScheduler"},
	"pndm":              {Class: "PNDMScheduler", Overrides: map[string]any{"skip_prk_steps": true}},
	"plms":              {Class: "PNDMScheduler", Overrides: map[string]any{"skip_prk_steps": true}},
	"euler":             {Class: "EulerDiscreteScheduler"},
	"euler_a":           {Class: "EulerAncestralDiscreteScheduler"},
	"euler_ancestral":   {Class: "EulerAncestralDiscreteScheduler"},
	"heun":              {Class: "HeunDiscreteScheduler"},
	"lms":               {Class: "LMSDiscreteScheduler"},
	"dpm2":              {Class: "KDPM2DiscreteScheduler"},
	"dpm2_a":            {Class: "KDPM2AncestralDiscreteScheduler"},
	"unipc":             {Class: "UniPCMultistepScheduler"},
	"deis":              {Class: "DEISMultistepScheduler"},
	"lcm":               {Class: "LCMScheduler"},
	"tcd":               {Class: "TCDScheduler"},
	"dpmpp_2m":          {Class: "DPMSolverMultistepScheduler", Overrides: dpm("dpmsolver++", 2, "midpoint")},
	"dpmpp_3m":          {Class: "DPMSolverMultistepScheduler", Overrides: dpm("dpmsolver++", 3, "midpoint")},
	"dpmpp_2m_sde":      {Class: "DPMSolverMultistepScheduler", Overrides: dpm("sde-dpmsolver++", 2, "midpoint")},
	"dpmpp_2m_sde_heun": {Class: "DPMSolverMultistepScheduler", Overrides: dpm("sde-dpmsolver++", 2, "heun")},
	"dpmpp_3m_sde":      {Class: "DPMSolverMultistepScheduler", Overrides: dpm("sde-dpmsolver++", 3, "midpoint")},
	"dpmpp_2s":          {Class: "DPMSolverSinglestepScheduler", Overrides: dpm("dpmsolver++", 2, "midpoint")},
	"dpmpp_2s_a":        {Class: "DPMSolverSinglestepScheduler", Overrides: dpm("dpmsolver++", 2, "midpoint")},
	"dpmpp_sde":         {Class: "DPMSolverSinglestepScheduler", Overrides: dpm("sde-dpmsolver++", 2, "midpoint")},
}

func dpm(algorithm string, order int, solver string) map[string]any {
	return map[string]any{"algorithm_type": algorithm, "solver_order": order, "solver_type": solver}
}

// sigmaSuffixes are the name suffixes that choose a sigma schedule.
var sigmaSuffixes = []struct {
	suffix, key string
}{
	{"_karras", "use_karras_sigmas"},
	{"_exponential", "use_exponential_sigmas"},
	{"_beta", "use_beta_sigmas"},
}

// normalizeName lowercases a name and spells it with underscores, so the short
// names (dpmpp_2m_karras) and A1111's display names ("DPM++ 2M Karras",
// "Euler a") meet: "++" becomes "pp", spaces and dashes become "_".
func normalizeName(name string) string {
	s := strings.ToLower(strings.TrimSpace(name))
	s = strings.ReplaceAll(s, "++", "pp")
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\t' {
			return '_'
		}
		return r
	}, s)
	for strings.Contains(s, "__") {
		s = strings.ReplaceAll(s, "__", "_")
	}
	return s
}

// Lookup resolves a scheduler name: a short name (ddim, euler, euler_a, heun,
// lms, dpmpp_2m, dpmpp_2m_sde, dpmpp_2s, dpm2, dpm2_a, unipc, deis, lcm, tcd,
// ddpm, pndm, ... with an optional _karras, _exponential or _beta suffix), an
// AUTOMATIC1111 display name ("DPM++ 2M Karras", "Euler a", "DPM2 a", "LMS
// Karras", ...), or a diffusers class name. Matching ignores case.
func Lookup(name string) (Preset, error) {
	if _, ok := classes[name]; ok {
		return Preset{Class: name}, nil
	}
	n := normalizeName(name)
	for class := range classes {
		if strings.ToLower(class) == n {
			return Preset{Class: class}, nil
		}
	}
	if p, ok := presets[n]; ok {
		return p.clone(), nil
	}
	for _, sfx := range sigmaSuffixes {
		base, ok := strings.CutSuffix(n, sfx.suffix)
		if !ok {
			continue
		}
		p, ok := presets[base]
		if !ok {
			break
		}
		if !slices.Contains(classes[p.Class].keys, sfx.key) {
			return Preset{}, fmt.Errorf("sched: scheduler %q: %s does not support %s", name, p.Class, sfx.key)
		}
		p = p.clone()
		p.Overrides[sfx.key] = true
		return p, nil
	}
	return Preset{}, fmt.Errorf("sched: unknown scheduler name %q; known: %s (add _karras for Karras sigmas), A1111 names such as \"DPM++ 2M Karras\", or a diffusers class name", name, strings.Join(Names(), ", "))
}

func (p Preset) clone() Preset {
	o := make(map[string]any, len(p.Overrides)+1)
	for k, v := range p.Overrides {
		o[k] = v
	}
	return Preset{Class: p.Class, Overrides: o}
}

// Names returns the short scheduler names Lookup knows, sorted.
func Names() []string {
	out := make([]string, 0, len(presets))
	for n := range presets {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Config returns the preset's configuration on top of a model's scheduler
// config (diffusers' Class.from_config(model_config, **overrides)): the
// class's defaults, the keys of modelConfig it takes, then the overrides.
// modelConfig may be nil.
func (p Preset) Config(modelConfig []byte) (Config, error) {
	var layers [][]byte
	if modelConfig != nil {
		layers = append(layers, modelConfig)
	}
	if len(p.Overrides) > 0 {
		o, err := json.Marshal(p.Overrides)
		if err != nil {
			return Config{}, fmt.Errorf("sched: overrides for %s: %w", p.Class, err)
		}
		layers = append(layers, o)
	}
	return ConfigFor(p.Class, layers...)
}

// FromName builds the scheduler a name chooses (see Lookup) on top of a
// model's scheduler_config.json. An empty name builds the model's own scheduler.
func FromName(name string, modelConfig []byte) (Scheduler, error) {
	if name == "" {
		if modelConfig == nil {
			return nil, fmt.Errorf("sched: no scheduler name and no scheduler config")
		}
		return FromConfig(modelConfig)
	}
	p, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	cfg, err := p.Config(modelConfig)
	if err != nil {
		return nil, err
	}
	return New(p.Class, cfg)
}

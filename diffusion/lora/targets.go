package lora

import (
	"fmt"
	"iter"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/sdgo/sdgo/diffusion/model"
	"github.com/sdgo/sdgo/diffusion/unet"
	"github.com/sdgo/sdgo/nn"
)

// Target is a model that LoRAs apply to: its family, its UNet's architecture
// (for the original module names kohya SDXL LoRAs use) and the layers of its
// networks by component (UNet, TextEncoder, TextEncoder2), each named as in
// diffusers' module tree (unet.Model.Layers, clip.TextModel.Layers). Set the
// fields before the first use and do not change them after.
type Target struct {
	Family     model.Family
	UNet       unet.Config
	Components map[string]iter.Seq2[string, nn.Adaptable]

	once    sync.Once
	indexes map[string]*index
}

// index resolves a component's module paths.
type index struct {
	layers map[string]nn.Adaptable // by diffusers module name
	under  map[string]string       // "_"-joined names (diffusers' and the UNet's original) -> diffusers name
}

func (t *Target) index(comp string) *index {
	t.once.Do(func() {
		t.indexes = map[string]*index{}
		for c, layers := range t.Components {
			ix := &index{layers: map[string]nn.Adaptable{}, under: map[string]string{}}
			var mods []string
			for m, l := range layers {
				mods = append(mods, m)
				ix.layers[m] = l
				ix.under[strings.ReplaceAll(m, ".", "_")] = m
			}
			if c == UNet {
				for orig, m := range model.UNetOriginalModules(t.UNet, mods) {
					ix.under[strings.ReplaceAll(orig, ".", "_")] = m
				}
			}
			t.indexes[c] = ix
		}
	})
	return t.indexes[comp]
}

// Adapter is a LoRA with the multiplier it is applied at (A1111's
// <lora:name:scale>, diffusers' adapter weight): 1 applies it as trained.
type Adapter struct {
	LoRA  *LoRA
	Scale float64
}

// binding is one module of one adapter matched to the layer it updates.
type binding struct {
	file   string // the LoRA's name, for messages
	mod    *Module
	comp   string
	name   string // the layer's diffusers module name
	layer  nn.Adaptable
	factor float64 // scale x alpha/rank
}

// bind matches every module of the adapters to the target's layers and checks
// the shapes; it changes nothing.
func (t *Target) bind(adapters []Adapter) ([]binding, error) {
	var out []binding
	for _, a := range adapters {
		l := a.LoRA
		if l == nil {
			return nil, fmt.Errorf("lora: an adapter without a LoRA")
		}
		if math.IsNaN(a.Scale) || math.IsInf(a.Scale, 0) {
			return nil, fmt.Errorf("lora: %s: scale %v is not a finite number", l.Name, a.Scale)
		}
		if fam, key := l.Family(); fam != "" && fam != t.Family {
			return nil, fmt.Errorf("lora: %s: %s: this LoRA is for %s models; the model is %s", l.Name, key, fam, t.Family)
		}
		seen := map[string]string{}
		for _, m := range l.Modules {
			b, err := t.bindModule(m)
			if err != nil {
				hint := ""
				if fam, _ := l.Family(); fam == "" {
					hint = fmt.Sprintf(" (is the LoRA for another model family than %s?)", t.Family)
				}
				return nil, fmt.Errorf("lora: %s: %w%s", l.Name, err, hint)
			}
			id := b.comp + "/" + b.name
			if prev, dup := seen[id]; dup {
				return nil, fmt.Errorf("lora: %s: %s: updates %s %s, as %s does", l.Name, m.Key, b.comp, b.name, prev)
			}
			seen[id] = m.Key
			b.file, b.factor = l.Name, a.Scale*m.Multiplier()
			out = append(out, b)
		}
	}
	return out, nil
}

// Check matches every module of the adapters to the target's layers, as
// Prepare does first, and changes nothing.
func (t *Target) Check(adapters []Adapter) error {
	_, err := t.bind(adapters)
	return err
}

func (t *Target) bindModule(m *Module) (binding, error) {
	ix := t.index(m.Component)
	if ix == nil {
		return binding{}, fmt.Errorf("%s: the model has no %s", m.Key, m.Component)
	}
	name := m.Path
	if m.Underscored {
		var ok bool
		if name, ok = ix.under[m.Path]; !ok {
			return binding{}, fmt.Errorf("%s: matches no layer of the model's %s", m.Key, m.Component)
		}
	}
	layer, ok := ix.layers[name]
	if !ok {
		return binding{}, fmt.Errorf("%s: matches no layer of the model's %s (no linear or convolution layer %s)", m.Key, m.Component, name)
	}
	ws := layer.WeightShape()
	if err := fits(m, ws); err != nil {
		return binding{}, fmt.Errorf("%s: %w; the model's %s %s.weight is %v", m.Key, err, m.Component, name, ws)
	}
	return binding{mod: m, comp: m.Component, name: name, layer: layer}, nil
}

// fits checks that a module's factors update a weight of shape ws: a linear
// layer [out, in] or a convolution [out, in, kh, kw].
func fits(m *Module, ws []int) error {
	got := append([]int{m.Out(), m.Down.Shape[1]}, m.kernel()...)
	var want []int
	switch len(ws) {
	case 2:
		want = append(slices.Clone(ws), 1, 1)
	case 4:
		want = ws
	default:
		return fmt.Errorf("the layer is neither linear nor a convolution")
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("the factors make a %v update", describe(got, len(ws)))
	}
	return nil
}

// kernel returns the [kh, kw] of the convolution the module updates ([1, 1]
// for a linear layer).
func (m *Module) kernel() []int {
	switch {
	case m.Mid.Data != nil:
		return slices.Clone(m.Mid.Shape[2:])
	case len(m.Down.Shape) == 4:
		return slices.Clone(m.Down.Shape[2:])
	}
	return []int{1, 1}
}

func describe(s []int, rank int) []int {
	if rank == 2 && s[2] == 1 && s[3] == 1 {
		return s[:2]
	}
	return s
}

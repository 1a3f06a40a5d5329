package lora

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/sdgo/sdgo/diffusion/model"
	"github.com/sdgo/sdgo/diffusion/unet"
	"github.com/sdgo/sdgo/nn"
	"github.com/sdgo/sdgo/tensor"
)

// Weights are the weight tensors a network was loaded with, by their
// diffusers names, as Record saw the network load them: the original values
// LoRAs are merged from. Weights hold their own claim on the tensors' storage
// (the network may be released and rebuilt); Release drops it.
type Weights struct {
	mu      sync.Mutex
	tensors map[string]*tensor.Tensor
}

// Record wraps the Params a network is loaded from so that the returned
// Weights know every tensor the network took, by name. When p makes synthetic
// weights (an nn.Synthesizer, as the benchmarks' models), so does the wrapper.
func Record(p nn.Params) (nn.Params, *Weights) {
	w := &Weights{tensors: map[string]*tensor.Tensor{}}
	r := recorder{p: p, w: w}
	if s, ok := p.(nn.Synthesizer); ok {
		return synthRecorder{r, s}, w
	}
	return r, w
}

type recorder struct {
	p nn.Params
	w *Weights
}

func (r recorder) Tensor(name string) (*tensor.Tensor, error) {
	t, err := r.p.Tensor(name)
	if err != nil {
		return nil, err
	}
	if err := r.w.add(name, t); err != nil {
		t.Release()
		return nil, err
	}
	return t, nil
}

type synthRecorder struct {
	recorder
	s nn.Synthesizer
}

func (r synthRecorder) Synthesize(name string, shape []int) (*tensor.Tensor, error) {
	t, err := r.s.Synthesize(name, shape)
	if err != nil {
		return nil, err
	}
	if err := r.w.add(name, t); err != nil {
		t.Release()
		return nil, err
	}
	return t, nil
}

// add keeps a view of t (its own claim on the storage), so that the weights
// outlive the network that loaded them.
func (w *Weights) add(name string, t *tensor.Tensor) error {
	v, err := t.Reshape(t.Shape()...)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if old := w.tensors[name]; old != nil {
		old.Release()
	}
	w.tensors[name] = v
	return nil
}

// Release drops the recorded tensors.
func (w *Weights) Release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, t := range w.tensors {
		t.Release()
	}
	w.tensors = map[string]*tensor.Tensor{}
}

// Names returns the names of the recorded tensors, sorted.
func (w *Weights) Names() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	names := make([]string, 0, len(w.tensors))
	for n := range w.tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Tensor returns the recorded tensor of that name, or nil.
func (w *Weights) Tensor(name string) *tensor.Tensor {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tensors[name]
}

// Target is a model that LoRAs apply to: its family, its UNet's architecture
// (for the original module names kohya SDXL LoRAs use) and the recorded
// weights of its networks by component (UNet, TextEncoder, TextEncoder2).
// Set the fields before the first use and do not change them after.
type Target struct {
	Family     model.Family
	UNet       unet.Config
	Components map[string]*Weights

	once    sync.Once
	indexes map[string]*index
}

// index resolves a component's module paths.
type index struct {
	w      *Weights
	dotted map[string]bool   // diffusers module names (of weights of rank >= 2)
	under  map[string]string // "_"-joined names (diffusers' and the UNet's original) -> diffusers name
}

func (t *Target) index(comp string) *index {
	t.once.Do(func() {
		t.indexes = map[string]*index{}
		for c, w := range t.Components {
			ix := &index{w: w, dotted: map[string]bool{}, under: map[string]string{}}
			var mods []string
			for _, n := range w.Names() {
				m, ok := strings.CutSuffix(n, ".weight")
				if !ok || w.Tensor(n).Rank() < 2 {
					continue
				}
				mods = append(mods, m)
				ix.dotted[m] = true
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

// binding is one module of one adapter matched to the weight it updates.
type binding struct {
	mod    *Module
	comp   string
	name   string // the weight's name
	w      *tensor.Tensor
	factor float64 // scale x alpha/rank
}

// bind matches every module of the adapters to the target's weights and checks
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
			b.factor = a.Scale * m.Multiplier()
			out = append(out, b)
		}
	}
	return out, nil
}

// Check matches every module of the adapters to the target's weights, as
// Apply does first, and changes nothing.
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
	} else if !ix.dotted[name] {
		return binding{}, fmt.Errorf("%s: matches no layer of the model's %s (no %s.weight)", m.Key, m.Component, name)
	}
	wname := name + ".weight"
	w := ix.w.Tensor(wname)
	if err := fits(m, w.Shape()); err != nil {
		return binding{}, fmt.Errorf("%s: %w; the model's %s %s is %v", m.Key, err, m.Component, wname, w.Shape())
	}
	return binding{mod: m, comp: m.Component, name: wname, w: w}, nil
}

// fits checks that a module's factors update a weight of shape ws: a linear
// layer [out, in] or a convolution [out, in, kh, kw].
func fits(m *Module, ws []int) error {
	d := m.Down.Shape
	kernel := []int{1, 1}
	if len(d) == 4 {
		kernel = d[2:]
	}
	if m.Mid.Data != nil {
		kernel = m.Mid.Shape[2:]
	}
	got := append([]int{m.Out(), d[1]}, kernel...)
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

func describe(s []int, rank int) []int {
	if rank == 2 && s[2] == 1 && s[3] == 1 {
		return s[:2]
	}
	return s
}

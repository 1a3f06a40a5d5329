package lora

import (
	"fmt"
	"sort"

	"github.com/sdgo/sdgo/nn"
	"github.com/sdgo/sdgo/tensor"
)

// Set is a set of adapters made ready for a target by Prepare: every module
// matched to its layer and checked, its factors on the layer's backend in
// float32, with scale x alpha/rank as the adapter's nn.LowRank.Scale. Attach
// puts them on the layers, which then add them at run time; the layers'
// weights are neither read nor written.
type Set struct {
	adapters []Adapter
	layers   []attachment
	modules  int
	attached bool
}

// attachment is what a Set puts on one layer: one nn.LowRank per module that
// updates it, in the order of the adapters.
type attachment struct {
	comp, name string
	layer      nn.Adaptable
	adapters   []nn.LowRank
}

// Stats describes a Set.
type Stats struct {
	// Modules is the number of LoRA modules, Layers the number of layers
	// they update, Params the values of their factors and Bytes the memory
	// the factors take on the backend.
	Modules, Layers int
	Params, Bytes   int64
}

// Prepare makes a Set of the adapters for t. Everything is checked first
// (each module matches a layer of the right shape, the LoRA's family is the
// model's, scales are finite) and nothing is attached: on an error there is
// nothing to undo.
func Prepare(t *Target, adapters []Adapter) (*Set, error) {
	bs, err := t.bind(adapters)
	if err != nil {
		return nil, err
	}
	s := &Set{adapters: append([]Adapter(nil), adapters...), modules: len(bs)}
	byLayer := map[string]int{} // index in s.layers
	for _, b := range bs {
		id := b.comp + "/" + b.name
		i, ok := byLayer[id]
		if !ok {
			i = len(s.layers)
			byLayer[id] = i
			s.layers = append(s.layers, attachment{comp: b.comp, name: b.name, layer: b.layer})
		}
		lr, err := b.mod.lowRank(b.layer, b.factor)
		if err != nil {
			s.Release()
			return nil, fmt.Errorf("lora: %s: %s: %s %s: %w", b.file, b.mod.Key, b.comp, b.name, err)
		}
		s.layers[i].adapters = append(s.layers[i].adapters, lr)
	}
	sort.Slice(s.layers, func(i, j int) bool {
		if s.layers[i].comp != s.layers[j].comp {
			return s.layers[i].comp < s.layers[j].comp
		}
		return s.layers[i].name < s.layers[j].name
	})
	return s, nil
}

// lowRank puts the module's factors on the layer's backend in float32, shaped
// for the layer (2-D for a linear layer, 4-D for a convolution), and checks
// that the layer takes them.
func (m *Module) lowRank(layer nn.Adaptable, factor float64) (nn.LowRank, error) {
	b := layer.Backend()
	ws := layer.WeightShape()
	r, in, out := m.Rank, m.Down.Shape[1], m.Out()
	down, up := []int{r, in}, []int{out, r}
	if len(ws) == 4 {
		k := m.kernel()
		if m.Mid.Data != nil {
			k = []int{1, 1}
		}
		down, up = []int{r, in, k[0], k[1]}, []int{out, r, 1, 1}
	}
	lr := nn.LowRank{Scale: float32(factor)}
	var err error
	if lr.Down, err = tensor.FromFloat32(b, m.Down.Data, down...); err == nil {
		if lr.Up, err = tensor.FromFloat32(b, m.Up.Data, up...); err == nil && m.Mid.Data != nil {
			lr.Mid, err = tensor.FromFloat32(b, m.Mid.Data, m.Mid.Shape...)
		}
	}
	if err == nil {
		err = layer.CheckAdapter(lr)
	}
	if err != nil {
		release(lr)
		return nn.LowRank{}, err
	}
	return lr, nil
}

func release(lr nn.LowRank) {
	for _, t := range []*tensor.Tensor{lr.Down, lr.Up, lr.Mid} {
		if t != nil {
			t.Release()
		}
	}
}

// Attach sets the adapters of every layer the set updates to the set's,
// replacing those the layer had (one Set is attached to a network at a time:
// detach the one before). On an error it detaches what it attached. Attaching
// an attached Set, or a nil one, does nothing.
func (s *Set) Attach() error {
	if s == nil || s.attached {
		return nil
	}
	for i, a := range s.layers {
		if err := a.layer.SetAdapters(a.adapters...); err != nil {
			for _, done := range s.layers[:i] {
				_ = done.layer.SetAdapters()
			}
			return fmt.Errorf("lora: %s %s: %w", a.comp, a.name, err)
		}
	}
	s.attached = true
	return nil
}

// Detach removes every adapter from the layers the set updates, which then
// compute what they computed without LoRAs, bit for bit. Detaching a detached
// Set, or a nil one, does nothing.
func (s *Set) Detach() {
	if s == nil || !s.attached {
		return
	}
	for _, a := range s.layers {
		_ = a.layer.SetAdapters() // removing adapters cannot fail
	}
	s.attached = false
}

// Attached reports whether the set is attached.
func (s *Set) Attached() bool { return s != nil && s.attached }

// Adapters returns the adapters of the set.
func (s *Set) Adapters() []Adapter {
	if s == nil {
		return nil
	}
	return append([]Adapter(nil), s.adapters...)
}

// Stats describes the set (zero for a nil one).
func (s *Set) Stats() Stats {
	if s == nil {
		return Stats{}
	}
	st := Stats{Modules: s.modules, Layers: len(s.layers)}
	for _, a := range s.layers {
		for _, lr := range a.adapters {
			for _, t := range []*tensor.Tensor{lr.Down, lr.Up, lr.Mid} {
				if t != nil {
					st.Params += int64(t.Numel())
					st.Bytes += int64(t.Numel() * t.DType().Size())
				}
			}
		}
	}
	return st
}

// Release detaches the set and frees its factors. It is safe to call twice,
// and on a nil Set.
func (s *Set) Release() {
	if s == nil {
		return
	}
	s.Detach()
	for _, a := range s.layers {
		for _, lr := range a.adapters {
			release(lr)
		}
	}
	s.layers = nil
}

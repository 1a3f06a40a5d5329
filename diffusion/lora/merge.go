package lora

import (
	"fmt"
	"sort"

	"github.com/sdgo/sdgo/nn"
	"github.com/sdgo/sdgo/tensor"
)

// Delta returns a module's update as a float32 matrix [out, in·kh·kw]
// (row-major, the layout of the layer's weight): up @ down, with a Tucker core
// folded into down first. The multiplier (scale x alpha/rank) is not applied.
func (m *Module) Delta(b tensor.Backend) (*tensor.Tensor, error) {
	up, down, err := m.factors(b)
	if err != nil {
		return nil, err
	}
	defer up.Release()
	defer down.Release()
	return tensor.MatMul(up, down)
}

// factors returns up [out, rank] and down [rank, in·kh·kw] as F32 tensors on b.
func (m *Module) factors(b tensor.Backend) (up, down *tensor.Tensor, err error) {
	r := m.Rank
	d := m.Down.Data
	if m.Mid.Data != nil {
		d = foldMid(m.Mid.Data, m.Mid.Shape, d, m.Down.Shape[1], r)
	}
	if up, err = tensor.FromFloat32(b, m.Up.Data, m.Out(), r); err != nil {
		return nil, nil, err
	}
	if down, err = tensor.FromFloat32(b, d, r, m.In()); err != nil {
		up.Release()
		return nil, nil, err
	}
	return up, down, nil
}

// foldMid composes LoCon's Tucker form, a 1x1 convolution down [r, in] into
// the core mid [r, r, kh, kw], into one kernel [r, in, kh, kw]:
// out[a, i, y, x] = Σ_b mid[a, b, y, x]·down[b, i].
func foldMid(mid []float32, ms []int, down []float32, in, r int) []float32 {
	kk := ms[2] * ms[3]
	out := make([]float32, r*in*kk)
	for a := range r {
		for bb := range r {
			c := mid[(a*r+bb)*kk : (a*r+bb+1)*kk]
			drow := down[bb*in : (bb+1)*in]
			for i, dv := range drow {
				o := out[(a*in+i)*kk : (a*in+i+1)*kk]
				for k, cv := range c {
					o[k] += cv * dv
				}
			}
		}
	}
	return out
}

// merged returns w + Σ factor·delta of the modules that update w as a float32
// matrix [out, in·kh·kw], without changing w.
func merged(w *tensor.Tensor, bs []binding) (*tensor.Tensor, error) {
	b := w.Backend()
	out := w.Dim(0)
	flat, err := w.Reshape(out, w.Numel()/out)
	if err != nil {
		return nil, err
	}
	defer flat.Release()
	var acc *tensor.Tensor
	defer func() { acc.Release() }()
	for _, bd := range bs {
		d, err := bd.mod.Delta(b)
		if err != nil {
			return nil, err
		}
		s, err := tensor.Scale(d, float32(bd.factor))
		d.Release()
		if err != nil {
			return nil, err
		}
		if acc == nil {
			acc = s
			continue
		}
		sum, err := tensor.Add(acc, s)
		s.Release()
		if err != nil {
			return nil, err
		}
		acc.Release()
		acc = sum
	}
	return tensor.Add(flat, acc)
}

// Options tune Merge.
type Options struct {
	// Float32 holds the merged weights in float32 instead of the dtype of the
	// weights they replace. By default an F16 weight's merged value is
	// rounded to F16 (what diffusers' fuse_lora makes of an F16 model), which
	// moves it by up to half an F16 ulp from W + delta; in float32 the merged
	// layer computes what diffusers' unmerged adapters compute
	// (W x + scale x alpha/rank x up(down(x))) to float32 rounding, at 4
	// bytes instead of 2 for each changed parameter.
	Float32 bool
}

// Merged holds the weights that a set of adapters changes, merged: for each
// changed weight, W + Σ scale x alpha/rank x up @ down. The target's own
// weights are not changed; Target.Params serves these in their place.
type Merged struct {
	adapters []Adapter
	modules  int
	tensors  map[string]map[string]*tensor.Tensor // component -> weight name -> merged
}

// Stats describes a Merged.
type Stats struct {
	// Modules is the number of LoRA modules merged, Weights the number of
	// weight tensors they change, Params the values in those tensors and
	// Bytes the memory the merged tensors take.
	Modules, Weights int
	Params, Bytes    int64
}

// Merge computes the weights the adapters change. Everything is checked
// first (each module matches a layer of the right shape, the LoRA's family is
// the model's, scales are finite), and the target is never changed: on an
// error there is nothing to undo. Each update is computed in float32 on the
// weight's backend and, unless opts.Float32, rounded once (to nearest even)
// to the weight's dtype.
func Merge(t *Target, adapters []Adapter, opts Options) (*Merged, error) {
	bs, err := t.bind(adapters)
	if err != nil {
		return nil, err
	}
	type group struct {
		comp, name string
		w          *tensor.Tensor
		bs         []binding
	}
	groups := map[string]*group{}
	var order []*group
	for _, b := range bs {
		id := b.comp + "/" + b.name
		g := groups[id]
		if g == nil {
			g = &group{comp: b.comp, name: b.name, w: b.w}
			groups[id] = g
			order = append(order, g)
		}
		g.bs = append(g.bs, b)
	}
	sort.Slice(order, func(i, j int) bool {
		if order[i].comp != order[j].comp {
			return order[i].comp < order[j].comp
		}
		return order[i].name < order[j].name
	})
	m := &Merged{adapters: append([]Adapter(nil), adapters...), modules: len(bs), tensors: map[string]map[string]*tensor.Tensor{}}
	for _, g := range order {
		mt, err := mergeOne(g.w, g.bs, opts)
		if err != nil {
			m.Release()
			return nil, fmt.Errorf("lora: %s %s (%s): %w", g.comp, g.name, g.bs[0].mod.Key, err)
		}
		if m.tensors[g.comp] == nil {
			m.tensors[g.comp] = map[string]*tensor.Tensor{}
		}
		m.tensors[g.comp][g.name] = mt
	}
	return m, nil
}

// mergeOne makes the merged value of w, in w's shape and in float32 or w's dtype.
func mergeOne(w *tensor.Tensor, bs []binding, opts Options) (*tensor.Tensor, error) {
	f, err := merged(w, bs)
	if err != nil {
		return nil, err
	}
	defer f.Release()
	shaped, err := f.Reshape(w.Shape()...)
	if err != nil {
		return nil, err
	}
	if opts.Float32 || w.DType() == tensor.F32 {
		return shaped, nil
	}
	defer shaped.Release()
	return shaped.To(w.DType())
}

// Tensor returns the merged value of a component's weight, or nil when no
// adapter changes it. The Merged keeps it; it is valid until Release.
func (m *Merged) Tensor(component, name string) *tensor.Tensor {
	return m.tensors[component][name]
}

// Components lists the components whose weights change, sorted.
func (m *Merged) Components() []string {
	var out []string
	for c := range m.tensors {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// Adapters returns the adapters merged.
func (m *Merged) Adapters() []Adapter { return append([]Adapter(nil), m.adapters...) }

// Stats describes what the adapters change.
func (m *Merged) Stats() Stats {
	s := Stats{Modules: m.modules}
	for _, ts := range m.tensors {
		for _, t := range ts {
			s.Weights++
			s.Params += int64(t.Numel())
			s.Bytes += int64(t.Numel() * t.DType().Size())
		}
	}
	return s
}

// Release frees the merged tensors (the networks built over them keep their
// own claims). It is safe to call twice.
func (m *Merged) Release() {
	if m == nil {
		return
	}
	for _, ts := range m.tensors {
		for _, t := range ts {
			t.Release()
		}
	}
	m.tensors = nil
}

// Params returns the weights to build a component's network with: the merged
// weights of m where it has them and the recorded originals elsewhere (all
// of them when m is nil), each as its own view, which the network releases
// when it is released. Building the network again over these is how merged
// weights are put in place and taken out: the originals are never written to.
func (t *Target) Params(component string, m *Merged) nn.Params {
	var mt map[string]*tensor.Tensor
	if m != nil {
		mt = m.tensors[component]
	}
	return serve{comp: component, w: t.Components[component], merged: mt}
}

type serve struct {
	comp   string
	w      *Weights
	merged map[string]*tensor.Tensor
}

func (s serve) Tensor(name string) (*tensor.Tensor, error) {
	t := s.merged[name]
	if t == nil && s.w != nil {
		t = s.w.Tensor(name)
	}
	if t == nil {
		return nil, fmt.Errorf("lora: %s: no weight %q was recorded", s.comp, name)
	}
	return t.Reshape(t.Shape()...)
}

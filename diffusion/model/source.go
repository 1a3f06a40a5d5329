package model

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/sdgo/sdgo/diffusion/weights"
	"github.com/sdgo/sdgo/tensor"
)

// shared is a Source used by several views (the components of a single-file
// checkpoint); it is closed when the last view is.
type shared struct {
	src  weights.Source
	mu   sync.Mutex
	refs int
}

func newShared(src weights.Source) *shared { return &shared{src: src} }

func (s *shared) retain() {
	s.mu.Lock()
	s.refs++
	s.mu.Unlock()
}

func (s *shared) release() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs--
	if s.refs == 0 {
		return s.src.Close()
	}
	return nil
}

// op is how a mapped tensor is made from the stored one.
type op int

const (
	opCopy      op = iota // as stored
	opReshape             // the same elements in another shape (1x1 conv <-> linear)
	opRows                // rows [start, start+n) of the first dimension (fused q/k/v)
	opTranspose           // a 2-D transpose (OpenCLIP's text_projection)
)

// entry says where a mapped tensor comes from.
type entry struct {
	from     string
	op       op
	start, n int
	info     weights.Info // of the result
}

// mapped is a Source whose tensors are another Source's, renamed and, for a
// few, reshaped, sliced or transposed. It is how a single file's LDM/SGM keys
// and older diffusers or transformers layouts are presented under the names of
// a diffusers folder.
type mapped struct {
	src     *shared
	desc    string // what it reads, for messages: "model.safetensors (text_encoder)"
	names   []string
	entries map[string]entry

	mu     sync.Mutex
	closed bool
}

// mapping collects the entries of a mapped Source.
type mapping struct {
	entries map[string]entry
}

func newMapping() *mapping { return &mapping{entries: map[string]entry{}} }

// add maps name to e; two stored tensors may not claim one name.
func (m *mapping) add(name string, e entry) error {
	if prev, dup := m.entries[name]; dup {
		return fmt.Errorf("both %q and %q map to %q", prev.from, e.from, name)
	}
	m.entries[name] = e
	return nil
}

// build makes the Source; it retains src.
func (m *mapping) build(src *shared, desc string) *mapped {
	names := make([]string, 0, len(m.entries))
	for n := range m.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	src.retain()
	return &mapped{src: src, desc: desc, names: names, entries: m.entries}
}

// Names returns the tensor names, sorted.
func (m *mapped) Names() []string { return slices.Clone(m.names) }

// Info describes a tensor as Load returns it.
func (m *mapped) Info(name string) (weights.Info, bool) {
	e, ok := m.entries[name]
	if !ok {
		return weights.Info{}, false
	}
	return weights.Info{DType: e.info.DType, Shape: slices.Clone(e.info.Shape)}, true
}

// Load reads a tensor onto b, transformed as its entry says.
func (m *mapped) Load(name string, b tensor.Backend) (*tensor.Tensor, error) {
	e, ok := m.entries[name]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", m.desc, name)
	}
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("%s: tensor %q: source is closed", m.desc, name)
	}
	t, err := m.src.src.Load(e.from, b)
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %q (stored as %q): %w", m.desc, name, e.from, err)
	}
	var out *tensor.Tensor
	switch e.op {
	case opCopy:
		return t, nil
	case opReshape:
		out, err = t.Reshape(e.info.Shape...)
	case opRows:
		var v *tensor.Tensor
		if v, err = t.Narrow(0, e.start, e.n); err == nil {
			// A copy, so that the fused tensor is not kept alive by a slice of it.
			out, err = v.To(v.DType())
			v.Release()
		}
	case opTranspose:
		var v *tensor.Tensor
		if v, err = t.Transpose(0, 1); err == nil {
			out, err = v.To(v.DType())
			v.Release()
		}
	}
	t.Release()
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %q (from %q): %w", m.desc, name, e.from, err)
	}
	return out, nil
}

// Close releases the source behind the view; it may be called more than once.
func (m *mapped) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	return m.src.release()
}

// String describes the source.
func (m *mapped) String() string { return m.desc }

// union is a Source made of several (the shards of a checkpoint read by a
// reader that opens one file at a time).
type union struct {
	srcs  []weights.Source
	index map[string]weights.Source
	names []string
}

func newUnion(files []string, srcs []weights.Source) (*union, error) {
	u := &union{srcs: srcs, index: map[string]weights.Source{}}
	owner := map[string]string{}
	for i, s := range srcs {
		for _, n := range s.Names() {
			if prev, dup := owner[n]; dup {
				return nil, fmt.Errorf("tensor %q is in both %s and %s", n, prev, files[i])
			}
			owner[n] = files[i]
			u.index[n] = s
			u.names = append(u.names, n)
		}
	}
	sort.Strings(u.names)
	return u, nil
}

func (u *union) Names() []string { return slices.Clone(u.names) }

func (u *union) Info(name string) (weights.Info, bool) {
	s, ok := u.index[name]
	if !ok {
		return weights.Info{}, false
	}
	return s.Info(name)
}

func (u *union) Load(name string, b tensor.Backend) (*tensor.Tensor, error) {
	s, ok := u.index[name]
	if !ok {
		return nil, fmt.Errorf("no tensor %q in these shards", name)
	}
	return s.Load(name, b)
}

func (u *union) Close() error {
	var errs []error
	for _, s := range u.srcs {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// renamed wraps src (which it then owns) so that its tensors appear under
// rename(name); a name mapped to "" is dropped. It returns src itself when no
// name changes.
func renamed(src weights.Source, desc string, rename func(string) string) (weights.Source, error) {
	m := newMapping()
	changed := false
	for _, n := range src.Names() {
		to := rename(n)
		if to != n {
			changed = true
		}
		if to == "" {
			continue
		}
		info, _ := src.Info(n)
		if err := m.add(to, entry{from: n, info: info}); err != nil {
			return nil, fmt.Errorf("%s: %w", desc, err)
		}
	}
	if !changed {
		return src, nil
	}
	return m.build(newShared(src), desc), nil
}

// describeFiles names the files behind a component for messages.
func describeFiles(files []string) string {
	if len(files) == 1 {
		return files[0]
	}
	return strings.Join(files, ", ")
}

// Package weights gives model code one view of named tensors, whatever holds them:
// safetensors files (sharded or not), PyTorch pickles, single-file checkpoints
// whose keys are mapped to diffusers names. A Source is read lazily: nothing is
// loaded until Load is called, and weights keep the dtype they are stored in.
package weights

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/nn"
	"github.com/sdgo/sdgo/tensor"
)

// Info describes a stored tensor: its dtype in the file (safetensors spelling:
// "F32", "F16", "BF16", "F64", "I64", ...) and shape.
type Info struct {
	DType safetensors.DType
	Shape []int
}

// Source is a read-only set of named tensors. Implementations are safe for
// concurrent Load calls.
type Source interface {
	// Names returns the tensor names, sorted.
	Names() []string
	// Info describes a tensor; ok is false if there is none of that name.
	Info(name string) (info Info, ok bool)
	// Load reads a tensor onto b. F32, F16 and BF16 keep their dtype; F64 and the
	// integer types become F32.
	Load(name string, b tensor.Backend) (*tensor.Tensor, error)
	// Close releases the files behind the source.
	Close() error
}

// Safetensors is a Source over one or more safetensors files (the shards of one
// checkpoint). A name present in two files is an error at construction.
type Safetensors struct {
	files []*safetensors.File
	index map[string]*safetensors.File
	names []string
}

// OpenSafetensors opens the given files (shards) as one Source.
func OpenSafetensors(paths ...string) (*Safetensors, error) {
	var files []*safetensors.File
	for _, p := range paths {
		f, err := safetensors.Open(p)
		if err != nil {
			for _, g := range files {
				g.Close()
			}
			return nil, err
		}
		files = append(files, f)
	}
	s, err := NewSafetensors(files...)
	if err != nil {
		for _, g := range files {
			g.Close()
		}
	}
	return s, err
}

// NewSafetensors makes a Source of already opened files; Close closes them.
func NewSafetensors(files ...*safetensors.File) (*Safetensors, error) {
	s := &Safetensors{files: files, index: map[string]*safetensors.File{}}
	for _, f := range files {
		for _, n := range f.Names() {
			if g, dup := s.index[n]; dup {
				return nil, fmt.Errorf("weights: tensor %q is in both %s and %s", n, g.Name(), f.Name())
			}
			s.index[n] = f
			s.names = append(s.names, n)
		}
	}
	sort.Strings(s.names)
	return s, nil
}

// Names returns the tensor names, sorted.
func (s *Safetensors) Names() []string { return slices.Clone(s.names) }

// Info describes a tensor.
func (s *Safetensors) Info(name string) (Info, bool) {
	f, ok := s.index[name]
	if !ok {
		return Info{}, false
	}
	i, _ := f.Info(name)
	return Info{DType: i.DType, Shape: i.Shape}, true
}

// Load reads a tensor onto b.
func (s *Safetensors) Load(name string, b tensor.Backend) (*tensor.Tensor, error) {
	f, ok := s.index[name]
	if !ok {
		return nil, fmt.Errorf("weights: no tensor %q in %s", name, s.describe())
	}
	i, _ := f.Info(name)
	if t, ok := borrowCPU(f, name, i, b); ok {
		return t, nil
	}
	raw, err := f.Bytes(name)
	if err != nil {
		return nil, err
	}
	t, err := FromBytes(b, i.DType, i.Shape, raw)
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", f.Name(), name, err)
	}
	return t, nil
}

func (s *Safetensors) describe() string {
	var names []string
	for _, f := range s.files {
		names = append(names, f.Name())
	}
	return strings.Join(names, ", ")
}

// Close closes the files.
func (s *Safetensors) Close() error {
	var first error
	for _, f := range s.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// FromBytes makes a tensor on b from little-endian bytes of the given stored dtype:
// F32, F16 and BF16 keep their type, F64 and integers become F32.
func FromBytes(b tensor.Backend, dt safetensors.DType, shape []int, raw []byte) (*tensor.Tensor, error) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	if es := dt.Size(); es == 0 || len(raw) != n*es {
		return nil, fmt.Errorf("%d bytes for %s%v", len(raw), dt, shape)
	}
	le := binary.LittleEndian
	// On the CPU the tensor's own storage is filled in place, so that loading a
	// model does not briefly hold every weight twice.
	if t, ok := fillCPU(b, dt, shape, raw); ok {
		return t, nil
	}
	switch dt {
	case safetensors.F16, safetensors.BF16:
		u := make([]uint16, n)
		for i := range u {
			u[i] = le.Uint16(raw[2*i:])
		}
		tdt := tensor.F16
		if dt == safetensors.BF16 {
			tdt = tensor.BF16
		}
		return tensor.FromBits(b, tdt, u, shape...)
	}
	f := make([]float32, n)
	switch dt {
	case safetensors.F32:
		for i := range f {
			f[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
	case safetensors.F64:
		for i := range f {
			f[i] = float32(math.Float64frombits(le.Uint64(raw[8*i:])))
		}
	case safetensors.I64:
		for i := range f {
			f[i] = float32(int64(le.Uint64(raw[8*i:])))
		}
	case safetensors.I32:
		for i := range f {
			f[i] = float32(int32(le.Uint32(raw[4*i:])))
		}
	case safetensors.I16:
		for i := range f {
			f[i] = float32(int16(le.Uint16(raw[2*i:])))
		}
	case safetensors.I8:
		for i := range f {
			f[i] = float32(int8(raw[i]))
		}
	case safetensors.U8, safetensors.Bool:
		for i := range f {
			f[i] = float32(raw[i])
		}
	default:
		return nil, fmt.Errorf("cannot load %s as a tensor", dt)
	}
	return tensor.FromFloat32(b, f, shape...)
}

// Params adapts a Source to the nn.Params that model code loads from: each
// tensor is read onto b when the model asks for it.
func Params(src Source, b tensor.Backend) nn.Params { return params{src, b} }

type params struct {
	src Source
	b   tensor.Backend
}

func (p params) Tensor(name string) (*tensor.Tensor, error) { return p.src.Load(name, p.b) }

// Tracked is Params that remembers what it loaded, so that a network's weights
// can be evicted together (Evict). Its methods are safe for concurrent use.
type Tracked struct {
	params
	mu     sync.Mutex
	loaded []*tensor.Tensor
}

// Track is Params(src, b) remembering what it loads.
func Track(src Source, b tensor.Backend) *Tracked { return &Tracked{params: params{src, b}} }

// Tensor loads a tensor, as Params does, and remembers it.
func (p *Tracked) Tensor(name string) (*tensor.Tensor, error) {
	t, err := p.params.Tensor(name)
	if err == nil {
		p.mu.Lock()
		p.loaded = append(p.loaded, t)
		p.mu.Unlock()
	}
	return t, err
}

// Evict drops from resident memory the pages of every loaded tensor that is a
// view of a memory-mapped file (tensor.Evict): they are read again from the
// page cache, or the file, when next used. Tensors released since loading are
// skipped.
func (p *Tracked) Evict() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.loaded {
		tensor.Evict(t)
	}
}

// Forget drops the references to the loaded tensors (after the network that
// uses them is released).
func (p *Tracked) Forget() {
	p.mu.Lock()
	p.loaded = nil
	p.mu.Unlock()
}

// borrowCPU makes a tensor on a CPU backend that uses a memory-mapped file's
// bytes in place (tensor.CPU.Borrow): F32, F16 and BF16 weights, as stored,
// when the file is mapped and the bytes are aligned. The tensor keeps the
// mapping alive after the file is closed. ok is false when it cannot.
func borrowCPU(f *safetensors.File, name string, i safetensors.Info, b tensor.Backend) (*tensor.Tensor, bool) {
	c, isCPU := b.(*tensor.CPU)
	if !isCPU || !f.Mapped() {
		return nil, false
	}
	tdt, ok := map[safetensors.DType]tensor.DType{safetensors.F32: tensor.F32, safetensors.F16: tensor.F16, safetensors.BF16: tensor.BF16}[i.DType]
	if !ok || i.Numel() == 0 {
		return nil, false
	}
	raw, release, err := f.Share(name)
	if err != nil {
		return nil, false
	}
	t, ok := c.BorrowTensor(tdt, raw, release, i.Shape...)
	if !ok {
		release()
		return nil, false
	}
	return t, true
}

// fillCPU makes an F32, F16 or BF16 tensor on a CPU backend by decoding raw
// straight into its storage; ok is false for other backends and dtypes.
func fillCPU(b tensor.Backend, dt safetensors.DType, shape []int, raw []byte) (*tensor.Tensor, bool) {
	if _, cpu := b.(*tensor.CPU); !cpu {
		return nil, false
	}
	tdt, ok := map[safetensors.DType]tensor.DType{safetensors.F32: tensor.F32, safetensors.F16: tensor.F16, safetensors.BF16: tensor.BF16}[dt]
	if !ok {
		return nil, false
	}
	// Weights live as long as their model: outside the Go heap, so that they do
	// not double the garbage collector's heap target (tensor.CPU.AllocLongLived).
	t, err := tensor.NewLongLived(b, tdt, shape...)
	if err != nil {
		return nil, false
	}
	s := t.Storage().(*tensor.CPUStorage)
	le := binary.LittleEndian
	if tdt == tensor.F32 {
		for i := range s.F32 {
			s.F32[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
	} else {
		for i := range s.U16 {
			s.U16[i] = le.Uint16(raw[2*i:])
		}
	}
	return t, true
}

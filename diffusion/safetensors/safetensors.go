// Package safetensors reads and writes the safetensors format
// (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
// length, a JSON header naming each tensor's dtype, shape and byte range, and the
// tensors' bytes.
//
// Files are memory-mapped where the platform allows, and nothing is read until a
// tensor is asked for, so opening a 7 GB checkpoint costs a header parse. The header
// is validated before anything is used: its length is bounded, it must be valid
// JSON, every dtype must be known, every shape's size must match its byte range,
// and ranges must lie inside the file and not overlap. An invalid file gives an
// error naming the file, the tensor and what was expected.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/x448/float16"
)

// DType is a safetensors element type, spelled as in the header ("F16", "BF16", ...).
type DType string

// The element types of the format.
const (
	F64    DType = "F64"
	F32    DType = "F32"
	F16    DType = "F16"
	BF16   DType = "BF16"
	I64    DType = "I64"
	I32    DType = "I32"
	I16    DType = "I16"
	I8     DType = "I8"
	U64    DType = "U64"
	U32    DType = "U32"
	U16    DType = "U16"
	U8     DType = "U8"
	Bool   DType = "BOOL"
	F8E4M3 DType = "F8_E4M3"
	F8E5M2 DType = "F8_E5M2"
)

// Size returns the size of one element in bytes, or 0 for an unknown type.
func (d DType) Size() int {
	switch d {
	case F64, I64, U64:
		return 8
	case F32, I32, U32:
		return 4
	case F16, BF16, I16, U16:
		return 2
	case I8, U8, Bool, F8E4M3, F8E5M2:
		return 1
	}
	return 0
}

// MaxHeaderSize bounds the JSON header (100 MB, as the reference implementation
// does), so that a lying length cannot make a reader allocate without limit.
const MaxHeaderSize = 100 << 20

// ErrFormat is wrapped by every error about a malformed file.
var ErrFormat = errors.New("invalid safetensors file")

// Info describes one tensor of a file.
type Info struct {
	Name  string
	DType DType
	Shape []int
	// Begin and End are the tensor's byte range, relative to the start of the data
	// section (just after the header).
	Begin, End int64
}

// Numel returns the number of elements.
func (i Info) Numel() int {
	n := 1
	for _, d := range i.Shape {
		n *= d
	}
	return n
}

// File is a parsed safetensors file. Its methods are safe for concurrent use.
type File struct {
	name     string
	data     []byte // the data section
	tensors  map[string]Info
	names    []string // sorted
	metadata map[string]string
	closer   func() error
	// mapping is the file's memory map (nil when the file was read into the
	// heap), shared with the tensors that use its bytes in place (Share).
	mapping *mapping
}

// mapping is a file's memory map, shared by its File and by the users of Share;
// the last of them to let go unmaps it.
type mapping struct {
	data  []byte
	refs  atomic.Int64
	unmap func([]byte) error
}

func newMapping(data []byte, unmap func([]byte) error) *mapping {
	m := &mapping{data: data, unmap: unmap}
	m.refs.Store(1)
	return m
}

func (m *mapping) release() error {
	if m.refs.Add(-1) == 0 {
		return m.unmap(m.data)
	}
	return nil
}

// Parse reads a safetensors file from memory; name is used in error messages. The
// File keeps b (without copying it).
func Parse(name string, b []byte) (*File, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("%s: %w: %d bytes, too short for the 8-byte header length", name, ErrFormat, len(b))
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("%s: %w: header length %d exceeds the %d-byte limit", name, ErrFormat, n, MaxHeaderSize)
	}
	if n > uint64(len(b)-8) {
		return nil, fmt.Errorf("%s: %w: header length %d but only %d bytes follow (truncated?)", name, ErrFormat, n, len(b)-8)
	}
	f, err := parseHeader(name, b[8:8+n], int64(len(b))-8-int64(n))
	if err != nil {
		return nil, err
	}
	f.data = b[8+n:]
	return f, nil
}

type rawInfo struct {
	DType       *string  `json:"dtype"`
	Shape       *[]int64 `json:"shape"`
	DataOffsets *[]int64 `json:"data_offsets"`
}

func parseHeader(name string, h []byte, dataLen int64) (*File, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(h))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%s: %w: header is not a JSON object: %v", name, ErrFormat, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: %w: trailing data after the JSON header", name, ErrFormat)
	}
	// The format pads the header with spaces; anything else after the object is wrong.
	if rest := h[dec.InputOffset():]; len(bytes.TrimRight(rest, " \t\r\n\x00")) != 0 {
		return nil, fmt.Errorf("%s: %w: trailing bytes after the JSON header", name, ErrFormat)
	}
	f := &File{name: name, tensors: make(map[string]Info, len(raw))}
	for key, msg := range raw {
		if key == "__metadata__" {
			if err := json.Unmarshal(msg, &f.metadata); err != nil {
				return nil, fmt.Errorf("%s: %w: __metadata__ must map strings to strings: %v", name, ErrFormat, err)
			}
			continue
		}
		var r rawInfo
		d := json.NewDecoder(bytes.NewReader(msg))
		d.DisallowUnknownFields()
		if err := d.Decode(&r); err != nil {
			return nil, fmt.Errorf("%s: %w: tensor %q: %v", name, ErrFormat, key, err)
		}
		if r.DType == nil || r.Shape == nil || r.DataOffsets == nil {
			return nil, fmt.Errorf("%s: %w: tensor %q needs dtype, shape and data_offsets", name, ErrFormat, key)
		}
		info := Info{Name: key, DType: DType(*r.DType)}
		es := info.DType.Size()
		if es == 0 {
			return nil, fmt.Errorf("%s: %w: tensor %q has unknown dtype %q", name, ErrFormat, key, *r.DType)
		}
		if len(*r.DataOffsets) != 2 {
			return nil, fmt.Errorf("%s: %w: tensor %q: data_offsets must be [begin, end], got %v", name, ErrFormat, key, *r.DataOffsets)
		}
		info.Begin, info.End = (*r.DataOffsets)[0], (*r.DataOffsets)[1]
		if info.Begin < 0 || info.End < info.Begin || info.End > dataLen {
			return nil, fmt.Errorf("%s: %w: tensor %q: byte range [%d, %d) outside the %d-byte data section", name, ErrFormat, key, info.Begin, info.End, dataLen)
		}
		size := int64(es)
		for _, dim := range *r.Shape {
			if dim < 0 {
				return nil, fmt.Errorf("%s: %w: tensor %q: negative dimension in shape %v", name, ErrFormat, key, *r.Shape)
			}
			if dim > 0 && size > math.MaxInt64/dim {
				return nil, fmt.Errorf("%s: %w: tensor %q: shape %v overflows", name, ErrFormat, key, *r.Shape)
			}
			size *= dim
			info.Shape = append(info.Shape, int(dim))
		}
		if info.Shape == nil {
			info.Shape = []int{}
		}
		if size != info.End-info.Begin {
			return nil, fmt.Errorf("%s: %w: tensor %q: shape %v of %s is %d bytes, but its byte range [%d, %d) holds %d", name, ErrFormat, key, info.Shape, info.DType, size, info.Begin, info.End, info.End-info.Begin)
		}
		f.tensors[key] = info
		f.names = append(f.names, key)
	}
	sort.Strings(f.names)
	// No two tensors may share bytes.
	byBegin := slices.Clone(f.names)
	sort.Slice(byBegin, func(i, j int) bool {
		a, b := f.tensors[byBegin[i]], f.tensors[byBegin[j]]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		return a.End < b.End
	})
	for i := 1; i < len(byBegin); i++ {
		prev, cur := f.tensors[byBegin[i-1]], f.tensors[byBegin[i]]
		if cur.Begin < prev.End && cur.End > cur.Begin && prev.End > prev.Begin {
			return nil, fmt.Errorf("%s: %w: tensors %q [%d, %d) and %q [%d, %d) overlap", name, ErrFormat, prev.Name, prev.Begin, prev.End, cur.Name, cur.Begin, cur.End)
		}
	}
	return f, nil
}

// Name returns the name the file was opened with.
func (f *File) Name() string { return f.name }

// Names returns the tensor names in sorted order.
func (f *File) Names() []string { return slices.Clone(f.names) }

// Len returns the number of tensors.
func (f *File) Len() int { return len(f.names) }

// Metadata returns the __metadata__ map (nil if the file has none).
func (f *File) Metadata() map[string]string { return f.metadata }

// Info returns the description of a tensor.
func (f *File) Info(name string) (Info, bool) {
	i, ok := f.tensors[name]
	if ok {
		i.Shape = slices.Clone(i.Shape)
	}
	return i, ok
}

// Has reports whether the file holds a tensor of that name.
func (f *File) Has(name string) bool { _, ok := f.tensors[name]; return ok }

func (f *File) lookup(name string) (Info, error) {
	i, ok := f.tensors[name]
	if !ok {
		return Info{}, fmt.Errorf("%s: no tensor %q", f.name, name)
	}
	return i, nil
}

// Bytes returns the raw little-endian bytes of a tensor, without copying: for a
// memory-mapped file they are valid until Close and must not be written.
func (f *File) Bytes(name string) ([]byte, error) {
	i, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	return f.data[i.Begin:i.End:i.End], nil
}

// Share returns a tensor's raw little-endian bytes without copying, like Bytes,
// and keeps them valid after Close until release is called (once; later calls
// do nothing). A memory-mapped file is unmapped when it is closed and every
// shared tensor released, so that tensors can use a checkpoint's bytes in
// place for as long as they live. The bytes must not be written: a mapped
// file's are read-only memory.
func (f *File) Share(name string) (b []byte, release func(), err error) {
	i, err := f.lookup(name)
	if err != nil {
		return nil, nil, err
	}
	if f.mapping != nil && f.closer == nil {
		return nil, nil, fmt.Errorf("%s: tensor %q: the file is closed", f.name, name)
	}
	b = f.data[i.Begin:i.End:i.End]
	if f.mapping == nil {
		// Heap memory: the slice keeps it alive.
		return b, func() {}, nil
	}
	m := f.mapping
	m.refs.Add(1)
	return b, sync.OnceFunc(func() { _ = m.release() }), nil
}

// Mapped reports whether the file's bytes are a memory map of the file (rather
// than a copy in memory), so that Share costs no memory.
func (f *File) Mapped() bool { return f.mapping != nil }

// Float32s returns a tensor's elements converted to float32; it accepts the float
// types and the integer types (converted by value).
func (f *File) Float32s(name string) ([]float32, error) {
	i, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	b := f.data[i.Begin:i.End]
	out := make([]float32, i.Numel())
	le := binary.LittleEndian
	switch i.DType {
	case F32:
		for k := range out {
			out[k] = math.Float32frombits(le.Uint32(b[4*k:]))
		}
	case F64:
		for k := range out {
			out[k] = float32(math.Float64frombits(le.Uint64(b[8*k:])))
		}
	case F16:
		for k := range out {
			out[k] = float16.Frombits(le.Uint16(b[2*k:])).Float32()
		}
	case BF16:
		for k := range out {
			out[k] = math.Float32frombits(uint32(le.Uint16(b[2*k:])) << 16)
		}
	case I64:
		for k := range out {
			out[k] = float32(int64(le.Uint64(b[8*k:])))
		}
	case I32:
		for k := range out {
			out[k] = float32(int32(le.Uint32(b[4*k:])))
		}
	case I16:
		for k := range out {
			out[k] = float32(int16(le.Uint16(b[2*k:])))
		}
	case I8:
		for k := range out {
			out[k] = float32(int8(b[k]))
		}
	case U8, Bool:
		for k := range out {
			out[k] = float32(b[k])
		}
	default:
		return nil, fmt.Errorf("%s: tensor %q: cannot convert %s to float32", f.name, name, i.DType)
	}
	return out, nil
}

// Int64s returns an integer tensor's elements (I64, I32, I16, I8, U8, U16, U32, BOOL).
func (f *File) Int64s(name string) ([]int64, error) {
	i, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	b := f.data[i.Begin:i.End]
	out := make([]int64, i.Numel())
	le := binary.LittleEndian
	switch i.DType {
	case I64:
		for k := range out {
			out[k] = int64(le.Uint64(b[8*k:]))
		}
	case I32:
		for k := range out {
			out[k] = int64(int32(le.Uint32(b[4*k:])))
		}
	case U32:
		for k := range out {
			out[k] = int64(le.Uint32(b[4*k:]))
		}
	case I16:
		for k := range out {
			out[k] = int64(int16(le.Uint16(b[2*k:])))
		}
	case U16:
		for k := range out {
			out[k] = int64(le.Uint16(b[2*k:]))
		}
	case I8:
		for k := range out {
			out[k] = int64(int8(b[k]))
		}
	case U8, Bool:
		for k := range out {
			out[k] = int64(b[k])
		}
	default:
		return nil, fmt.Errorf("%s: tensor %q: %s is not an integer type", f.name, name, i.DType)
	}
	return out, nil
}

// Uint16s returns the bit patterns of an F16 or BF16 tensor.
func (f *File) Uint16s(name string) ([]uint16, error) {
	i, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	if i.DType != F16 && i.DType != BF16 && i.DType != U16 && i.DType != I16 {
		return nil, fmt.Errorf("%s: tensor %q: %s is not a 16-bit type", f.name, name, i.DType)
	}
	b := f.data[i.Begin:i.End]
	out := make([]uint16, i.Numel())
	for k := range out {
		out[k] = binary.LittleEndian.Uint16(b[2*k:])
	}
	return out, nil
}

// Close releases the file's mapping; Bytes results become invalid.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	c := f.closer
	f.closer = nil
	f.data = nil
	return c()
}

// String describes the file.
func (f *File) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s (%d tensors)", f.name, len(f.names))
	return sb.String()
}

package safetensors

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
)

// StreamWriter writes a safetensors file one tensor at a time, so that a
// checkpoint larger than memory can be written while its tensors are made: the
// header, built from every tensor's name, dtype and shape, is written first,
// then each tensor's bytes, in name order (the order Write uses, so both give
// the same file for the same tensors).
//
// Its methods are not safe for concurrent use.
type StreamWriter struct {
	bw      *bufio.Writer
	tensors []Info // sorted by name, with their byte ranges
	next    int    // index of the tensor whose bytes come next
	err     error  // the first error; every later call returns it
}

// NewStreamWriter checks the tensors' names, dtypes and shapes (Begin and End
// are ignored: the writer lays the tensors out in name order), writes the
// header and metadata to w and returns the writer, which then expects each
// tensor's bytes through WriteTensor in name order (Next says which).
func NewStreamWriter(w io.Writer, tensors []Info, metadata map[string]string) (*StreamWriter, error) {
	ts := make([]Info, len(tensors))
	copy(ts, tensors)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	header := make(map[string]any, len(ts)+1)
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off int64
	for i := range ts {
		t := &ts[i]
		if i > 0 && ts[i-1].Name == t.Name {
			return nil, fmt.Errorf("safetensors.NewStreamWriter: tensor %q given twice", t.Name)
		}
		if t.Name == "__metadata__" {
			return nil, fmt.Errorf("safetensors.NewStreamWriter: %q is reserved", t.Name)
		}
		n := int64(t.DType.Size())
		if n == 0 {
			return nil, fmt.Errorf("safetensors.NewStreamWriter: tensor %q: unknown dtype %q", t.Name, t.DType)
		}
		for _, d := range t.Shape {
			if d < 0 {
				return nil, fmt.Errorf("safetensors.NewStreamWriter: tensor %q: negative dimension in %v", t.Name, t.Shape)
			}
			n *= int64(d)
		}
		t.Shape = slices.Clone(t.Shape)
		if t.Shape == nil {
			t.Shape = []int{}
		}
		t.Begin, t.End = off, off+n
		header[t.Name] = map[string]any{"dtype": t.DType, "shape": t.Shape, "data_offsets": []int64{t.Begin, t.End}}
		off += n
	}
	h, err := json.Marshal(header)
	if err != nil {
		return nil, fmt.Errorf("safetensors.NewStreamWriter: %w", err)
	}
	if len(h) > MaxHeaderSize {
		return nil, fmt.Errorf("safetensors.NewStreamWriter: header of %d bytes exceeds the %d-byte limit", len(h), MaxHeaderSize)
	}
	// Pad the header with spaces so that the data starts 8-byte aligned.
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	s := &StreamWriter{bw: bufio.NewWriterSize(w, 1<<20), tensors: ts}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(h)))
	if _, err := s.bw.Write(lenBuf[:]); err != nil {
		return nil, fmt.Errorf("safetensors: writing the header: %w", err)
	}
	if _, err := s.bw.Write(h); err != nil {
		return nil, fmt.Errorf("safetensors: writing the header: %w", err)
	}
	return s, nil
}

// Tensors returns the tensors in the order their bytes are expected, with the
// byte ranges the header gives them.
func (s *StreamWriter) Tensors() []Info {
	out := make([]Info, len(s.tensors))
	for i, t := range s.tensors {
		t.Shape = slices.Clone(t.Shape)
		out[i] = t
	}
	return out
}

// Next describes the tensor whose bytes WriteTensor expects next; ok is false
// once every tensor is written.
func (s *StreamWriter) Next() (info Info, ok bool) {
	if s.next >= len(s.tensors) {
		return Info{}, false
	}
	t := s.tensors[s.next]
	t.Shape = slices.Clone(t.Shape)
	return t, true
}

// WriteTensor writes the little-endian bytes of the next tensor, which must be
// called name and hold exactly the bytes its dtype and shape take. After an
// error the file is unusable and every later call fails.
func (s *StreamWriter) WriteTensor(name string, data []byte) error {
	if s.err != nil {
		return s.err
	}
	t, ok := s.Next()
	switch {
	case !ok:
		return fmt.Errorf("safetensors: tensor %q written after the last one", name)
	case t.Name != name:
		return fmt.Errorf("safetensors: tensor %q written where %q comes next (tensors go in name order)", name, t.Name)
	case int64(len(data)) != t.End-t.Begin:
		return fmt.Errorf("safetensors: tensor %q: shape %v of %s needs %d bytes, got %d", name, t.Shape, t.DType, t.End-t.Begin, len(data))
	}
	if _, err := s.bw.Write(data); err != nil {
		s.err = fmt.Errorf("safetensors: writing tensor %q: %w", name, err)
		return s.err
	}
	s.next++
	return nil
}

// Close flushes what is buffered; it fails if a tensor was not written, since
// the file would be truncated. It does not close the underlying writer.
func (s *StreamWriter) Close() error {
	if s.err != nil {
		return s.err
	}
	if t, ok := s.Next(); ok {
		s.err = fmt.Errorf("safetensors: closed with %d of %d tensors unwritten, from %q", len(s.tensors)-s.next, len(s.tensors), t.Name)
		return s.err
	}
	if err := s.bw.Flush(); err != nil {
		s.err = fmt.Errorf("safetensors: %w", err)
		return s.err
	}
	return nil
}

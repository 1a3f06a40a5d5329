package convert

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"slices"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/diffusion/weights"
	"github.com/sdgo/sdgo/tensor"
)

// recipe says how one output tensor is made from a component's weights.
type recipe struct {
	name string
	src  weights.Source
	// from names the source tensors; several are concatenated along their first
	// dimension (OpenCLIP's fused in_proj from q, k and v).
	from      []string
	transpose bool // a 2-D transpose (OpenCLIP's text_projection)
	shape     []int
	stored    safetensors.DType // the source tensors' dtype
}

// identity is the recipe that copies a tensor under its own name.
func identity(src weights.Source, name string) (recipe, error) {
	info, ok := src.Info(name)
	if !ok {
		return recipe{}, fmt.Errorf("tensor %q is listed but has no description", name)
	}
	return recipe{name: name, src: src, from: []string{name}, shape: info.Shape, stored: info.DType}, nil
}

// writer streams recipes into safetensors files.
type writer struct {
	ctx         context.Context
	dtype       DType
	cpu         *tensor.CPU
	res         *Result
	done, total int
	progress    func(done, total int)
}

func newWriter(ctx context.Context, dt DType, opts Options, res *Result) *writer {
	if res.DTypes == nil {
		res.DTypes = map[safetensors.DType]int64{}
	}
	return &writer{ctx: ctx, dtype: dt, cpu: tensor.NewCPU(), res: res, progress: opts.Progress}
}

// outDType is the dtype a stored dtype is written in.
func (w *writer) outDType(stored safetensors.DType) (safetensors.DType, error) {
	switch stored {
	case safetensors.F32, safetensors.F16, safetensors.BF16, safetensors.F64:
		switch w.dtype {
		case F16:
			return safetensors.F16, nil
		case BF16:
			return safetensors.BF16, nil
		case F32:
			return safetensors.F32, nil
		}
		if stored == safetensors.F64 {
			return safetensors.F32, nil // the engine reads F64 as F32
		}
		return stored, nil
	case safetensors.I64, safetensors.I32, safetensors.I16, safetensors.I8, safetensors.U8, safetensors.Bool:
		return stored, nil
	}
	return "", fmt.Errorf("tensors of dtype %s cannot be converted (only float and signed integer tensors)", stored)
}

// layout describes the tensors that recipes make, in their output dtypes.
func (w *writer) layout(rs []recipe) ([]safetensors.Info, error) {
	infos := make([]safetensors.Info, 0, len(rs))
	for _, r := range rs {
		out, err := w.outDType(r.stored)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", r.name, err)
		}
		infos = append(infos, safetensors.Info{Name: r.name, DType: out, Shape: slices.Clone(r.shape)})
	}
	return infos, nil
}

// dominant is the float dtype that holds most of the parameters of infos.
func dominant(infos []safetensors.Info) safetensors.DType {
	count := map[safetensors.DType]int{}
	for _, i := range infos {
		count[i.DType] += i.Numel()
	}
	best := safetensors.F32
	for _, d := range []safetensors.DType{safetensors.F16, safetensors.BF16} {
		if count[d] > count[best] {
			best = d
		}
	}
	return best
}

// writeFile writes the tensors of recipes, described by infos (from layout),
// to a new file at path (it must not exist), one tensor at a time.
func (w *writer) writeFile(path string, rs []recipe, infos []safetensors.Info) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	return w.writeTo(f, rs, infos)
}

// writeTo writes the tensors of recipes into f and syncs it.
func (w *writer) writeTo(f *os.File, rs []recipe, infos []safetensors.Info) error {
	sw, err := safetensors.NewStreamWriter(f, infos, map[string]string{"format": "pt"})
	if err != nil {
		return err
	}
	byName := make(map[string]recipe, len(rs))
	for _, r := range rs {
		byName[r.name] = r
	}
	for {
		info, ok := sw.Next()
		if !ok {
			break
		}
		if err := w.ctx.Err(); err != nil {
			return err
		}
		r := byName[info.Name]
		data, err := w.produce(r, info)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", r.name, err)
		}
		if err := sw.WriteTensor(info.Name, data); err != nil {
			return err
		}
		w.res.Tensors++
		w.res.Bytes += int64(len(data))
		w.res.DTypes[info.DType] += int64(info.Numel())
		if info.DType != r.stored {
			w.res.Converted++
		}
		w.done++
		if w.progress != nil {
			w.progress(w.done, w.total)
		}
	}
	if err := sw.Close(); err != nil {
		return err
	}
	return f.Sync()
}

// produce makes the bytes of one output tensor.
func (w *writer) produce(r recipe, out safetensors.Info) ([]byte, error) {
	buf := make([]byte, 0, out.End-out.Begin)
	for _, n := range r.from {
		t, err := r.src.Load(n, w.cpu)
		if err != nil {
			return nil, err
		}
		buf, err = w.encode(buf, t, r, n, out.DType)
		t.Release()
		if err != nil {
			return nil, err
		}
	}
	if int64(len(buf)) != out.End-out.Begin {
		return nil, fmt.Errorf("made %d bytes for %s%v (want %d)", len(buf), out.DType, out.Shape, out.End-out.Begin)
	}
	return buf, nil
}

// tensorDType is package tensor's name of a float dtype.
func tensorDType(d safetensors.DType) (tensor.DType, bool) {
	switch d {
	case safetensors.F32:
		return tensor.F32, true
	case safetensors.F16:
		return tensor.F16, true
	case safetensors.BF16:
		return tensor.BF16, true
	}
	return 0, false
}

// encode appends the little-endian bytes of t (read from the source tensor
// from), transformed as r says, in dtype out.
func (w *writer) encode(buf []byte, t *tensor.Tensor, r recipe, from string, out safetensors.DType) ([]byte, error) {
	if r.transpose {
		if t.Rank() != 2 {
			return nil, fmt.Errorf("%q has shape %v; want a matrix to transpose", from, t.Shape())
		}
		v, err := t.Transpose(0, 1)
		if err != nil {
			return nil, err
		}
		defer v.Release()
		t = v
	}
	le := binary.LittleEndian
	tdt, isFloat := tensorDType(out)
	if !isFloat {
		return encodeInts(buf, t, from, out)
	}
	c := t
	if t.DType() != tdt || !t.IsContiguous() {
		var err error
		if c, err = t.To(tdt); err != nil {
			return nil, err
		}
		defer c.Release()
	}
	n, off := c.Numel(), c.Offset()
	// On the CPU the elements are read in place; another backend copies them out.
	cs, onCPU := c.Storage().(*tensor.CPUStorage)
	if tdt == tensor.F32 {
		var v []float32
		if onCPU {
			v = cs.F32[off : off+n]
		} else {
			v = make([]float32, n)
			if err := c.Backend().Read(c.Storage(), off, v); err != nil {
				return nil, err
			}
		}
		for _, x := range v {
			buf = le.AppendUint32(buf, math.Float32bits(x))
		}
		return buf, nil
	}
	var bits []uint16
	if onCPU {
		bits = cs.U16[off : off+n]
	} else {
		bits = make([]uint16, n)
		if err := c.Backend().Read(c.Storage(), off, bits); err != nil {
			return nil, err
		}
	}
	if t.DType() != tdt {
		if err := checkOverflow(t, bits, out, from); err != nil {
			return nil, err
		}
	}
	for _, b := range bits {
		buf = le.AppendUint16(buf, b)
	}
	return buf, nil
}

// checkOverflow refuses a narrowing that turned finite values into
// infinities (F32 or BF16 beyond float16's ±65504, say).
func checkOverflow(src *tensor.Tensor, bits []uint16, out safetensors.DType, from string) error {
	inf := uint16(0x7c00) // float16
	if out == safetensors.BF16 {
		inf = 0x7f80
	}
	var vals []float32
	for i, b := range bits {
		if b&0x7fff != inf {
			continue
		}
		if vals == nil {
			var err error
			if vals, err = src.Float32s(); err != nil {
				return err
			}
		}
		if v := vals[i]; !math.IsInf(float64(v), 0) {
			return fmt.Errorf("%q holds %g (element %d), beyond the range of %s: it would become infinite (keep the dtype, or choose bf16)", from, v, i, out)
		}
	}
	return nil
}

// maxExactInt bounds the integers that survive the loader's widening to
// float32 unchanged.
const maxExactInt = 1 << 24

// encodeInts writes an integer tensor, which weights.Source widened to F32,
// back in its stored dtype; values that float32 cannot have carried exactly
// are refused rather than written wrong.
func encodeInts(buf []byte, t *tensor.Tensor, from string, out safetensors.DType) ([]byte, error) {
	vals, err := t.Float32s()
	if err != nil {
		return nil, err
	}
	lo, hi := float32(-maxExactInt), float32(maxExactInt)
	switch out {
	case safetensors.I8:
		lo, hi = math.MinInt8, math.MaxInt8
	case safetensors.I16:
		lo, hi = math.MinInt16, math.MaxInt16
	case safetensors.U8, safetensors.Bool:
		lo, hi = 0, math.MaxUint8
	}
	le := binary.LittleEndian
	for i, v := range vals {
		if v != float32(math.Trunc(float64(v))) || v < lo || v > hi {
			return nil, fmt.Errorf("%q (%s) holds %g at element %d, which cannot be written back exactly", from, out, v, i)
		}
		x := int64(v)
		switch out {
		case safetensors.I64:
			buf = le.AppendUint64(buf, uint64(x))
		case safetensors.I32:
			buf = le.AppendUint32(buf, uint32(int32(x)))
		case safetensors.I16:
			buf = le.AppendUint16(buf, uint16(int16(x)))
		case safetensors.I8, safetensors.U8, safetensors.Bool:
			buf = append(buf, byte(x))
		default:
			return nil, fmt.Errorf("%q: cannot write %s", from, out)
		}
	}
	return buf, nil
}

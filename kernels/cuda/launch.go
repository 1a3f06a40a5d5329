package cuda

import (
	"fmt"

	"github.com/sdgo/sdgo/tensor"
)

// run is one backend operation inside Device.do: the context is current, the
// device is held, and temporaries allocated with temp go back to the allocator
// when the operation ends (safe while the work that uses them is still queued:
// every later use of the memory is on the same stream).
type run struct {
	b     *Backend
	d     *Device
	prec  Precision // the backend's precision when the operation started
	temps []uint64
	path  string // the way the operation went, for the profile ("implicit")
}

// exec runs fn as the operation op and wraps its error.
func (b *Backend) exec(op string, fn func(r *run) error) error {
	prof := b.profiling()
	err := b.dev.do(func() error {
		r := &run{b: b, d: b.dev, prec: b.Precision()}
		if prof {
			if err := b.prof.begin(r.d); err != nil {
				return err
			}
		}
		err := fn(r)
		for _, p := range r.temps {
			if e := r.d.release(p); e != nil && err == nil {
				err = e
			}
		}
		if prof && err == nil {
			name := op
			if r.path != "" {
				name += " " + r.path
			}
			err = b.prof.finish(r.d, name)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("cuda.%s: %w", op, err)
	}
	return nil
}

// temp allocates n elements of dt for the rest of the operation.
func (r *run) temp(dt tensor.DType, n int) (uint64, error) {
	p, err := r.d.malloc(uint64(max(n, 1) * dt.Size()))
	if err != nil {
		return 0, err
	}
	r.temps = append(r.temps, p)
	return p, nil
}

// ptr returns the device address of t's first element.
func (r *run) ptr(t *tensor.Tensor) (uint64, error) {
	s, err := r.b.storage("", t.Storage())
	if err != nil {
		return 0, err
	}
	return s.ptr + uint64(t.Offset()*s.dt.Size()), nil
}

// as returns the address of t's elements as a contiguous tensor of dtype dt: t's
// own when it already is one, else a temporary copy. A nil t gives 0.
func (r *run) as(t *tensor.Tensor, dt tensor.DType) (uint64, error) {
	if t == nil {
		return 0, nil
	}
	p, err := r.ptr(t)
	if err != nil {
		return 0, err
	}
	if t.DType() == dt && t.IsContiguous() {
		return p, nil
	}
	q, err := r.temp(dt, t.Numel())
	if err != nil {
		return 0, err
	}
	shape := t.Shape()
	if err := r.copy(q, dt, tensor.ContiguousStrides(shape), p, t.DType(), t.Strides(), shape); err != nil {
		return 0, err
	}
	return q, nil
}

// f32 is as(t, F32).
func (r *run) f32(t *tensor.Tensor) (uint64, error) { return r.as(t, tensor.F32) }

// dstF32 returns the address of dst and those of ins as contiguous F32 (see
// f32; a nil input gives 0): the operands of most kernels.
func (r *run) dstF32(dst *tensor.Tensor, ins ...*tensor.Tensor) (uint64, []uint64, error) {
	d, err := r.ptr(dst)
	if err != nil {
		return 0, nil, err
	}
	ps := make([]uint64, len(ins))
	for i, t := range ins {
		if ps[i], err = r.f32(t); err != nil {
			return 0, nil, err
		}
	}
	return d, ps, nil
}

const threads1D = 256

// grid1D returns a grid for a grid-stride kernel over n elements: enough blocks
// to fill the device several times over, fewer for small n.
func (r *run) grid1D(n int) [3]uint32 {
	g := (n + threads1D - 1) / threads1D
	g = min(g, max(r.d.sms, 1)*32)
	return [3]uint32{uint32(g), 1, 1}
}

// launch1D launches a grid-stride kernel over n elements.
func (r *run) launch1D(name string, n int, a *kernelArgs) error {
	if n == 0 {
		return nil
	}
	return r.d.launch(name, r.grid1D(n), [3]uint32{threads1D, 1, 1}, 0, a)
}

// copyKernel names the strided copy from src to dst dtype.
func copyKernel(dst, src tensor.DType) string {
	if dst == src {
		if dst == tensor.F32 {
			return "copy_u32"
		}
		return "copy_u16"
	}
	return "convert_" + dtypeName(src) + "_" + dtypeName(dst)
}

func dtypeName(dt tensor.DType) string {
	switch dt {
	case tensor.F16:
		return "f16"
	case tensor.BF16:
		return "bf16"
	}
	return "f32"
}

// copy copies the elements of shape from src (dtype sdt, strides ss) to dst
// (dtype ddt, strides ds), converting the dtype.
func (r *run) copy(dst uint64, ddt tensor.DType, ds []int, src uint64, sdt tensor.DType, ss []int, shape []int) error {
	if numel(shape) == 0 {
		return nil
	}
	name := copyKernel(ddt, sdt)
	sh, st := tensor.Coalesce(shape, ds, ss)
	if len(sh) == 1 && st[0][0] == 1 && st[1][0] == 1 && ddt != sdt {
		// Contiguous conversion: no index arithmetic.
		n := sh[0]
		return r.launch1D("cast_"+dtypeName(sdt)+"_"+dtypeName(ddt), n, newArgs().Ptr(dst).Ptr(src).I64(n))
	}
	return forDims(sh, st, []int{0, 0}, func(off []int, d *dims) error {
		n := numel(sh[len(sh)-int(d.Rank):])
		a := newArgs().Ptr(dst + uint64(off[0]*ddt.Size())).Ptr(src + uint64(off[1]*sdt.Size())).I64(n).Dims(d)
		return r.launch1D(name, n, a)
	})
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// forDims calls fn with the dims of the index space shape (operand k's strides
// in strides[k], at most 3 operands) and each operand's element offset: once
// when the rank is at most maxRank, else once per index of the leading
// dimensions beyond it.
func forDims(shape []int, strides [][]int, off []int, fn func(off []int, d *dims) error) error {
	if len(shape) > maxRank {
		for i := range shape[0] {
			o := make([]int, len(off))
			sub := make([][]int, len(strides))
			for k := range off {
				o[k] = off[k] + i*strides[k][0]
				sub[k] = strides[k][1:]
			}
			if err := forDims(shape[1:], sub, o, fn); err != nil {
				return err
			}
		}
		return nil
	}
	d := &dims{Rank: int64(len(shape))}
	for i, s := range shape {
		d.Shape[i] = int64(s)
		for k := range strides {
			d.Strides[k][i] = int64(strides[k][i])
		}
	}
	return fn(off, d)
}

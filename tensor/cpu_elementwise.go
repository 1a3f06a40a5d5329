package tensor

import (
	"math"

	"github.com/sdgo/sdgo/kernels/asm"
)

// This file holds the CPU backend's element-wise operations: Unary, Binary,
// Affine, GEGLU and Softmax. dst and x are contiguous F32 tensors (the
// package-level operations see to it); Binary's operands may be strided.

func unaryKernel(op UnaryOp) func(dst, src []float32) {
	switch op {
	case OpSiLU:
		return asm.SiLU
	case OpGELU:
		return asm.GELU
	case OpGELUTanh:
		return asm.GELUTanh
	case OpQuickGELU:
		return asm.QuickGELU
	case OpExp:
		return asm.Exp
	}
	return nil
}

// Unary sets dst = op(x).
func (c *CPU) Unary(dst, x *Tensor, op UnaryOp) error {
	defer keepAlive(dst, x)
	ss, err := c.storages("Unary", dst, x)
	if err != nil {
		return err
	}
	f := unaryKernel(op)
	if f == nil {
		return rangeErr("Unary", "unknown operation %d on %v", op, x)
	}
	d, s := ss[0].F32[dst.offset:], ss[1].F32[x.offset:]
	parallelRange(dst.Numel(), func(lo, hi int) { f(d[lo:hi], s[lo:hi]) })
	return nil
}

// Affine sets dst = x·scale + shift.
func (c *CPU) Affine(dst, x *Tensor, scale, shift float32) error {
	defer keepAlive(dst, x)
	ss, err := c.storages("Affine", dst, x)
	if err != nil {
		return err
	}
	d, s := ss[0].F32[dst.offset:], ss[1].F32[x.offset:]
	parallelRange(dst.Numel(), func(lo, hi int) { asm.ScaleShift(d[lo:hi], s[lo:hi], scale, shift) })
	return nil
}

// Clamp sets dst = min(max(x, lo), hi) for a contiguous F32 x; NaN stays NaN.
func (c *CPU) Clamp(dst, x *Tensor, lo, hi float32) error {
	defer keepAlive(dst, x)
	ss, err := c.storages("Clamp", dst, x)
	if err != nil {
		return err
	}
	d, s := ss[0].F32[dst.offset:], ss[1].F32[x.offset:]
	parallelRange(dst.Numel(), func(from, to int) {
		for i, v := range s[from:to] {
			if v < lo {
				v = lo
			} else if v > hi {
				v = hi
			}
			d[from+i] = v
		}
	})
	return nil
}

// Binary sets dst = op(a, b) for F32 operands of dst's shape and any strides
// (broadcast operands are views with zero strides).
func (c *CPU) Binary(dst, a, b *Tensor, op BinaryOp) error {
	defer keepAlive(dst, a, b)
	ss, err := c.storages("Binary", dst, a, b)
	if err != nil {
		return err
	}
	if op < OpAdd || op > OpDiv {
		return rangeErr("Binary", "unknown operation %d on %v and %v", op, a, b)
	}
	n := dst.Numel()
	if n == 0 {
		return nil
	}
	d, sa, sb := ss[0].F32, ss[1].F32, ss[2].F32
	if a.IsContiguous() && b.IsContiguous() {
		do, ao, bo := dst.offset, a.offset, b.offset
		parallelRange(n, func(lo, hi int) {
			binaryRun(op, d[do+lo:do+hi], sa, ao+lo, 1, sb, bo+lo, 1)
		})
		return nil
	}
	sh, st := Coalesce(dst.shape, ContiguousStrides(dst.shape), a.strides, b.strides)
	last := len(sh) - 1
	as, bs := st[1][last], st[2][last]
	forEachRun(sh, st, []int{dst.offset, a.offset, b.offset}, func(off []int, n int, _ *scratch) {
		binaryRun(op, d[off[0]:off[0]+n], sa, off[1], as, sb, off[2], bs)
	})
	return nil
}

// binaryRun sets out[i] = op(a[ao+i·as], b[bo+i·bs]).
func binaryRun(op BinaryOp, out, a []float32, ao, as int, b []float32, bo, bs int) {
	n := len(out)
	switch {
	case as == 1 && bs == 1:
		x, y := a[ao:ao+n], b[bo:bo+n]
		switch op {
		case OpAdd:
			asm.Add(out, x, y)
		case OpMul:
			asm.Mul(out, x, y)
		case OpSub:
			for i := range out {
				out[i] = x[i] - y[i]
			}
		case OpDiv:
			for i := range out {
				out[i] = x[i] / y[i]
			}
		}
	case as == 1 && bs == 0:
		x, v := a[ao:ao+n], b[bo]
		switch op {
		case OpAdd:
			asm.ScaleShift(out, x, 1, v)
		case OpSub:
			asm.ScaleShift(out, x, 1, -v)
		case OpMul:
			asm.Scale(out, x, v)
		case OpDiv:
			for i := range out {
				out[i] = x[i] / v
			}
		}
	case as == 0 && bs == 1:
		v, y := a[ao], b[bo:bo+n]
		switch op {
		case OpAdd:
			asm.ScaleShift(out, y, 1, v)
		case OpSub:
			asm.ScaleShift(out, y, -1, v)
		case OpMul:
			asm.Scale(out, y, v)
		case OpDiv:
			for i := range out {
				out[i] = v / y[i]
			}
		}
	default:
		switch op {
		case OpAdd:
			for i := range out {
				out[i] = a[ao+i*as] + b[bo+i*bs]
			}
		case OpSub:
			for i := range out {
				out[i] = a[ao+i*as] - b[bo+i*bs]
			}
		case OpMul:
			for i := range out {
				out[i] = a[ao+i*as] * b[bo+i*bs]
			}
		case OpDiv:
			for i := range out {
				out[i] = a[ao+i*as] / b[bo+i*bs]
			}
		}
	}
}

// GEGLU sets dst[..., i] = x[..., i]·gelu(x[..., n+i]) for x [..., 2n], dst [..., n].
func (c *CPU) GEGLU(dst, x *Tensor) error {
	defer keepAlive(dst, x)
	ss, err := c.storages("GEGLU", dst, x)
	if err != nil {
		return err
	}
	n := dst.Dim(-1)
	if n == 0 {
		return nil
	}
	d, s := ss[0].F32[dst.offset:], ss[1].F32[x.offset:]
	asm.ParallelFor(dst.Numel()/n, rowGrain(3*n), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			out, in := d[r*n:(r+1)*n], s[2*r*n:(2*r+2)*n]
			asm.GELU(out, in[n:])
			asm.Mul(out, out, in[:n])
		}
	})
	return nil
}

// Softmax sets dst to the softmax of x over its last axis.
func (c *CPU) Softmax(dst, x *Tensor) error {
	defer keepAlive(dst, x)
	ss, err := c.storages("Softmax", dst, x)
	if err != nil {
		return err
	}
	if dst.Rank() == 0 {
		ss[0].F32[dst.offset] = 1
		return nil
	}
	n := dst.Dim(-1)
	if n == 0 {
		return nil
	}
	d, s := ss[0].F32[dst.offset:], ss[1].F32[x.offset:]
	asm.ParallelFor(dst.Numel()/n, rowGrain(2*n), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := d[r*n : (r+1)*n]
			copy(row, s[r*n:(r+1)*n])
			asm.Softmax(row)
		}
	})
	return nil
}

// TimestepEmbedding sets dst [N,dim] to the sinusoidal embedding of the
// contiguous F32 timesteps t [N] (see Backend): each argument is the float32
// product t[n]·f[i], and exp, sin and cos are computed in float64 and rounded to
// float32.
func (c *CPU) TimestepEmbedding(dst, t *Tensor, p TimestepEmbeddingParams) error {
	defer keepAlive(dst, t)
	ss, err := c.storages("TimestepEmbedding", dst, t)
	if err != nil {
		return err
	}
	if dst.Rank() != 2 || t.Rank() != 1 || dst.shape[0] != t.shape[0] {
		return shapeErr("TimestepEmbedding", "%v from timesteps %v", dst, t)
	}
	n, dim := dst.shape[0], dst.shape[1]
	half := dim / 2
	freqs := p.Frequencies(dim)
	d, ts := ss[0].F32[dst.offset:][:n*dim], ss[1].F32[t.offset:][:n]
	for r, tv := range ts {
		row := d[r*dim : (r+1)*dim]
		sin, cos := row[:half], row[half:2*half]
		if p.FlipSinToCos {
			sin, cos = cos, sin
		}
		for i, f := range freqs {
			arg := float64(tv * f)
			sin[i] = float32(math.Sin(arg))
			cos[i] = float32(math.Cos(arg))
		}
		if dim%2 != 0 {
			row[dim-1] = 0
		}
	}
	return nil
}

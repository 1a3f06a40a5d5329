//go:build darwin

package metal

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/ebitengine/purego/objc"
	"github.com/sdgo/sdgo/tensor"
)

// Backend runs tensor operations on a Metal device: tensor.Backend over the
// kernels of the embedded MSL sources. Activations are F32 and every sum is
// accumulated in FP32; matrix operands and parameters may be F16 or BF16 and
// are widened as the kernels read them. SetPrecision(FP16) runs the matrix
// products on half operands instead (see Precision).
//
// A Backend is safe for concurrent use; its work runs in order on the device's
// command queue (see Device).
type Backend struct {
	dev     *Device
	ownsDev bool
	prec    atomic.Int32 // a Precision
}

var _ tensor.Backend = (*Backend)(nil)

// NewBackend returns a backend on the open device d.
func NewBackend(d *Device) *Backend { return &Backend{dev: d} }

// OpenBackend opens device index and returns a backend on it; Close closes the
// device. Without Metal the error wraps ErrNoDevice.
func OpenBackend(index int) (*Backend, error) {
	d, err := Open(index)
	if err != nil {
		return nil, err
	}
	return &Backend{dev: d, ownsDev: true}, nil
}

// Device returns the backend's device.
func (b *Backend) Device() *Device { return b.dev }

// Close closes the device if OpenBackend opened it.
func (b *Backend) Close() error {
	if b.ownsDev {
		return b.dev.Close()
	}
	return nil
}

// Name identifies the backend, e.g. "metal:0 (Apple M2 Pro)".
func (b *Backend) Name() string { return fmt.Sprintf("metal:%d (%s)", b.dev.index, b.dev.name) }

// Synchronize waits for the queued work and returns its first error.
func (b *Backend) Synchronize() error { return b.dev.Synchronize() }

// SetPrecision chooses the arithmetic of the matrix products from now on.
func (b *Backend) SetPrecision(p Precision) { b.prec.Store(int32(p)) }

// Precision returns the arithmetic of the matrix products.
func (b *Backend) Precision() Precision { return Precision(b.prec.Load()) }

// FullPrecision switches the matrix products to FP32 until restore is called
// (tensor.FullPrecision calls it: the pipelines run an SDXL VAE, which overflows
// F16, this way).
func (b *Backend) FullPrecision() (restore func()) {
	old := b.prec.Swap(int32(FP32))
	return func() { b.prec.Store(old) }
}

// product returns the kernel of a matrix product in the current precision.
func (b *Backend) product(fp32, fp16 string) string {
	if b.Precision() == FP16 {
		return fp16
	}
	return fp32
}

// exec encodes one operation; errors name the operation.
func (b *Backend) exec(op string, fn func(e *encoder) error) error {
	if err := b.dev.run(fn); err != nil {
		return fmt.Errorf("metal.%s: %w", op, err)
	}
	return nil
}

// buf returns the buffer of t's storage (0 for a nil t).
func (b *Backend) buf(t *tensor.Tensor) (objc.ID, error) {
	if t == nil {
		return 0, nil
	}
	s, err := b.storage("buffer", t.Storage())
	if err != nil {
		return 0, err
	}
	return s.buf, nil
}

// operand is a tensor's buffer and element offset.
type operand struct {
	buf objc.ID
	off int
}

func (e *encoder) operand(b *Backend, t *tensor.Tensor) (operand, error) {
	buf, err := b.buf(t)
	if err != nil || t == nil {
		return operand{}, err
	}
	return operand{buf, t.Offset()}, nil
}

// copy encodes a strided copy of shape from src (dtype sdt, strides ss) to dst
// (dtype ddt, strides ds), converting the dtype.
func (e *encoder) copy(dst operand, ddt tensor.DType, ds []int, src operand, sdt tensor.DType, ss []int, shape []int) error {
	n := numel(shape)
	if n == 0 {
		return nil
	}
	sh, st := tensor.Coalesce(shape, ds, ss)
	if len(sh) > maxRank {
		return fmt.Errorf("%w: a copy of %d dimensions that do not merge (at most %d)", ErrUnsupported, len(sh), maxRank)
	}
	p := new(params).i(n, len(sh), int(ddt), int(sdt), dst.off, src.off).arr(maxRank, sh).arr(maxRank, st[0]).arr(maxRank, st[1])
	return e.dispatch1D("copy_strided", n, p, dst.buf, src.buf)
}

// contiguous returns t as a contiguous operand of dtype dt: t itself when it
// is, else a temporary copy.
func (e *encoder) contiguous(b *Backend, t *tensor.Tensor, dt tensor.DType) (operand, error) {
	o, err := e.operand(b, t)
	if err != nil {
		return o, err
	}
	if t.DType() == dt && t.IsContiguous() {
		return o, nil
	}
	shape := t.Shape()
	tmp, err := e.temp(numel(shape) * dt.Size())
	if err != nil {
		return operand{}, err
	}
	c := operand{tmp, 0}
	return c, e.copy(c, dt, tensor.ContiguousStrides(shape), o, t.DType(), t.Strides(), shape)
}

// f32 returns t as a contiguous F32 operand.
func (e *encoder) f32(b *Backend, t *tensor.Tensor) (operand, error) {
	return e.contiguous(b, t, tensor.F32)
}

// vector returns the buffer, offset, stride and dtype code of a 1-D parameter
// (gamma, beta, bias); all zero for nil.
func (e *encoder) vector(b *Backend, t *tensor.Tensor) (objc.ID, [3]int, error) {
	if t == nil {
		return 0, [3]int{}, nil
	}
	o, err := e.operand(b, t)
	if err != nil {
		return 0, [3]int{}, err
	}
	st := 0
	if s := t.Strides(); len(s) > 0 {
		st = s[len(s)-1]
	}
	return o.buf, [3]int{dtypeCode(t), o.off, st}, nil
}

// Fill sets every element of the contiguous dst to v (rounded to dst's dtype).
func (b *Backend) Fill(dst *tensor.Tensor, v float32) error {
	return b.exec("Fill", func(e *encoder) error {
		if !dst.IsContiguous() {
			return fmt.Errorf("%w: destination %v is not contiguous", tensor.ErrShape, dst)
		}
		d, err := e.operand(b, dst)
		if err != nil {
			return err
		}
		n := dst.Numel()
		return e.dispatch1D("fill", n, new(params).i(n, int(dst.DType()), d.off).f(v), d.buf)
	})
}

// Copy copies src (any strides, any dtype) into the contiguous dst of the same
// shape, converting the dtype (rounding to nearest even when narrowing).
func (b *Backend) Copy(dst, src *tensor.Tensor) error {
	return b.exec("Copy", func(e *encoder) error {
		if dst.Numel() != src.Numel() || !dst.IsContiguous() {
			return fmt.Errorf("%w: %v (contiguous: %v) from %v", tensor.ErrShape, dst, dst.IsContiguous(), src)
		}
		d, err := e.operand(b, dst)
		if err != nil {
			return err
		}
		s, err := e.operand(b, src)
		if err != nil {
			return err
		}
		shape := src.Shape()
		return e.copy(d, dst.DType(), tensor.ContiguousStrides(shape), s, src.DType(), src.Strides(), shape)
	})
}

// pointwise runs kernel name over contiguous F32 dst and x with the parameters
// n, extra ints, doff, soff and extra floats, in the order fill says.
func (b *Backend) pointwise(op, name string, dst, x *tensor.Tensor, fill func(p *params, n, doff, soff int)) error {
	return b.exec(op, func(e *encoder) error {
		d, err := e.operand(b, dst)
		if err != nil {
			return err
		}
		s, err := e.f32(b, x)
		if err != nil {
			return err
		}
		n := dst.Numel()
		p := new(params)
		fill(p, n, d.off, s.off)
		return e.dispatch1D(name, n, p, d.buf, s.buf)
	})
}

// Unary sets dst = op(x).
func (b *Backend) Unary(dst, x *tensor.Tensor, op tensor.UnaryOp) error {
	if op < tensor.OpSiLU || op > tensor.OpExp {
		return fmt.Errorf("metal.Unary: %w: unknown operation %d on %v", tensor.ErrRange, op, x)
	}
	return b.pointwise("Unary", "unary", dst, x, func(p *params, n, doff, soff int) {
		p.i(n, int(op), doff, soff)
	})
}

// Affine sets dst = x·scale + shift.
func (b *Backend) Affine(dst, x *tensor.Tensor, scale, shift float32) error {
	return b.pointwise("Affine", "affine", dst, x, func(p *params, n, doff, soff int) {
		p.i(n, doff, soff).f(scale, shift)
	})
}

// Clamp sets dst = min(max(x, lo), hi); NaN stays NaN.
func (b *Backend) Clamp(dst, x *tensor.Tensor, lo, hi float32) error {
	return b.pointwise("Clamp", "clamp_f32", dst, x, func(p *params, n, doff, soff int) {
		p.i(n, doff, soff).f(lo, hi)
	})
}

// Binary sets dst = op(a, b); a and b have dst's shape and any strides and
// dtypes (zero strides broadcast).
func (b *Backend) Binary(dst, x, y *tensor.Tensor, op tensor.BinaryOp) error {
	if op < tensor.OpAdd || op > tensor.OpDiv {
		return fmt.Errorf("metal.Binary: %w: unknown operation %d on %v and %v", tensor.ErrRange, op, x, y)
	}
	return b.exec("Binary", func(e *encoder) error {
		n := dst.Numel()
		if n == 0 {
			return nil
		}
		d, err := e.operand(b, dst)
		if err != nil {
			return err
		}
		xa, err := e.operand(b, x)
		if err != nil {
			return err
		}
		ya, err := e.operand(b, y)
		if err != nil {
			return err
		}
		shape := dst.Shape()
		sh, st := tensor.Coalesce(shape, x.Strides(), y.Strides())
		if len(sh) > maxRank {
			return fmt.Errorf("%w: %d dimensions that do not merge (at most %d)", ErrUnsupported, len(sh), maxRank)
		}
		p := new(params).i(n, int(op), len(sh), d.off, int(x.DType()), xa.off, int(y.DType()), ya.off).
			arr(maxRank, sh).arr(maxRank, st[0]).arr(maxRank, st[1])
		return e.dispatch1D("binary", n, p, d.buf, xa.buf, ya.buf)
	})
}

// GEGLU sets dst[..., i] = x[..., i]·gelu(x[..., n+i]) for x [..., 2n], dst [..., n].
func (b *Backend) GEGLU(dst, x *tensor.Tensor) error {
	return b.exec("GEGLU", func(e *encoder) error {
		if dst.Rank() == 0 || dst.Numel() == 0 {
			return nil
		}
		n := dst.Dim(-1)
		d, err := e.operand(b, dst)
		if err != nil {
			return err
		}
		s, err := e.f32(b, x)
		if err != nil {
			return err
		}
		rows := dst.Numel() / n
		return e.dispatch1D("geglu", rows*n, new(params).i(rows, n, d.off, s.off), d.buf, s.buf)
	})
}

// rows dispatches a row-reduction kernel: one threadgroup per row.
func (e *encoder) rows(name string, rows int, p *params, bufs ...objc.ID) error {
	return e.dispatch(name, [3]int{rows, 1, 1}, rowThreads, p, bufs...)
}

// Softmax sets dst to the softmax of x over its last axis.
func (b *Backend) Softmax(dst, x *tensor.Tensor) error {
	if dst.Rank() == 0 {
		return b.Fill(dst, 1)
	}
	return b.exec("Softmax", func(e *encoder) error {
		n := dst.Dim(-1)
		if n == 0 || dst.Numel() == 0 {
			return nil
		}
		d, err := e.operand(b, dst)
		if err != nil {
			return err
		}
		s, err := e.f32(b, x)
		if err != nil {
			return err
		}
		rows := dst.Numel() / n
		return e.rows("softmax", rows, new(params).i(rows, n, d.off, s.off), d.buf, s.buf)
	})
}

// LayerNorm normalises x over its last axis and applies gamma and beta (any
// dtype; nil for 1 and 0).
func (b *Backend) LayerNorm(dst, x, gamma, beta *tensor.Tensor, eps float32) error {
	return b.exec("LayerNorm", func(e *encoder) error {
		if x.Rank() == 0 || x.Numel() == 0 {
			return nil
		}
		n := x.Dim(-1)
		rows := x.Numel() / n
		d, err := e.operand(b, dst)
		if err != nil {
			return err
		}
		s, err := e.f32(b, x)
		if err != nil {
			return err
		}
		gb, g, err := e.vector(b, gamma)
		if err != nil {
			return err
		}
		bb, be, err := e.vector(b, beta)
		if err != nil {
			return err
		}
		p := new(params).i(rows, n, d.off, s.off).f(eps).i(g[:]...).i(be[:]...)
		return e.rows("layer_norm", rows, p, d.buf, s.buf, gb, bb)
	})
}

// GroupNorm normalises x [N,C,...] over groups of C/groups channels, applies
// gamma and beta ([C], any dtype, nil for 1 and 0), then SiLU if silu.
func (b *Backend) GroupNorm(dst, x, gamma, beta *tensor.Tensor, groups int, eps float32, silu bool) error {
	return b.exec("GroupNorm", func(e *encoder) error {
		if x.Rank() < 2 || x.Numel() == 0 {
			return nil
		}
		shape := x.Shape()
		nb, ch := shape[0], shape[1]
		if groups <= 0 || ch%groups != 0 {
			return fmt.Errorf("%w: %d channels in %d groups", tensor.ErrShape, ch, groups)
		}
		spatial := x.Numel() / (nb * ch)
		d, err := e.operand(b, dst)
		if err != nil {
			return err
		}
		s, err := e.f32(b, x)
		if err != nil {
			return err
		}
		gb, g, err := e.vector(b, gamma)
		if err != nil {
			return err
		}
		bb, be, err := e.vector(b, beta)
		if err != nil {
			return err
		}
		fused := 0
		if silu {
			fused = 1
		}
		p := new(params).i(ch, groups, spatial, d.off, s.off).f(eps).i(fused).i(g[:]...).i(be[:]...)
		return e.rows("group_norm", nb*groups, p, d.buf, s.buf, gb, bb)
	})
}

// Moments sets mean and variance (population) of x viewed as [rows, n], rows
// being the number of elements of mean.
func (b *Backend) Moments(mean, variance, x *tensor.Tensor) error {
	rows := mean.Numel()
	if rows == 0 {
		return nil
	}
	n := x.Numel() / rows
	if n == 0 {
		nan := float32(math.NaN())
		if err := b.Fill(mean, nan); err != nil {
			return err
		}
		return b.Fill(variance, nan)
	}
	return b.exec("Moments", func(e *encoder) error {
		m, err := e.operand(b, mean)
		if err != nil {
			return err
		}
		v, err := e.operand(b, variance)
		if err != nil {
			return err
		}
		s, err := e.f32(b, x)
		if err != nil {
			return err
		}
		return e.rows("moments", rows, new(params).i(rows, n, m.off, v.off, s.off), m.buf, v.buf, s.buf)
	})
}

// MatMul sets dst[i] = alpha·a[i]·b[i] + bias for every batch index i; see
// tensor.Backend. a and b are read in place whatever their strides and dtypes;
// dst may be a view whose last stride is 1.
func (b *Backend) MatMul(dst, a, w, bias *tensor.Tensor, alpha float32) error {
	return b.exec("MatMul", func(e *encoder) error {
		ds, as, bs := dst.Shape(), a.Shape(), w.Shape()
		if len(ds) != 3 || len(as) != 3 || len(bs) != 3 {
			return fmt.Errorf("%w: %v × %v into %v: want rank 3", tensor.ErrShape, a, w, dst)
		}
		nb, m, n, k := ds[0], ds[1], ds[2], as[2]
		if as[1] != m || bs[1] != k || bs[2] != n || (as[0] != nb && as[0] != 1) || (bs[0] != nb && bs[0] != 1) {
			return fmt.Errorf("%w: %v × %v into %v", tensor.ErrShape, a, w, dst)
		}
		if bias != nil && (bias.Rank() != 1 || bias.Dim(0) != n) {
			return fmt.Errorf("%w: bias %v for %v × %v", tensor.ErrShape, bias, a, w)
		}
		if dst.DType() != tensor.F32 {
			return fmt.Errorf("%w: destination %v (want F32)", tensor.ErrDType, dst)
		}
		dst1 := dst.Strides()
		if n > 1 && dst1[2] != 1 {
			return fmt.Errorf("%w: destination %v with strides %v: want rows with stride 1", tensor.ErrShape, dst, dst1)
		}
		if nb == 0 || m == 0 || n == 0 {
			return nil
		}
		d, err := e.operand(b, dst)
		if err != nil {
			return err
		}
		ao, err := e.operand(b, a)
		if err != nil {
			return err
		}
		bo, err := e.operand(b, w)
		if err != nil {
			return err
		}
		biasBuf, bv, err := e.vector(b, bias)
		if err != nil {
			return err
		}
		batchStride := func(t *tensor.Tensor) int {
			if t.Dim(0) == 1 {
				return 0
			}
			return t.Strides()[0]
		}
		ast, bst := a.Strides(), w.Strides()
		p := new(params).i(m, n, k, nb).f(alpha).
			i(int(a.DType()), ao.off, batchStride(a), ast[1], ast[2]).
			i(int(w.DType()), bo.off, batchStride(w), bst[1], bst[2]).
			i(bv[:]...).
			i(d.off, batchStride(dst), dst1[1])
		grid := [3]int{(n + gemmTile - 1) / gemmTile, (m + gemmTile - 1) / gemmTile, nb}
		return e.dispatch(b.product("gemm", "gemm_f16"), grid, gemmThreads, p, d.buf, ao.buf, bo.buf, biasBuf)
	})
}

// Conv2d sets dst = conv(x, w) + bias on NCHW tensors (cross-correlation, as
// torch), as an implicit GEMM: w [O, C·KH·KW] times the im2col matrix of each
// sample, gathered from x as the kernel reads it.
func (b *Backend) Conv2d(dst, x, w, bias *tensor.Tensor, cp tensor.Conv2dParams) error {
	return b.exec("Conv2d", func(e *encoder) error {
		xs, ws, ds := x.Shape(), w.Shape(), dst.Shape()
		if len(xs) != 4 || len(ws) != 4 || len(ds) != 4 || ws[1] != xs[1] || ds[1] != ws[0] || ds[0] != xs[0] {
			return fmt.Errorf("%w: %v * %v into %v", tensor.ErrShape, x, w, dst)
		}
		if dst.Numel() == 0 {
			return nil
		}
		d, err := e.operand(b, dst)
		if err != nil {
			return err
		}
		xo, err := e.f32(b, x)
		if err != nil {
			return err
		}
		wo, err := e.contiguous(b, w, w.DType())
		if err != nil {
			return err
		}
		biasBuf, bv, err := e.vector(b, bias)
		if err != nil {
			return err
		}
		stride := max(cp.Stride, 1)
		p := new(params).i(xs[1], xs[2], xs[3], ws[0], ws[2], ws[3], ds[2], ds[3], stride, cp.Padding, xo.off,
			int(w.DType()), wo.off).i(bv[:]...).i(d.off)
		// The kernel indexes the implicit GEMM's columns and depth with ints.
		if cols, depth := ds[2]*ds[3], ws[1]*ws[2]*ws[3]; cols > math.MaxInt32 || depth > math.MaxInt32 {
			return fmt.Errorf("%w: a GEMM of %d columns and depth %d", ErrUnsupported, cols, depth)
		}
		cols := ds[2] * ds[3]
		grid := [3]int{(cols + gemmTile - 1) / gemmTile, (ws[0] + gemmTile - 1) / gemmTile, xs[0]}
		return e.dispatch(b.product("conv2d", "conv2d_f16"), grid, gemmThreads, p, d.buf, xo.buf, wo.buf, biasBuf)
	})
}

// attnReady reports whether t [B,H,L,D] has a last stride of 1 (or D ≤ 1).
func attnReady(t *tensor.Tensor) bool {
	return t.Dim(3) <= 1 || t.Strides()[3] == 1
}

// Attention sets dst = softmax(q·kᵀ·scale)·v per batch and head; see
// tensor.Backend. The kernel streams over the keys with an online softmax, so
// no scores are stored at all (BlockQ, BlockK and Mode change nothing on this
// backend); q, k and v are read in place, in their dtypes.
func (b *Backend) Attention(dst, q, k, v *tensor.Tensor, ap tensor.AttentionParams) error {
	return b.exec("Attention", func(e *encoder) error {
		qs, ks, vs, ds := q.Shape(), k.Shape(), v.Shape(), dst.Shape()
		if len(qs) != 4 || len(ks) != 4 || len(vs) != 4 || len(ds) != 4 {
			return fmt.Errorf("%w: q %v, k %v, v %v into %v: want rank 4", tensor.ErrShape, q, k, v, dst)
		}
		nb, nh, lq, dh := qs[0], qs[1], qs[2], qs[3]
		lk, dv := ks[2], vs[3]
		if ks[0] != nb || ks[1] != nh || ks[3] != dh || vs[0] != nb || vs[1] != nh || vs[2] != lk ||
			ds[0] != nb || ds[1] != nh || ds[2] != lq || ds[3] != dv {
			return fmt.Errorf("%w: q %v, k %v, v %v into %v", tensor.ErrShape, q, k, v, dst)
		}
		if dst.Numel() == 0 {
			return nil
		}
		if lk == 0 {
			return fmt.Errorf("%w: q %v, k %v: no keys", tensor.ErrShape, q, k)
		}
		if dh > attnMaxD || dv > attnMaxDv {
			return fmt.Errorf("%w: head sizes %d and %d (at most %d and %d)", ErrUnsupported, dh, dv, attnMaxD, attnMaxDv)
		}
		if dst.DType() != tensor.F32 || !attnReady(dst) {
			return fmt.Errorf("%w: destination %v with strides %v: want F32 rows of stride 1", tensor.ErrShape, dst, dst.Strides())
		}
		scale := ap.Scale
		if scale == 0 {
			scale = float32(1 / math.Sqrt(float64(dh)))
		}
		causal := 0
		if ap.Causal {
			causal = 1
		}
		p := new(params).i(lq, lk, dh, dv).f(scale).i(causal)
		bufs := []objc.ID{0}
		for _, t := range []*tensor.Tensor{q, k, v} {
			o, err := e.operand(b, t)
			if err != nil {
				return err
			}
			st := t.Strides()
			if !attnReady(t) {
				if o, err = e.contiguous(b, t, t.DType()); err != nil {
					return err
				}
				st = tensor.ContiguousStrides(t.Shape())
			}
			p.i(int(t.DType()), o.off, st[0], st[1], st[2])
			bufs = append(bufs, o.buf)
		}
		d, err := e.operand(b, dst)
		if err != nil {
			return err
		}
		bufs[0] = d.buf
		dst1 := dst.Strides()
		p.i(d.off, dst1[0], dst1[1], dst1[2])
		grid := [3]int{(lq + attnRows - 1) / attnRows, nh, nb}
		return e.dispatch("attention", grid, 32*attnRows, p, bufs...)
	})
}

// Concat writes xs one after another along axis into dst, converting them to
// dst's dtype; they may be strided.
func (b *Backend) Concat(dst *tensor.Tensor, xs []*tensor.Tensor, axis int) error {
	return b.exec("Concat", func(e *encoder) error {
		d, err := e.operand(b, dst)
		if err != nil {
			return err
		}
		ds := tensor.ContiguousStrides(dst.Shape())
		if axis < 0 || axis >= len(ds) {
			return fmt.Errorf("%w: axis %d of %v", tensor.ErrRange, axis, dst)
		}
		at := 0
		for _, x := range xs {
			s, err := e.operand(b, x)
			if err != nil {
				return err
			}
			to := operand{d.buf, d.off + at*ds[axis]}
			if err := e.copy(to, dst.DType(), ds, s, x.DType(), x.Strides(), x.Shape()); err != nil {
				return err
			}
			at += x.Dim(axis)
		}
		return nil
	})
}

// ResizeNearest sets dst [N,C,H',W'] to the nearest-neighbour resampling of x
// [N,C,H,W] (torch's interpolate(mode="nearest"): source index ⌊i·H/H'⌋ with the
// ratio in float32).
func (b *Backend) ResizeNearest(dst, x *tensor.Tensor) error {
	return b.exec("ResizeNearest", func(e *encoder) error {
		xs, ds := x.Shape(), dst.Shape()
		if len(xs) != 4 || len(ds) != 4 {
			return fmt.Errorf("%w: %v into %v (want rank 4)", tensor.ErrShape, x, dst)
		}
		h, w, oh, ow := xs[2], xs[3], ds[2], ds[3]
		if h == 0 || w == 0 || oh == 0 || ow == 0 || dst.Numel() == 0 {
			return nil
		}
		d, err := e.operand(b, dst)
		if err != nil {
			return err
		}
		s, err := e.f32(b, x)
		if err != nil {
			return err
		}
		planes := xs[0] * xs[1]
		sh, sw := float32(h)/float32(oh), float32(w)/float32(ow)
		p := new(params).i(planes, h, w, oh, ow).f(sh, sw).i(d.off, s.off)
		return e.dispatch1D("resize_nearest", dst.Numel(), p, d.buf, s.buf)
	})
}

// Embedding sets row i of dst [len(ids),D] to row ids[i] of table [V,D] (any
// dtype and strides).
func (b *Backend) Embedding(dst, table *tensor.Tensor, ids []int) error {
	ts := table.Shape()
	if len(ts) != 2 {
		return fmt.Errorf("metal.Embedding: %w: table %v (want rank 2)", tensor.ErrShape, table)
	}
	for _, id := range ids {
		if id < 0 || id >= ts[0] {
			return fmt.Errorf("metal.Embedding: %w: id %d for table %v", tensor.ErrRange, id, ts)
		}
	}
	return b.exec("Embedding", func(e *encoder) error {
		if len(ids) == 0 || ts[1] == 0 {
			return nil
		}
		d, err := e.operand(b, dst)
		if err != nil {
			return err
		}
		t, err := e.operand(b, table)
		if err != nil {
			return err
		}
		raw := make([]byte, 4*len(ids))
		for i, id := range ids {
			binary.LittleEndian.PutUint32(raw[4*i:], uint32(int32(id)))
		}
		idBuf, err := e.upload(raw)
		if err != nil {
			return err
		}
		st := table.Strides()
		p := new(params).i(len(ids), ts[1], int(table.DType()), t.off, st[0], st[1], d.off)
		return e.dispatch1D("embedding", len(ids)*ts[1], p, d.buf, t.buf, idBuf)
	})
}

package cuda

import (
	"fmt"
	"math"
	"sync/atomic"

	"github.com/sdgo/sdgo/tensor"
)

// Backend runs tensor operations on a CUDA device: tensor.Backend over the
// kernels embedded as PTX, with cuBLAS for the matrix products when it is
// present and the PTX GEMM otherwise. Activations are F32 and accumulation is
// FP32; parameters and matrix operands may be F16 or BF16 and are widened in the
// kernels. SetPrecision chooses TF32 or F16/BF16 tensor-core products instead
// of FP32 ones (see Precision).
//
// A Backend is safe for concurrent use; its work runs in order on the device's
// stream (see Device).
type Backend struct {
	dev     *Device
	noBLAS  bool
	ownsDev bool
	prec    atomic.Int32 // a Precision
	prof    profiler
}

var _ tensor.Backend = (*Backend)(nil)

// NewBackend returns a backend on the open device d.
func NewBackend(d *Device) *Backend { return &Backend{dev: d} }

// OpenBackend opens device index and returns a backend on it; Close closes the
// device. Without a usable driver the error wraps ErrNoDriver.
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

// UseCUBLAS chooses whether matrix products go to cuBLAS (when it is loaded; the
// default) or to the embedded PTX GEMM.
func (b *Backend) UseCUBLAS(on bool) { b.noBLAS = !on }

// Name identifies the backend, e.g. "cuda:0 (NVIDIA H100 80GB HBM3, sm_90)".
func (b *Backend) Name() string {
	return fmt.Sprintf("cuda:%d (%s, sm_%d%d)", b.dev.index, b.dev.name, b.dev.major, b.dev.minor)
}

// Synchronize waits for the queued work and returns its first error.
func (b *Backend) Synchronize() error { return b.dev.Synchronize() }

// Fill sets every element of the contiguous dst to v (rounded to dst's dtype).
func (b *Backend) Fill(dst *tensor.Tensor, v float32) error {
	return b.exec("Fill", func(r *run) error {
		if !dst.IsContiguous() {
			return fmt.Errorf("%w: destination %v is not contiguous", tensor.ErrShape, dst)
		}
		p, err := r.ptr(dst)
		if err != nil {
			return err
		}
		n := dst.Numel()
		return r.launch1D("fill_"+dtypeName(dst.DType()), n, newArgs().Ptr(p).I64(n).F32(v))
	})
}

// Copy copies src (any strides, any dtype) into the contiguous dst of the same
// shape, converting the dtype (rounding to nearest even when narrowing).
func (b *Backend) Copy(dst, src *tensor.Tensor) error {
	return b.exec("Copy", func(r *run) error {
		if dst.Numel() != src.Numel() || !dst.IsContiguous() {
			return fmt.Errorf("%w: %v (contiguous: %v) from %v", tensor.ErrShape, dst, dst.IsContiguous(), src)
		}
		dp, err := r.ptr(dst)
		if err != nil {
			return err
		}
		sp, err := r.ptr(src)
		if err != nil {
			return err
		}
		shape := src.Shape()
		return r.copy(dp, dst.DType(), tensor.ContiguousStrides(shape), sp, src.DType(), src.Strides(), shape)
	})
}

// pointwise runs a kernel name(y, x, n, extra...) over contiguous F32 dst and x.
func (b *Backend) pointwise(op, name string, dst, x *tensor.Tensor, extra func(*kernelArgs)) error {
	return b.exec(op, func(r *run) error {
		d, in, err := r.dstF32(dst, x)
		if err != nil {
			return err
		}
		s := in[0]
		n := dst.Numel()
		a := newArgs().Ptr(d).Ptr(s).I64(n)
		extra(a)
		return r.launch1D(name, n, a)
	})
}

// Unary sets dst = op(x).
func (b *Backend) Unary(dst, x *tensor.Tensor, op tensor.UnaryOp) error {
	if op < tensor.OpSiLU || op > tensor.OpExp {
		return fmt.Errorf("cuda.Unary: %w: unknown operation %d on %v", tensor.ErrRange, op, x)
	}
	return b.pointwise("Unary", "unary_f32", dst, x, func(a *kernelArgs) { a.I32(int(op)) })
}

// Affine sets dst = x·scale + shift.
func (b *Backend) Affine(dst, x *tensor.Tensor, scale, shift float32) error {
	return b.pointwise("Affine", "affine_f32", dst, x, func(a *kernelArgs) { a.F32(scale).F32(shift) })
}

// Clamp sets dst = min(max(x, lo), hi); NaN stays NaN.
func (b *Backend) Clamp(dst, x *tensor.Tensor, lo, hi float32) error {
	return b.pointwise("Clamp", "clamp_f32", dst, x, func(a *kernelArgs) { a.F32(lo).F32(hi) })
}

// Binary sets dst = op(a, b); a and b have dst's shape and any strides (zero
// strides broadcast).
func (b *Backend) Binary(dst, x, y *tensor.Tensor, op tensor.BinaryOp) error {
	if op < tensor.OpAdd || op > tensor.OpDiv {
		return fmt.Errorf("cuda.Binary: %w: unknown operation %d on %v and %v", tensor.ErrRange, op, x, y)
	}
	return b.exec("Binary", func(r *run) error {
		n := dst.Numel()
		if n == 0 {
			return nil
		}
		d, err := r.ptr(dst)
		if err != nil {
			return err
		}
		// Non-F32 operands are widened into contiguous temporaries.
		operand := func(t *tensor.Tensor) (uint64, []int, error) {
			if t.DType() != tensor.F32 {
				p, err := r.f32(t)
				return p, tensor.ContiguousStrides(t.Shape()), err
			}
			p, err := r.ptr(t)
			return p, t.Strides(), err
		}
		pa, sa, err := operand(x)
		if err != nil {
			return err
		}
		pb, sb, err := operand(y)
		if err != nil {
			return err
		}
		shape := dst.Shape()
		sh, st := tensor.Coalesce(shape, tensor.ContiguousStrides(shape), sa, sb)
		if len(sh) == 1 && st[1][0] == 1 && st[2][0] == 1 {
			return r.launch1D("binary_contig_f32", n, newArgs().Ptr(d).Ptr(pa).Ptr(pb).I64(n).I32(int(op)))
		}
		return forDims(sh, [][]int{st[1], st[2], st[0]}, []int{0, 0, 0}, func(off []int, dm *dims) error {
			m := numel(sh[len(sh)-int(dm.Rank):])
			a := newArgs().Ptr(d + uint64(off[2]*4)).Ptr(pa + uint64(off[0]*4)).Ptr(pb + uint64(off[1]*4)).I64(m).Dims(dm).I32(int(op))
			return r.launch1D("binary_f32", m, a)
		})
	})
}

// GEGLU sets dst[..., i] = x[..., i]·gelu(x[..., n+i]) for x [..., 2n], dst [..., n].
func (b *Backend) GEGLU(dst, x *tensor.Tensor) error {
	return b.exec("GEGLU", func(r *run) error {
		if dst.Rank() == 0 || dst.Numel() == 0 {
			return nil
		}
		n := dst.Dim(-1)
		d, in, err := r.dstF32(dst, x)
		if err != nil {
			return err
		}
		s := in[0]
		rows := dst.Numel() / n
		return r.launch1D("geglu_f32", rows*n, newArgs().Ptr(d).Ptr(s).I64(rows).I64(n))
	})
}

// Softmax sets dst to the softmax of x over its last axis.
func (b *Backend) Softmax(dst, x *tensor.Tensor) error {
	if dst.Rank() == 0 {
		return b.Fill(dst, 1)
	}
	return b.exec("Softmax", func(r *run) error {
		n := dst.Dim(-1)
		if n == 0 || dst.Numel() == 0 {
			return nil
		}
		d, in, err := r.dstF32(dst, x)
		if err != nil {
			return err
		}
		s := in[0]
		return r.softmax(d, s, dst.Numel()/n, n, -1, 1)
	})
}

const rowThreads = 512

// softmax launches softmax_f32 over rows of n (see norm.cu for q0 and qrows).
func (r *run) softmax(dst, src uint64, rows, n, q0, qrows int) error {
	if rows > math.MaxInt32 {
		return fmt.Errorf("%w: %d rows", ErrUnsupported, rows)
	}
	a := newArgs().Ptr(dst).Ptr(src).I64(n).I32(q0).I32(qrows)
	return r.d.launch("softmax_f32", [3]uint32{uint32(rows), 1, 1}, [3]uint32{rowThreads, 1, 1}, 0, a)
}

// GroupNorm normalises x [N,C,...] over groups of C/groups channels, applies
// gamma and beta ([C], any dtype, nil for 1 and 0), then SiLU if silu.
func (b *Backend) GroupNorm(dst, x, gamma, beta *tensor.Tensor, groups int, eps float32, silu bool) error {
	return b.exec("GroupNorm", func(r *run) error {
		if x.Rank() < 2 || x.Numel() == 0 {
			return nil
		}
		shape := x.Shape()
		nb, ch := shape[0], shape[1]
		if groups <= 0 || ch%groups != 0 {
			return fmt.Errorf("%w: %d channels in %d groups", tensor.ErrShape, ch, groups)
		}
		spatial := x.Numel() / (nb * ch)
		d, in, err := r.dstF32(dst, x, gamma, beta)
		if err != nil {
			return err
		}
		s, g, be := in[0], in[1], in[2]
		fused := 0
		if silu {
			fused = 1
		}
		length := ch / groups * spatial
		splits, rowBlocks := groupNormGrid(nb*groups, length, nb*ch, spatial, r.d.sms)
		part, err := r.temp(tensor.F32, 2*3*nb*groups*splits) // (count, mean, M2) in float64
		if err != nil {
			return err
		}
		a := newArgs().Ptr(part).Ptr(s).I64(length).I32(splits)
		if err := r.d.launch("group_stats_f32", [3]uint32{uint32(nb * groups), uint32(splits), 1}, [3]uint32{rowThreads, 1, 1}, 0, a); err != nil {
			return err
		}
		a = newArgs().Ptr(d).Ptr(s).Ptr(part).Ptr(g).Ptr(be).I32(ch).I32(groups).I64(spatial).I32(splits).F32(eps).I32(fused)
		return r.d.launch("group_apply_f32", [3]uint32{uint32(nb * ch), uint32(rowBlocks), 1}, [3]uint32{groupApplyThreads, 1, 1}, 0, a)
	})
}

// layerNormWarpThreads is the block of the warp-per-row layer norms.
const layerNormWarpThreads = 256

// layerNormWarpKernel names the warp-per-row layer norm for rows of n
// elements, "" when they are too long for a warp's registers.
func layerNormWarpKernel(n int) string {
	switch {
	case n <= 32*32:
		return "layer_norm_warp32_f32"
	case n <= 64*32:
		return "layer_norm_warp64_f32"
	}
	return ""
}

// groupApplyThreads is the block of group_apply_f32, which handles four
// elements per thread and pass.
const groupApplyThreads = 256

// groupNormGrid splits each of ngroups groups of length elements into chunks
// for group_stats_f32, enough that the GPU's sms multiprocessors get two
// blocks each but never chunks under 8192 elements, and returns how many
// blocks group_apply_f32 runs along each of its rows of spatial elements.
func groupNormGrid(ngroups, length, rows, spatial, sms int) (splits, rowBlocks int) {
	splits = max(1, (2*max(sms, 1)+ngroups-1)/ngroups)
	splits = min(splits, max(1, length/8192), 65535)
	rowBlocks = (spatial + 4*groupApplyThreads - 1) / (4 * groupApplyThreads)
	// Rows are many when spatial is small: then one block per row is plenty.
	if rows >= 2*max(sms, 1) {
		rowBlocks = min(rowBlocks, 8)
	}
	return splits, min(max(rowBlocks, 1), 65535)
}

// LayerNorm normalises x over its last axis and applies gamma and beta (any
// dtype; nil for 1 and 0).
func (b *Backend) LayerNorm(dst, x, gamma, beta *tensor.Tensor, eps float32) error {
	return b.exec("LayerNorm", func(r *run) error {
		if x.Rank() == 0 || x.Numel() == 0 {
			return nil
		}
		n := x.Dim(-1)
		rows := x.Numel() / n
		if rows > math.MaxInt32 {
			return fmt.Errorf("%w: %d rows", ErrUnsupported, rows)
		}
		d, in, err := r.dstF32(dst, x, gamma, beta)
		if err != nil {
			return err
		}
		s, g, be := in[0], in[1], in[2]
		if k := layerNormWarpKernel(n); k != "" {
			a := newArgs().Ptr(d).Ptr(s).Ptr(g).Ptr(be).I64(rows).I32(n).F32(eps)
			perBlock := layerNormWarpThreads / 32
			return r.d.launch(k, [3]uint32{uint32((rows + perBlock - 1) / perBlock), 1, 1}, [3]uint32{layerNormWarpThreads, 1, 1}, 0, a)
		}
		a := newArgs().Ptr(d).Ptr(s).Ptr(g).Ptr(be).I64(n).F32(eps)
		return r.d.launch("layer_norm_f32", [3]uint32{uint32(rows), 1, 1}, [3]uint32{rowThreads, 1, 1}, 0, a)
	})
}

// Moments sets mean and variance (population) of x viewed as [rows, n], rows
// being the number of elements of mean.
func (b *Backend) Moments(mean, variance, x *tensor.Tensor) error {
	return b.exec("Moments", func(r *run) error {
		rows := mean.Numel()
		if rows == 0 {
			return nil
		}
		m, err := r.ptr(mean)
		if err != nil {
			return err
		}
		v, err := r.ptr(variance)
		if err != nil {
			return err
		}
		n := x.Numel() / rows
		if n == 0 {
			nan := float32(math.NaN())
			if err := r.launch1D("fill_f32", rows, newArgs().Ptr(m).I64(rows).F32(nan)); err != nil {
				return err
			}
			return r.launch1D("fill_f32", rows, newArgs().Ptr(v).I64(rows).F32(nan))
		}
		if rows > math.MaxInt32 {
			return fmt.Errorf("%w: %d rows", ErrUnsupported, rows)
		}
		s, err := r.f32(x)
		if err != nil {
			return err
		}
		a := newArgs().Ptr(m).Ptr(v).Ptr(s).I64(n)
		return r.d.launch("moments_f32", [3]uint32{uint32(rows), 1, 1}, [3]uint32{rowThreads, 1, 1}, 0, a)
	})
}

// Concat writes xs one after another along axis into dst, converting them to
// dst's dtype; they may be strided.
func (b *Backend) Concat(dst *tensor.Tensor, xs []*tensor.Tensor, axis int) error {
	return b.exec("Concat", func(r *run) error {
		d, err := r.ptr(dst)
		if err != nil {
			return err
		}
		ds := tensor.ContiguousStrides(dst.Shape())
		if axis < 0 || axis >= len(ds) {
			return fmt.Errorf("%w: axis %d of %v", tensor.ErrRange, axis, dst)
		}
		at := 0
		for _, x := range xs {
			p, err := r.ptr(x)
			if err != nil {
				return err
			}
			off := uint64(at * ds[axis] * dst.DType().Size())
			if err := r.copy(d+off, dst.DType(), ds, p, x.DType(), x.Strides(), x.Shape()); err != nil {
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
	return b.exec("ResizeNearest", func(r *run) error {
		xs, ds := x.Shape(), dst.Shape()
		if len(xs) != 4 || len(ds) != 4 {
			return fmt.Errorf("%w: %v into %v (want rank 4)", tensor.ErrShape, x, dst)
		}
		h, w, oh, ow := xs[2], xs[3], ds[2], ds[3]
		if h == 0 || w == 0 || oh == 0 || ow == 0 || dst.Numel() == 0 {
			return nil
		}
		d, in, err := r.dstF32(dst, x)
		if err != nil {
			return err
		}
		s := in[0]
		planes := xs[0] * xs[1]
		sh, sw := float32(h)/float32(oh), float32(w)/float32(ow)
		a := newArgs().Ptr(d).Ptr(s).I64(planes).I32(h).I32(w).I32(oh).I32(ow).F32(sh).F32(sw)
		return r.launch1D("resize_nearest_f32", dst.Numel(), a)
	})
}

// Embedding sets row i of dst [len(ids),D] to row ids[i] of table [V,D] (any
// dtype and strides).
func (b *Backend) Embedding(dst, table *tensor.Tensor, ids []int) error {
	ts := table.Shape()
	if len(ts) != 2 {
		return fmt.Errorf("cuda.Embedding: %w: table %v (want rank 2)", tensor.ErrShape, table)
	}
	for _, id := range ids {
		if id < 0 || id >= ts[0] {
			return fmt.Errorf("cuda.Embedding: %w: id %d for table %v", tensor.ErrRange, id, ts)
		}
	}
	return b.exec("Embedding", func(r *run) error {
		if len(ids) == 0 || ts[1] == 0 {
			return nil
		}
		d, err := r.ptr(dst)
		if err != nil {
			return err
		}
		t, err := r.ptr(table)
		if err != nil {
			return err
		}
		ids64 := make([]int64, len(ids))
		for i, id := range ids {
			ids64[i] = int64(id)
		}
		ip, err := r.upload(ids64)
		if err != nil {
			return err
		}
		st := table.Strides()
		a := newArgs().Ptr(d).Ptr(t).Ptr(ip).I64(len(ids)).I64(ts[1]).I64(st[0]).I64(st[1])
		return r.launch1D("embedding_"+dtypeName(table.DType()), len(ids)*ts[1], a)
	})
}

// upload copies v to a temporary device buffer.
func (r *run) upload(v []int64) (uint64, error) {
	p, err := r.temp(tensor.F32, 2*len(v))
	if err != nil {
		return 0, err
	}
	if len(v) == 0 {
		return p, nil
	}
	err = r.d.drv.check("cuMemcpyHtoDAsync_v2", r.d.drv.cuMemcpyHtoDAsync(p, unsafePointer(v), uint64(8*len(v)), r.d.stream))
	return p, err
}

package tensor

import (
	"runtime"

	"github.com/sdgo/sdgo/kernels/asm"
)

// This file holds the CPU matrix product and the helpers that the convolution and
// attention share with it: how a strided view becomes an asm.Operand without a copy.

// gemmElem maps a dtype to the element type of a GEMM operand.
func gemmElem(dt DType) asm.Elem {
	switch dt {
	case F16:
		return asm.ElemF16
	case BF16:
		return asm.ElemBF16
	}
	return asm.ElemF32
}

// gemmOperandAt returns the operand whose memory starts at element off of s, with
// the given row stride, as a plain or transposed operand.
func gemmOperandAt(s *CPUStorage, off, stride int, trans bool) asm.Operand {
	o := asm.Operand{Elem: gemmElem(s.dt), Stride: stride, Trans: trans}
	if s.dt == F32 {
		o.F32 = s.F32[min(off, len(s.F32)):]
	} else {
		o.U16 = s.U16[min(off, len(s.U16)):]
	}
	return o
}

// GemmLayout says how a rows×cols matrix with strides (sr, sc) is read by a GEMM:
// row-major with row stride Stride, or (trans) as the transpose of a row-major
// cols×rows matrix. ok is false when neither stride is 1 (or the rows overlap), in
// which case the matrix needs a contiguous copy. Strides of dimensions of size 1
// do not matter. Device backends use it so that every backend accepts the same
// views.
func GemmLayout(rows, cols, sr, sc int) (stride int, trans, ok bool) {
	switch {
	case rows == 0 || cols == 0:
		return max(cols, 1), false, true
	case rows == 1 && (sc == 1 || cols == 1):
		return cols, false, true
	case rows == 1:
		if sc < 1 {
			return 0, false, false
		}
		return sc, true, true // cols rows of one element each, sc apart
	case cols == 1:
		if sr < 1 {
			return 0, false, false
		}
		return sr, false, true
	case sc == 1 && sr >= cols:
		return sr, false, true
	case sr == 1 && sc >= rows:
		return sc, true, true
	}
	return 0, false, false
}

// gemmReady reports whether the last two dimensions of t can be read by the GEMM
// without a copy.
func gemmReady(t *Tensor) bool {
	r := len(t.shape)
	_, _, ok := GemmLayout(t.shape[r-2], t.shape[r-1], t.strides[r-2], t.strides[r-1])
	return ok
}

// gemmBatchStride is the stride of the batch dimension of a [B,rows,cols] view;
// 0 for a single matrix shared by the batch.
func gemmBatchStride(t *Tensor) int {
	if t.shape[0] == 1 {
		return 0
	}
	return t.strides[0]
}

// gemmVector returns the elements of the 1-D tensor t (any dtype, any stride) as
// float32: a slice of t's storage when that is possible, else a fresh copy.
func gemmVector(c *CPU, op string, t *Tensor) ([]float32, error) {
	s, err := c.storage(op, t.buf.s)
	if err != nil {
		return nil, err
	}
	n, st := t.shape[0], t.strides[0]
	if n == 0 {
		return nil, nil
	}
	if s.dt == F32 && (st == 1 || n == 1) {
		return s.F32[t.offset : t.offset+n], nil
	}
	out := make([]float32, n)
	switch {
	case s.dt == F32:
		for i := range out {
			out[i] = s.F32[t.offset+i*st]
		}
	case st == 1 || n == 1:
		if s.dt == F16 {
			asm.F16ToF32(out, s.U16[t.offset:t.offset+n])
		} else {
			asm.BF16ToF32(out, s.U16[t.offset:t.offset+n])
		}
	default:
		bits := make([]uint16, n)
		for i := range bits {
			bits[i] = s.U16[t.offset+i*st]
		}
		if s.dt == F16 {
			asm.F16ToF32(out, bits)
		} else {
			asm.BF16ToF32(out, bits)
		}
	}
	return out, nil
}

// gemmFillRows sets each of the m rows of c (n elements, ldc apart) to bias.
func gemmFillRows(c []float32, m, n, ldc int, bias []float32) {
	for i := 0; i < m; i++ {
		copy(c[i*ldc:i*ldc+n], bias[:n])
	}
}

// matmulSmall is the work (m·n·k) below which a product of one batch item is run on
// one goroutine and the batch is spread over the cores instead: Gemm itself splits
// only products large enough to share.
const matmulSmall = 1 << 22

// MatMul sets dst[i] = alpha·a[i]·b[i] + bias for every batch index; see Backend.
//
// a and b of any dtype are handed to asm.Gemm as they lie in memory: a transposed
// view becomes a transposed operand, F16 and BF16 elements are widened while the
// GEMM packs them. When b is shared by the batch and a's matrices lie one after
// another, the whole batch is one product of B·M rows. Otherwise the batch is
// spread over the cores (one goroutine per product) when the products are small,
// and each product uses every core when they are large.
func (c *CPU) MatMul(dst, a, b, bias *Tensor, alpha float32) error {
	defer keepAlive(dst, a, b, bias)
	const op = "MatMul"
	ds, err := c.storage(op, dst.buf.s)
	if err != nil {
		return err
	}
	as, err := c.storage(op, a.buf.s)
	if err != nil {
		return err
	}
	bs, err := c.storage(op, b.buf.s)
	if err != nil {
		return err
	}
	if dst.dtype != F32 {
		return dtypeErr(op, "destination %v (want F32)", dst)
	}
	if len(dst.shape) != 3 || len(a.shape) != 3 || len(b.shape) != 3 {
		return shapeErr(op, "%v × %v into %v: want rank 3", a, b, dst)
	}
	nb, m, n := dst.shape[0], dst.shape[1], dst.shape[2]
	k := a.shape[2]
	if a.shape[1] != m || b.shape[1] != k || b.shape[2] != n ||
		(a.shape[0] != nb && a.shape[0] != 1) || (b.shape[0] != nb && b.shape[0] != 1) {
		return shapeErr(op, "%v × %v into %v", a, b, dst)
	}
	if bias != nil && (len(bias.shape) != 1 || bias.shape[0] != n) {
		return shapeErr(op, "bias %v for %v × %v", bias, a, b)
	}
	if nb == 0 || m == 0 || n == 0 {
		return nil
	}
	lda, transA, okA := GemmLayout(m, k, a.strides[1], a.strides[2])
	ldb, transB, okB := GemmLayout(k, n, b.strides[1], b.strides[2])
	if !okA || !okB {
		return shapeErr(op, "%v (strides %v) × %v (strides %v): the last two strides of each operand must include a 1", a, a.strides, b, b.strides)
	}
	ldc, transC, okC := GemmLayout(m, n, dst.strides[1], dst.strides[2])
	if !okC || transC {
		return shapeErr(op, "destination %v with strides %v: want rows with stride 1", dst, dst.strides)
	}
	var biasF []float32
	if bias != nil {
		if biasF, err = gemmVector(c, op, bias); err != nil {
			return err
		}
	}
	aBS, bBS, dBS := gemmBatchStride(a), gemmBatchStride(b), gemmBatchStride(dst)

	// One product of nb·m rows when b is shared and the rows of a and dst are evenly
	// spaced across the batch.
	if nb == 1 || (bBS == 0 && !transA && aBS == m*lda && dBS == m*ldc) {
		rows := nb * m
		cs := ds.F32[dst.offset:]
		beta := float32(0)
		if biasF != nil {
			beta = 1
			asm.ParallelFor(rows, max(1, 1<<15/n), func(lo, hi int) {
				gemmFillRows(cs[lo*ldc:], hi-lo, n, ldc, biasF)
			})
		}
		asm.Gemm(rows, n, k, alpha, gemmOperandAt(as, a.offset, lda, transA), gemmOperandAt(bs, b.offset, ldb, transB), beta, cs, ldc, 0)
		return nil
	}

	product := func(i, threads int) {
		cs := ds.F32[dst.offset+i*dBS:]
		beta := float32(0)
		if biasF != nil {
			beta = 1
			gemmFillRows(cs, m, n, ldc, biasF)
		}
		asm.Gemm(m, n, k, alpha, gemmOperandAt(as, a.offset+i*aBS, lda, transA), gemmOperandAt(bs, b.offset+i*bBS, ldb, transB), beta, cs, ldc, threads)
	}
	if work := m * n * max(k, 1); work < matmulSmall || nb >= 4*runtime.GOMAXPROCS(0) {
		grain := max(1, matmulSmall/4/work)
		asm.ParallelFor(nb, grain, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				product(i, 1)
			}
		})
		return nil
	}
	for i := range nb {
		product(i, 0)
	}
	return nil
}

package tensor

import "slices"

// This file holds the package-level matrix products: MatMul, Linear, Conv2d and
// Attention. Each checks shapes and backends, arranges its operands as the views
// the Backend methods take (copying only an operand that no GEMM can read in
// place), allocates the F32 result and calls the backend.
//
// Operands keep their dtype: an F16 or BF16 weight is handed to the backend as it
// is stored and widened inside the GEMM, so a checkpoint's weights are never
// converted whole.

// batchStride returns the single stride that walks the dimensions shape (with
// strides) in row-major order, and whether there is one: 0 when they hold one
// element or are all broadcast.
func batchStride(shape, strides []int) (int, bool) {
	stride, inner := 0, -1
	for i := len(shape) - 1; i >= 0; i-- {
		if shape[i] == 1 {
			continue
		}
		if inner < 0 {
			stride = strides[i]
		} else if strides[i] != strides[inner]*shape[inner] {
			return 0, false
		}
		inner = i
	}
	return stride, true
}

// matrixBatch returns t [..., R, C] as a [B,R,C] view for Backend.MatMul, where B
// is the number of elements of batch, the broadcast shape of the batch dimensions
// that t's leading dimensions broadcast to. The view shares t's storage when its
// strides allow (a transposed matrix, a batch of one shared by all, evenly spaced
// matrices) and is a contiguous copy otherwise.
func matrixBatch(t *Tensor, batch []int) (*Tensor, error) {
	r := len(t.shape)
	rows, cols := t.shape[r-2], t.shape[r-1]
	src := t.view(slices.Clone(t.shape), slices.Clone(t.strides), t.offset)
	if !gemmReady(src) {
		c, err := t.Contiguous()
		src.Release()
		if err != nil {
			return nil, err
		}
		src = c
	}
	full := append(slices.Clone(batch), rows, cols)
	e, err := src.Expand(full...)
	src.Release()
	if err != nil {
		return nil, err
	}
	defer e.Release()
	nb := len(batch)
	st, ok := batchStride(batch, e.strides[:nb])
	base := e
	if !ok {
		// Batch dimensions that do not merge into one stride (a broadcast in the
		// middle, a permuted batch): materialise them.
		if base, err = e.Contiguous(); err != nil {
			return nil, err
		}
		defer base.Release()
		st = rows * cols
	}
	return base.view([]int{numel(batch), rows, cols}, []int{st, base.strides[nb], base.strides[nb+1]}, base.offset), nil
}

// MatMul returns the matrix product of a [..., M, K] and b [..., K, N] as an F32
// tensor [..., M, N], as torch.matmul for operands of rank 2 or more: the leading
// (batch) dimensions broadcast as in NumPy, so a matrix b [K,N] multiplies every
// matrix of a batched a. a and b may be of any dtype (an F16 or BF16 operand is
// widened inside the GEMM) and may be views: a transposed matrix (Transpose of the
// last two dimensions), a broadcast batch or a slice is read in place; only an
// operand whose last two strides are both different from 1 is copied.
func MatMul(a, b *Tensor) (*Tensor, error) {
	const op = "MatMul"
	checkLive(op, a, b)
	if err := sameBackend(op, a, b); err != nil {
		return nil, err
	}
	ra, rb := a.Rank(), b.Rank()
	if ra < 2 || rb < 2 {
		return nil, shapeErr(op, "%v × %v: want operands of rank 2 or more", a, b)
	}
	m, k, k2, n := a.shape[ra-2], a.shape[ra-1], b.shape[rb-2], b.shape[rb-1]
	if k != k2 {
		return nil, shapeErr(op, "%v × %v: inner dimensions %d and %d differ", a, b, k, k2)
	}
	batch, ok := BroadcastShapes(a.shape[:ra-2], b.shape[:rb-2])
	if !ok {
		return nil, shapeErr(op, "%v × %v: batch dimensions %v and %v do not broadcast", a, b, a.shape[:ra-2], b.shape[:rb-2])
	}
	shape := append(slices.Clone(batch), m, n)
	if err := checkShape(op, shape); err != nil {
		return nil, err
	}
	out, err := New(a.Backend(), F32, shape...)
	if err != nil {
		return nil, err
	}
	if out.Numel() == 0 {
		return out, nil
	}
	if err := matmulInto(out, a, b, nil, batch); err != nil {
		out.Release()
		return nil, backendFailed(op, err, a, b)
	}
	return out, nil
}

// matmulInto runs Backend.MatMul for out [batch..., M, N] = a·b + bias, where a
// and b are [..., M, K] and [..., K, N] with batch dimensions that broadcast to
// batch. An error of the backend is returned as it is.
func matmulInto(out, a, b, bias *Tensor, batch []int) error {
	a3, err := matrixBatch(a, batch)
	if err != nil {
		return err
	}
	defer a3.Release()
	b3, err := matrixBatch(b, batch)
	if err != nil {
		return err
	}
	defer b3.Release()
	shape := []int{a3.shape[0], a3.shape[1], b3.shape[2]}
	o3 := out.view(shape, ContiguousStrides(shape), out.offset)
	defer o3.Release()
	return out.Backend().MatMul(o3, a3, b3, bias, 1)
}

// Linear returns x·wᵀ + bias, torch.nn.Linear: x [..., in], w [out, in] as a
// checkpoint stores it, in any dtype (F16 and BF16 are widened inside the GEMM,
// which reads w as a transposed operand: no converted or transposed copy is
// made), bias [out] of any dtype or nil. The result is F32 [..., out]; the bias
// is written into it before the product accumulates, not added in a second pass.
func Linear(x, w, bias *Tensor) (*Tensor, error) {
	const op = "Linear"
	checkLive(op, x, w)
	if err := sameBackend(op, x, w, bias); err != nil {
		return nil, err
	}
	if w.Rank() != 2 {
		return nil, shapeErr(op, "%v × weight %v: want a weight [out, in]", x, w)
	}
	nOut, nIn := w.shape[0], w.shape[1]
	if x.Rank() < 1 || x.Dim(-1) != nIn {
		return nil, shapeErr(op, "%v × weight %v: want input [..., %d]", x, w, nIn)
	}
	if err := checkParam(op, "bias", bias, w, nOut, true); err != nil {
		return nil, err
	}
	lead := x.shape[:x.Rank()-1]
	shape := append(slices.Clone(lead), nOut)
	if err := checkShape(op, shape); err != nil {
		return nil, err
	}
	out, err := New(x.Backend(), F32, shape...)
	if err != nil {
		return nil, err
	}
	if out.Numel() == 0 {
		return out, nil
	}
	// x as one matrix [rows, in] when its leading dimensions merge; else a copy.
	xm := x.view(slices.Clone(x.shape), slices.Clone(x.strides), x.offset)
	rs, ok := batchStride(lead, x.strides[:len(lead)])
	if !ok {
		c, err := x.Contiguous()
		xm.Release()
		if err != nil {
			out.Release()
			return nil, err
		}
		xm, rs = c, nIn
	}
	defer xm.Release()
	x2 := xm.view([]int{numel(lead), nIn}, []int{rs, xm.strides[len(lead)]}, xm.offset)
	defer x2.Release()
	wt, err := w.Transpose(0, 1)
	if err != nil {
		out.Release()
		return nil, err
	}
	defer wt.Release()
	if err := matmulInto(out, x2, wt, bias, nil); err != nil {
		out.Release()
		return nil, backendFailed(op, err, x, w, bias)
	}
	return out, nil
}

// Conv2d returns the 2-D convolution (cross-correlation, as torch.nn.Conv2d) of x
// [N,C,H,W] with w [O,C,KH,KW] plus bias [O] (or nil): an F32 tensor
// [N,O,H',W'], H' = (H+2·Padding+PadEnd-KH)/Stride+1 and W' likewise. w and bias
// may be of any dtype and are not converted; x is read as F32 (an F16 or strided x
// is copied first).
func Conv2d(x, w, bias *Tensor, p Conv2dParams) (*Tensor, error) {
	const op = "Conv2d"
	checkLive(op, x, w)
	if err := sameBackend(op, x, w, bias); err != nil {
		return nil, err
	}
	if x.Rank() != 4 || w.Rank() != 4 {
		return nil, shapeErr(op, "%v * weight %v: want x [N,C,H,W] and weight [O,C,KH,KW]", x, w)
	}
	if x.shape[1] != w.shape[1] {
		return nil, shapeErr(op, "%v * weight %v: %d input channels, weight takes %d", x, w, x.shape[1], w.shape[1])
	}
	if p.Stride < 0 || p.Padding < 0 || p.PadEnd < 0 {
		return nil, rangeErr(op, "%v * weight %v: stride %d, padding %d, end padding %d", x, w, p.Stride, p.Padding, p.PadEnd)
	}
	stride := max(p.Stride, 1)
	kh, kw := w.shape[2], w.shape[3]
	ho := conv2dOutSize(x.shape[2], kh, stride, p.Padding, p.PadEnd)
	wo := conv2dOutSize(x.shape[3], kw, stride, p.Padding, p.PadEnd)
	if kh < 1 || kw < 1 || ho < 1 || wo < 1 {
		return nil, shapeErr(op, "%v * weight %v (stride %d, padding %d+%d): kernel larger than the padded input",
			x, w, stride, p.Padding, p.PadEnd)
	}
	oc := w.shape[0]
	if err := checkParam(op, "bias", bias, w, oc, true); err != nil {
		return nil, err
	}
	shape := []int{x.shape[0], oc, ho, wo}
	if err := checkShape(op, shape); err != nil {
		return nil, err
	}
	out, err := New(x.Backend(), F32, shape...)
	if err != nil {
		return nil, err
	}
	if out.Numel() == 0 {
		return out, nil
	}
	xc, err := asF32(x, true)
	if err != nil {
		out.Release()
		return nil, err
	}
	defer xc.Release()
	wc, err := w.Contiguous()
	if err != nil {
		out.Release()
		return nil, err
	}
	defer wc.Release()
	if err := x.Backend().Conv2d(out, xc, wc, bias, p); err != nil {
		out.Release()
		return nil, backendFailed(op, err, x, w, bias)
	}
	return out, nil
}

// Attention returns scaled-dot-product attention softmax(q·kᵀ·scale)·v per batch
// and head: q [B,H,Lq,D], k [B,H,Lk,D], v [B,H,Lk,Dv] (Lk ≥ 1) give an F32
// [B,H,Lq,Dv]. q, k and v may be of any dtype and may be views: the usual
// projection output [B,L,H,D] permuted to [B,H,L,D] is read in place. p chooses the
// scale (0: 1/√D), the mode (flash by default: the scores never exist whole), the
// block sizes and a causal mask.
func Attention(q, k, v *Tensor, p AttentionParams) (*Tensor, error) {
	const op = "Attention"
	checkLive(op, q, k, v)
	if err := checkAttention(op, q, k, v, p); err != nil {
		return nil, err
	}
	shape := []int{q.shape[0], q.shape[1], q.shape[2], v.shape[3]}
	if err := checkShape(op, shape); err != nil {
		return nil, err
	}
	out, err := New(q.Backend(), F32, shape...)
	if err != nil {
		return nil, err
	}
	if err := attentionInto(op, out, q, k, v, p); err != nil {
		out.Release()
		return nil, err
	}
	return out, nil
}

// AttentionInto is Attention writing into dst [B,H,Lq,Dv], an F32 tensor or view
// whose last stride is 1: a [B,Lq,H,Dv] buffer permuted to [B,H,Lq,Dv] receives
// the heads already interleaved, ready for the output projection.
func AttentionInto(dst, q, k, v *Tensor, p AttentionParams) error {
	const op = "AttentionInto"
	checkLive(op, dst, q, k, v)
	if err := checkAttention(op, q, k, v, p); err != nil {
		return err
	}
	if err := sameBackend(op, q, dst); err != nil {
		return err
	}
	if dst.dtype != F32 {
		return dtypeErr(op, "destination %v (want F32)", dst)
	}
	want := []int{q.shape[0], q.shape[1], q.shape[2], v.shape[3]}
	if !slices.Equal(dst.shape, want) {
		return shapeErr(op, "destination %v for q %v, v %v (want %v)", dst, q, v, want)
	}
	if !attnReady(dst) {
		return shapeErr(op, "destination %v with strides %v: want a last stride of 1 and rows that do not overlap", dst, dst.strides)
	}
	return attentionInto(op, dst, q, k, v, p)
}

// checkAttention checks the operands and parameters of Attention.
func checkAttention(op string, q, k, v *Tensor, p AttentionParams) error {
	if err := sameBackend(op, q, k, v); err != nil {
		return err
	}
	if q.Rank() != 4 || k.Rank() != 4 || v.Rank() != 4 {
		return shapeErr(op, "q %v, k %v, v %v: want [B,H,L,D]", q, k, v)
	}
	if k.shape[0] != q.shape[0] || k.shape[1] != q.shape[1] || k.shape[3] != q.shape[3] {
		return shapeErr(op, "q %v and k %v: batch, heads or head size differ", q, k)
	}
	if !slices.Equal(v.shape[:3], k.shape[:3]) {
		return shapeErr(op, "k %v and v %v: batch, heads or length differ", k, v)
	}
	if k.shape[2] == 0 {
		return shapeErr(op, "q %v, k %v: no keys", q, k)
	}
	if p.BlockQ < 0 || p.BlockK < 0 || (p.Mode != AttentionFlash && p.Mode != AttentionSliced) {
		return rangeErr(op, "mode %d, blocks %d×%d", p.Mode, p.BlockQ, p.BlockK)
	}
	return nil
}

// attnReady reports whether t [B,H,L,D] has a last stride of 1 and rows that do
// not overlap.
func attnReady(t *Tensor) bool {
	l, d := t.shape[2], t.shape[3]
	return (d <= 1 || t.strides[3] == 1) && (l <= 1 || t.strides[2] >= max(d, 1))
}

func attentionInto(op string, dst, q, k, v *Tensor, p AttentionParams) error {
	if dst.Numel() == 0 {
		return nil
	}
	ops := [3]*Tensor{q, k, v}
	for i, t := range ops {
		if attnReady(t) {
			continue
		}
		c, err := t.Contiguous()
		if err != nil {
			return err
		}
		defer c.Release()
		ops[i] = c
	}
	if err := q.Backend().Attention(dst, ops[0], ops[1], ops[2], p); err != nil {
		return backendFailed(op, err, q, k, v)
	}
	return nil
}

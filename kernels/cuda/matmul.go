package cuda

import (
	"errors"
	"fmt"
	"math"

	"github.com/sdgo/sdgo/tensor"
)

// batchStride is the stride of dimension 0 of a [B,...] view, 0 when B is 1.
func batchStride(shape, strides []int) int {
	if shape[0] == 1 {
		return 0
	}
	return strides[0]
}

// gemmCall is a batched row-major product C[i] = alpha·A[i]·B[i] + beta·C[i] with
// general element strides: A(i, k) at a + i·sar + k·sac, and so on.
type gemmCall struct {
	nb, m, n, k   int
	a, b, c       uint64
	adt, bdt      tensor.DType
	sar, sac, sab int
	sbr, sbc, sbb int
	ldc, scb      int
	alpha, beta   float32
}

// ptxGemm runs g with the embedded GEMM kernel.
func (r *run) ptxGemm(g gemmCall) error {
	if g.nb == 0 || g.m == 0 || g.n == 0 {
		return nil
	}
	gy := (g.m + 63) / 64
	if g.m > math.MaxInt32 || g.n > math.MaxInt32 || g.k > math.MaxInt32 || g.nb > math.MaxInt32 || gy > 65535 {
		return fmt.Errorf("%w: GEMM of %d×%d×%d", ErrUnsupported, g.m, g.n, g.k)
	}
	name := "gemm_" + dtypeName(g.adt) + "_" + dtypeName(g.bdt)
	a := newArgs().Ptr(g.c).Ptr(g.a).Ptr(g.b).I32(g.m).I32(g.n).I32(g.k).I32(g.nb).
		I64(g.sar).I64(g.sac).I64(g.sab).I64(g.sbr).I64(g.sbc).I64(g.sbb).I64(g.ldc).I64(g.scb).
		F32(g.alpha).F32(g.beta)
	grid := [3]uint32{uint32((g.n + 63) / 64), uint32(gy), uint32(min(g.nb, 65535))}
	return r.d.launch(name, grid, [3]uint32{256, 1, 1}, 0, a)
}

// gemm runs g on cuBLAS when the backend uses it (see blasGemm), else, or when
// cuBLAS cannot take the product, on the PTX GEMM.
func (r *run) gemm(g gemmCall) error {
	if r.blasOK() && g.m > 0 && g.n > 0 && g.nb > 0 {
		err := r.blasGemm(g)
		if !errors.Is(err, ErrUnsupported) {
			return err
		}
	}
	return r.ptxGemm(g)
}

// blasGemm runs g on cuBLAS with both operands in gemmDType's dtype: an
// operand of another dtype, or whose strides cuBLAS cannot read (no unit
// stride), is first copied into a contiguous temporary of that dtype (F16/BF16
// weights widened to F32 in FP32 mode, F32 activations rounded to F16/BF16 in
// mixed mode). In FP32 mode an operand pair of one dtype with readable strides
// is read in place, as before.
func (r *run) blasGemm(g gemmCall) error {
	a, b, dt, err := r.blasOperands(g)
	if err != nil {
		return err
	}
	return r.d.blas.gemm(g.nb, g.m, g.n, g.k, g.alpha, g.beta, a, b, g.c, g.ldc, g.scb, computeType(r.prec, dt))
}

// blasOperands returns g's operands as cuBLAS and cuBLASLt read them (see
// gemmOperand) and their dtype, or ErrUnsupported for an output cuBLAS cannot
// write.
func (r *run) blasOperands(g gemmCall) (a, b matOperand, dt tensor.DType, err error) {
	if g.ldc < g.n {
		return a, b, dt, fmt.Errorf("%w: ldc %d below %d", ErrUnsupported, g.ldc, g.n)
	}
	dt = gemmDType(r.prec, g.adt, g.bdt)
	if a, err = r.gemmOperand(g.nb, g.m, g.k, g.a, g.adt, g.sar, g.sac, g.sab, dt); err != nil {
		return a, b, dt, err
	}
	b, err = r.gemmOperand(g.nb, g.k, g.n, g.b, g.bdt, g.sbr, g.sbc, g.sbb, dt)
	return a, b, dt, err
}

// gemmOperand returns the rows×cols operand at p (dtype sdt, strides sr, sc,
// batch stride sb, nb batch items) as cuBLAS reads it in dtype dt: in place when
// it is of dt and gemmLayout accepts its strides, else as a contiguous copy.
func (r *run) gemmOperand(nb, rows, cols int, p uint64, sdt tensor.DType, sr, sc, sb int, dt tensor.DType) (matOperand, error) {
	if sdt == dt {
		if ld, trans, ok := tensor.GemmLayout(rows, cols, sr, sc); ok {
			return matOperand{ptr: p, dt: dt, ld: ld, trans: trans, batch: sb}, nil
		}
	}
	items := nb
	if sb == 0 {
		items = 1
	}
	n := items * rows * cols
	q, err := r.temp(dt, n)
	if err != nil {
		return matOperand{}, err
	}
	shape := []int{items, rows, cols}
	if err := r.copy(q, dt, tensor.ContiguousStrides(shape), p, sdt, []int{sb, sr, sc}, shape); err != nil {
		return matOperand{}, err
	}
	bs := rows * cols
	if items == 1 {
		bs = 0
	}
	return matOperand{ptr: q, dt: dt, ld: max(cols, 1), batch: bs}, nil
}

// MatMul sets dst[i] = alpha·a[i]·b[i] + bias for every batch index i; see
// tensor.Backend. a and b may be of any dtype and strided. With cuBLAS the
// product runs there (FP32 accumulation; see Precision for the operands'
// dtypes: in FP32 mode F32 stays F32, no TF32, and F16/BF16 operands paired
// with F32 ones are widened to F32 temporaries), otherwise on the PTX GEMM,
// which reads any strides and widens F16/BF16 as it loads.
func (b *Backend) MatMul(dst, x, y, bias *tensor.Tensor, alpha float32) error {
	return b.exec("MatMul", func(r *run) error {
		ds, xs, ys := dst.Shape(), x.Shape(), y.Shape()
		if dst.DType() != tensor.F32 {
			return fmt.Errorf("%w: destination %v (want F32)", tensor.ErrDType, dst)
		}
		if len(ds) != 3 || len(xs) != 3 || len(ys) != 3 {
			return fmt.Errorf("%w: %v × %v into %v: want rank 3", tensor.ErrShape, x, y, dst)
		}
		nb, m, n, k := ds[0], ds[1], ds[2], xs[2]
		if xs[1] != m || ys[1] != k || ys[2] != n || (xs[0] != nb && xs[0] != 1) || (ys[0] != nb && ys[0] != 1) {
			return fmt.Errorf("%w: %v × %v into %v", tensor.ErrShape, x, y, dst)
		}
		if bias != nil && (bias.Rank() != 1 || bias.Dim(0) != n) {
			return fmt.Errorf("%w: bias %v for %v × %v", tensor.ErrShape, bias, x, y)
		}
		if nb == 0 || m == 0 || n == 0 {
			return nil
		}
		dstr := dst.Strides()
		if n > 1 && dstr[2] != 1 {
			return fmt.Errorf("%w: destination %v with strides %v: want rows with stride 1", tensor.ErrShape, dst, dstr)
		}
		c, err := r.ptr(dst)
		if err != nil {
			return err
		}
		pa, err := r.ptr(x)
		if err != nil {
			return err
		}
		pb, err := r.ptr(y)
		if err != nil {
			return err
		}
		xst, yst := x.Strides(), y.Strides()
		g := gemmCall{
			nb: nb, m: m, n: n, k: k, a: pa, b: pb, c: c, adt: x.DType(), bdt: y.DType(),
			sar: xst[1], sac: xst[2], sab: batchStride(xs, xst),
			sbr: yst[1], sbc: yst[2], sbb: batchStride(ys, yst),
			ldc: dstr[1], scb: batchStride(ds, dstr), alpha: alpha,
		}
		if bias == nil {
			return r.gemm(g)
		}
		pv, err := r.ptr(bias)
		if err != nil {
			return err
		}
		bs := bias.Strides()[0]
		// fill makes dst's rows start as the bias, for a product that
		// accumulates onto them (beta = 1).
		fill := func() error {
			return r.copy(c, tensor.F32, []int{batchStride(ds, dstr), dstr[1], dstr[2]}, pv, bias.DType(), []int{0, 0, bs}, ds)
		}
		if r.prec != FP32 && r.blasOK() {
			err := r.blasGemmBias(g, pv, bias.DType(), bs, fill)
			if !errors.Is(err, ErrUnsupported) {
				return err
			}
		}
		if err := fill(); err != nil {
			return err
		}
		g.beta = 1
		return r.gemm(g)
	})
}

// blasGemmBias runs g (beta 0) plus the bias at pv (dtype bdt, stride bs) in
// TF32, FP16 and BF16 modes: the operands prepared as blasGemm prepares them,
// then the product with the bias in cuBLASLt's epilogue (ltGemm), or, when
// cuBLASLt cannot run it, fill (dst = bias) and cublasGemmEx with beta = 1 on
// the same operands. An error wrapping ErrUnsupported means nothing was
// computed and the caller should take its own path.
func (r *run) blasGemmBias(g gemmCall, pv uint64, bdt tensor.DType, bs int, fill func() error) error {
	a, b, dt, err := r.blasOperands(g)
	if err != nil {
		return err
	}
	compute := computeType(r.prec, dt)
	if err := r.ltGemm(g, a, b, pv, bdt, bs, compute); !errors.Is(err, ErrUnsupported) {
		if err == nil {
			r.path = "cublasLt"
		}
		return err
	}
	if err := fill(); err != nil {
		return err
	}
	return r.d.blas.gemm(g.nb, g.m, g.n, g.k, g.alpha, 1, a, b, g.c, g.ldc, g.scb, compute)
}

// conv2dOutSize is the output length of a convolution along one axis.
func conv2dOutSize(in, k, stride, pad, padEnd int) int {
	n := in + 2*pad + padEnd - k
	if n < 0 {
		return 0
	}
	return n/stride + 1
}

// Conv2d sets dst = conv(x, w) + bias on NCHW tensors (see tensor.Backend). In
// FP32 mode (and without cuBLAS): an implicit GEMM that gathers the input's
// columns as it loads its tiles, with the weight in its own dtype. In TF32
// mode: im2col + cuBLAS (convGemm). In FP16 and BF16 modes: conv.cu's
// tensor-core implicit GEMM or convGemm, as convTC chooses (SDGO_CUDA_CONV).
func (b *Backend) Conv2d(dst, x, w, bias *tensor.Tensor, p tensor.Conv2dParams) error {
	return b.exec("Conv2d", func(r *run) error {
		xs, ws, ds := x.Shape(), w.Shape(), dst.Shape()
		if dst.DType() != tensor.F32 {
			return fmt.Errorf("%w: destination %v (want F32)", tensor.ErrDType, dst)
		}
		if len(xs) != 4 || len(ws) != 4 || len(ds) != 4 {
			return fmt.Errorf("%w: %v * %v into %v: want rank 4", tensor.ErrShape, x, w, dst)
		}
		nImg, ch, h, wd := xs[0], xs[1], xs[2], xs[3]
		oc, kh, kw := ws[0], ws[2], ws[3]
		ho, wo := ds[2], ds[3]
		stride := max(p.Stride, 1)
		if ws[1] != ch || ds[0] != nImg || ds[1] != oc || p.Padding < 0 || p.PadEnd < 0 ||
			ho != conv2dOutSize(h, kh, stride, p.Padding, p.PadEnd) || wo != conv2dOutSize(wd, kw, stride, p.Padding, p.PadEnd) {
			return fmt.Errorf("%w: %v * %v (stride %d, padding %d+%d) into %v", tensor.ErrShape, x, w, stride, p.Padding, p.PadEnd, dst)
		}
		if bias != nil && (bias.Rank() != 1 || bias.Dim(0) != oc) {
			return fmt.Errorf("%w: bias %v for weight %v", tensor.ErrShape, bias, w)
		}
		if !dst.IsContiguous() {
			return fmt.Errorf("%w: destination %v is not contiguous", tensor.ErrShape, dst)
		}
		if dst.Numel() == 0 {
			return nil
		}
		ncols := nImg * ho * wo
		kdim := ch * kh * kw
		if ncols > math.MaxInt32 || kdim > math.MaxInt32 || (oc+63)/64 > 65535 || (ncols+63)/64 > math.MaxInt32 {
			return fmt.Errorf("%w: convolution %v * %v", ErrUnsupported, x, w)
		}
		d, in, err := r.dstF32(dst, x)
		if err != nil {
			return err
		}
		px := in[0]
		if dt, ok := r.mixedDType(); ok || (r.prec == TF32 && r.blasOK()) {
			if ok {
				return r.convTC(d, px, w, bias, dt, nImg, ch, h, wd, oc, kh, kw, ho, wo, stride, p.Padding, p.PadEnd)
			}
			return r.convGemm(d, px, w, bias, dt, nImg, ch, h, wd, oc, kh, kw, ho, wo, stride, p.Padding)
		}
		pw, err := r.as(w, w.DType())
		if err != nil {
			return err
		}
		pb, err := r.f32(bias)
		if err != nil {
			return err
		}
		a := newArgs().Ptr(d).Ptr(px).Ptr(pw).Ptr(pb).I32(ch).I32(h).I32(wd).I32(oc).I32(kh).I32(kw).
			I32(ho).I32(wo).I32(stride).I32(p.Padding).I64(ncols)
		grid := [3]uint32{uint32((ncols + 63) / 64), uint32((oc + 63) / 64), 1}
		return r.d.launch("conv2d_"+dtypeName(w.DType()), grid, [3]uint32{256, 1, 1}, 0, a)
	})
}

// convScratch bounds the im2col columns of one step of convGemm, in elements
// (a variable for the tests).
var convScratch = 1 << 26

// convChunk returns how many images and output pixels per image one im2col
// step covers so that nimg·K·pc ≤ limit (at least one image and, when an image
// needs more, pc a multiple of 8 of at least 8 pixels).
func convChunk(nImg, k, pixels, limit int) (nimg, pc int) {
	per := k * pixels
	if per <= limit {
		return max(1, min(nImg, limit/per)), pixels
	}
	pc = max(8, limit/k&^7)
	return 1, min(pc, pixels)
}

// convGemm runs a convolution as im2col into a bounded temporary of dtype dt
// (F16, BF16, or F32 in TF32 mode) and a batched cuBLAS GEMM per chunk:
// y[n][O][p0:p0+pc] = w[O][K] · col[n][K][pc], written straight into the NCHW
// output d. The bias (if any) is first written to every output pixel and the
// product added with beta = 1. x (at px) is F32 and contiguous.
func (r *run) convGemm(d, px uint64, w, bias *tensor.Tensor, dt tensor.DType, nImg, ch, h, wd, oc, kh, kw, ho, wo, stride, pad int) error {
	r.path = "im2col"
	k := ch * kh * kw
	pixels := ho * wo
	pw, err := r.as(w, dt)
	if err != nil {
		return err
	}
	beta := float32(0)
	if bias != nil {
		pb, err := r.ptr(bias)
		if err != nil {
			return err
		}
		shape := []int{nImg, oc, pixels}
		if err := r.copy(d, tensor.F32, tensor.ContiguousStrides(shape), pb, bias.DType(), []int{0, bias.Strides()[0], 0}, shape); err != nil {
			return err
		}
		beta = 1
	}
	nimg, pc := convChunk(nImg, k, pixels, convScratch)
	col, err := r.temp(dt, nimg*k*pc)
	if err != nil {
		return err
	}
	for n0 := 0; n0 < nImg; n0 += nimg {
		ni := min(nimg, nImg-n0)
		for p0 := 0; p0 < pixels; p0 += pc {
			np := min(pc, pixels-p0)
			a := newArgs().Ptr(col).Ptr(px + uint64(n0*ch*h*wd*4)).I32(ch).I32(h).I32(wd).I32(kh).I32(kw).I32(wo).
				I32(stride).I32(pad).I32(p0).I32(np).I32(ni)
			if err := r.launch1D("im2col_"+dtypeName(dt), ni*k*np, a); err != nil {
				return err
			}
			err := r.gemm(gemmCall{
				nb: ni, m: oc, n: np, k: k, adt: dt, bdt: dt,
				a: pw, sar: k, sac: 1, sab: 0,
				b: col, sbr: np, sbc: 1, sbb: k * np,
				c: d + uint64((n0*oc*pixels+p0)*4), ldc: pixels, scb: oc * pixels,
				alpha: 1, beta: beta,
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// Flash kernel limits (attention.cu).
const (
	flashMaxD  = 256
	flashWarps = 8
	// flashSmem is the dynamic shared memory a block may use without opting in.
	flashSmem = 48 << 10
)

// attnOperand is a [B,H,L,D] attention operand as F32 with unit element stride:
// its address and batch, head and row strides.
type attnOperand struct {
	p              uint64
	sb, sh, sl, sd int
}

// attnF32 returns t's address and strides, copying it to a contiguous F32
// temporary when it is not F32 or its last stride is not 1.
func (r *run) attnF32(t *tensor.Tensor) (attnOperand, error) {
	sh, st := t.Shape(), t.Strides()
	if t.DType() == tensor.F32 && (st[3] == 1 || sh[3] == 1) {
		p, err := r.ptr(t)
		return attnOperand{p, st[0], st[1], st[2], 1}, err
	}
	p, err := r.f32(t)
	cs := tensor.ContiguousStrides(sh)
	return attnOperand{p, cs[0], cs[1], cs[2], 1}, err
}

// Attention sets dst = softmax(q·kᵀ·scale)·v per batch and head; see
// tensor.Backend. Flash mode (head dimensions up to 256) runs attention.cu's
// kernel: the scores never leave registers. Sliced mode, and larger heads, compute
// BlockQ rows of scores at a time with the GEMM, the softmax kernel (causal mask
// included) and a second GEMM. F16/BF16 or strided-element operands are widened
// to F32 copies first. In FP16 and BF16 modes both modes run the tensor-core
// flash kernel (attnTC; head dimensions up to 160, q, k and v read in place),
// or attnMixed for larger heads or when SDGO_CUDA_ATTENTION=gemm.
func (b *Backend) Attention(dst, q, k, v *tensor.Tensor, p tensor.AttentionParams) error {
	return b.exec("Attention", func(r *run) error {
		qs, ks, vs, ds := q.Shape(), k.Shape(), v.Shape(), dst.Shape()
		if dst.DType() != tensor.F32 {
			return fmt.Errorf("%w: destination %v (want F32)", tensor.ErrDType, dst)
		}
		if len(qs) != 4 || len(ks) != 4 || len(vs) != 4 || len(ds) != 4 {
			return fmt.Errorf("%w: q %v, k %v, v %v into %v: want rank 4", tensor.ErrShape, q, k, v, dst)
		}
		nb, nh, lq, d := qs[0], qs[1], qs[2], qs[3]
		lk, dv := ks[2], vs[3]
		if ks[0] != nb || ks[1] != nh || ks[3] != d || vs[0] != nb || vs[1] != nh || vs[2] != lk ||
			ds[0] != nb || ds[1] != nh || ds[2] != lq || ds[3] != dv {
			return fmt.Errorf("%w: q %v, k %v, v %v into %v", tensor.ErrShape, q, k, v, dst)
		}
		if dst.Numel() == 0 {
			return nil
		}
		if lk == 0 {
			return fmt.Errorf("%w: q %v, k %v: no keys", tensor.ErrShape, q, k)
		}
		dstr := dst.Strides()
		if dv > 1 && dstr[3] != 1 {
			return fmt.Errorf("%w: destination %v with strides %v: want rows with stride 1", tensor.ErrShape, dst, dstr)
		}
		scale := p.Scale
		if scale == 0 {
			scale = float32(1 / math.Sqrt(float64(d)))
		}
		po, err := r.ptr(dst)
		if err != nil {
			return err
		}
		o := attnOperand{po, dstr[0], dstr[1], dstr[2], 1}
		if lq > math.MaxInt32 || lk > math.MaxInt32 {
			return fmt.Errorf("%w: attention of %v", ErrUnsupported, q)
		}
		if dt, ok := r.mixedDType(); ok {
			if kn, ok := flashTCKernel(attentionChoice(), dt, nb, nh, lq, d, dv); ok {
				return r.attnTC(kn, o, q, k, v, dt, nb, nh, lq, lk, d, dv, scale, p.Causal)
			}
			return r.attnMixed(o, q, k, v, dt, nb, nh, lq, lk, d, dv, scale, p)
		}
		aq, err := r.attnF32(q)
		if err != nil {
			return err
		}
		ak, err := r.attnF32(k)
		if err != nil {
			return err
		}
		av, err := r.attnF32(v)
		if err != nil {
			return err
		}
		if lq > math.MaxInt32 || lk > math.MaxInt32 || nb*nh > 65535 {
			return fmt.Errorf("%w: attention of %v", ErrUnsupported, q)
		}
		if p.Mode == tensor.AttentionFlash && d <= flashMaxD && dv <= flashMaxD {
			return r.flash(o, aq, ak, av, nb, nh, lq, lk, d, dv, scale, p.Causal)
		}
		return r.sliced(o, aq, ak, av, nb, nh, lq, lk, d, dv, scale, p)
	})
}

func (r *run) flash(o, q, k, v attnOperand, nb, nh, lq, lk, d, dv int, scale float32, causal bool) error {
	bk := max(1, min(64, flashSmem/4/(d+dv)))
	c := 0
	if causal {
		c = 1
	}
	a := newArgs().Ptr(o.p).Ptr(q.p).Ptr(k.p).Ptr(v.p).I32(nh).I32(lq).I32(lk).I32(d).I32(dv).I32(bk).
		I64(q.sb).I64(q.sh).I64(q.sl).I64(k.sb).I64(k.sh).I64(k.sl).
		I64(v.sb).I64(v.sh).I64(v.sl).I64(o.sb).I64(o.sh).I64(o.sl).F32(scale).I32(c)
	grid := [3]uint32{uint32((lq + flashWarps - 1) / flashWarps), uint32(nb * nh), 1}
	return r.d.launch("flash_attn_f32", grid, [3]uint32{32 * flashWarps, 1, 1}, uint32(bk*(d+dv)*4), a)
}

// slicedScratch bounds the scores of one step of sliced attention, in floats.
const slicedScratch = 1 << 26

func (r *run) sliced(o, q, k, v attnOperand, nb, nh, lq, lk, d, dv int, scale float32, p tensor.AttentionParams) error {
	bq := p.BlockQ
	if bq <= 0 {
		bq = max(1, slicedScratch/(nh*lk))
	}
	bq = min(bq, lq)
	s, err := r.temp(tensor.F32, nh*bq*lk)
	if err != nil {
		return err
	}
	for bi := range nb {
		for q0 := 0; q0 < lq; q0 += bq {
			rows := min(bq, lq-q0)
			// S[h] = scale · Q[b,h,q0:q0+rows] · K[b,h]ᵀ, rows×lk per head.
			err := r.gemm(gemmCall{
				nb: nh, m: rows, n: lk, k: d, adt: tensor.F32, bdt: tensor.F32,
				a: q.p + uint64((bi*q.sb+q0*q.sl)*4), sar: q.sl, sac: 1, sab: q.sh,
				b: k.p + uint64(bi*k.sb*4), sbr: 1, sbc: k.sl, sbb: k.sh,
				c: s, ldc: lk, scb: rows * lk, alpha: scale,
			})
			if err != nil {
				return err
			}
			q0c := -1
			if p.Causal {
				q0c = q0
			}
			if err := r.softmax(s, s, nh*rows, lk, q0c, rows); err != nil {
				return err
			}
			// O[b,h,q0:q0+rows] = P · V[b,h].
			err = r.gemm(gemmCall{
				nb: nh, m: rows, n: dv, k: lk, adt: tensor.F32, bdt: tensor.F32,
				a: s, sar: lk, sac: 1, sab: rows * lk,
				b: v.p + uint64(bi*v.sb*4), sbr: v.sl, sbc: 1, sbb: v.sh,
				c: o.p + uint64((bi*o.sb+q0*o.sl)*4), ldc: o.sl, scb: o.sh, alpha: 1,
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// attnMixed is attention in FP16/BF16 mode: q, k and v are converted to
// contiguous [B,H,L,D] temporaries of dt (read in place when they already are),
// then for a slice of rows queries of every head at a time: S = scale·Q·Kᵀ
// (cuBLAS, dt operands, FP32 accumulation, F32 scores), P = softmax(S) rounded to
// dt, O = P·V (F32, written into o). Heads of all batch items go in one batched
// call when o's batch stride is H times its head stride, else one call per batch
// item. The scratch is 6 bytes (F16/BF16: F32 S and dt P) per score, at most
// slicedScratch scores unless p.BlockQ asks for more.
func (r *run) attnMixed(o attnOperand, q, k, v *tensor.Tensor, dt tensor.DType, nb, nh, lq, lk, d, dv int, scale float32, p tensor.AttentionParams) error {
	r.path = fmt.Sprintf("gemm, %d keys", lk)
	pq, err := r.as(q, dt)
	if err != nil {
		return err
	}
	pk, err := r.as(k, dt)
	if err != nil {
		return err
	}
	pv, err := r.as(v, dt)
	if err != nil {
		return err
	}
	groups, gh := nb, nh // batch items per call, heads per call
	if nb == 1 || o.sb == nh*o.sh {
		groups, gh = 1, nb*nh
	}
	bq := p.BlockQ
	if p.Mode != tensor.AttentionSliced || bq <= 0 {
		bq = max(1, slicedScratch/(gh*lk))
	}
	bq = min(bq, lq)
	s, err := r.temp(tensor.F32, gh*bq*lk)
	if err != nil {
		return err
	}
	pp, err := r.temp(dt, gh*bq*lk)
	if err != nil {
		return err
	}
	es := dt.Size()
	ldo := o.sl
	if lq == 1 {
		ldo = max(ldo, dv) // one row: its stride is never used
	}
	for g := range groups {
		qg := pq + uint64(g*gh*lq*d*es)
		kg := pk + uint64(g*gh*lk*d*es)
		vg := pv + uint64(g*gh*lk*dv*es)
		for q0 := 0; q0 < lq; q0 += bq {
			rows := min(bq, lq-q0)
			// S[h] = scale · Q[h, q0:q0+rows] · K[h]ᵀ, rows×lk per head.
			err := r.gemm(gemmCall{
				nb: gh, m: rows, n: lk, k: d, adt: dt, bdt: dt,
				a: qg + uint64(q0*d*es), sar: d, sac: 1, sab: lq * d,
				b: kg, sbr: 1, sbc: d, sbb: lk * d,
				c: s, ldc: lk, scb: rows * lk, alpha: scale,
			})
			if err != nil {
				return err
			}
			q0c := -1
			if p.Causal {
				q0c = q0
			}
			if gh*rows > math.MaxInt32 {
				return fmt.Errorf("%w: %d rows of scores", ErrUnsupported, gh*rows)
			}
			a := newArgs().Ptr(pp).Ptr(s).I64(lk).I32(q0c).I32(rows)
			if err := r.d.launch("softmax_f32_"+dtypeName(dt), [3]uint32{uint32(gh * rows), 1, 1}, [3]uint32{rowThreads, 1, 1}, 0, a); err != nil {
				return err
			}
			// O[h, q0:q0+rows] = P[h] · V[h].
			err = r.gemm(gemmCall{
				nb: gh, m: rows, n: dv, k: lk, adt: dt, bdt: dt,
				a: pp, sar: lk, sac: 1, sab: rows * lk,
				b: vg, sbr: dv, sbc: 1, sbb: lk * dv,
				c: o.p + uint64((g*o.sb+q0*o.sl)*4), ldc: ldo, scb: o.sh, alpha: 1,
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

package tensor

import (
	"math"
	"runtime"

	"github.com/sdgo/sdgo/kernels/asm"
)

// Default attention blocking. A 64×256 block of scores is 64 KiB: with the packed
// slivers of K and V it stays in L2 while the two GEMMs and the softmax pass over it.
const (
	attnBlockQ = 64
	attnBlockK = 256
)

// attnBlocks returns the query and key block sizes for p: the defaults for zero
// fields, clamped to the sequence lengths. With few keys (cross-attention on 77
// tokens) the default query block grows up to 256 so that a block of scores
// keeps about attnBlockQ·attnBlockK elements and K and V are packed fewer times.
// When the default query block leaves fewer tasks (batch·heads·query blocks) than
// twice the cores, it is halved (down to 16) so that every core gets work.
func attnBlocks(p AttentionParams, heads, lq, lk int) (bq, bk int) {
	bq, bk = p.BlockQ, p.BlockK
	if bk <= 0 {
		bk = attnBlockK
	}
	bk = max(1, min(bk, lk))
	if bq <= 0 {
		bq = attnBlockQ * min((attnBlockK+bk-1)/bk, 4)
		procs := runtime.GOMAXPROCS(0)
		for bq > 16 && heads*((lq+bq-1)/bq) < 2*procs {
			bq = (bq + 1) / 2
		}
	}
	return max(1, min(bq, lq)), bk
}

// Attention sets dst = softmax(q·kᵀ·scale)·v; see Backend.
//
// The work is split into tasks of one (batch, head, block of BlockQ queries),
// spread over the cores with asm.ParallelFor; each task runs its GEMMs on its own
// goroutine with a scratch buffer from the backend's pools.
//
// Flash mode streams over blocks of BlockK keys: S = scale·Q·Kᵀ for the block
// (asm.Gemm, with K read as a transposed operand from its view), then the online
// softmax: each query row keeps its running maximum m and sum l; a new block's
// scores become exp(s - m') with m' the new maximum, and the rows accumulated so
// far are rescaled by exp(m - m'); O += P·V goes straight into dst, which is
// divided by l at the end. Scratch is BlockQ·BlockK scores per goroutine.
//
// Sliced mode computes the full rows of scores for BlockQ queries (BlockQ·Lk
// scratch per goroutine), applies asm.Softmax to each row and multiplies by V into dst.
//
// q, k and v may be of any dtype and any view whose last two strides include a 1;
// dst is F32 with rows of stride 1.
func (c *CPU) Attention(dst, q, k, v *Tensor, p AttentionParams) error {
	defer keepAlive(dst, q, k, v)
	const op = "Attention"
	ds, err := c.storage(op, dst.buf.s)
	if err != nil {
		return err
	}
	qs, err := c.storage(op, q.buf.s)
	if err != nil {
		return err
	}
	ks, err := c.storage(op, k.buf.s)
	if err != nil {
		return err
	}
	vs, err := c.storage(op, v.buf.s)
	if err != nil {
		return err
	}
	if dst.dtype != F32 {
		return dtypeErr(op, "destination %v (want F32)", dst)
	}
	if len(q.shape) != 4 || len(k.shape) != 4 || len(v.shape) != 4 || len(dst.shape) != 4 {
		return shapeErr(op, "q %v, k %v, v %v into %v: want rank 4", q, k, v, dst)
	}
	nb, nh, lq, d := q.shape[0], q.shape[1], q.shape[2], q.shape[3]
	lk, dv := k.shape[2], v.shape[3]
	if k.shape[0] != nb || k.shape[1] != nh || k.shape[3] != d ||
		v.shape[0] != nb || v.shape[1] != nh || v.shape[2] != lk ||
		dst.shape[0] != nb || dst.shape[1] != nh || dst.shape[2] != lq || dst.shape[3] != dv {
		return shapeErr(op, "q %v, k %v, v %v into %v", q, k, v, dst)
	}
	if dst.Numel() == 0 {
		return nil
	}
	if lk == 0 {
		return shapeErr(op, "q %v, k %v: no keys", q, k)
	}
	_, _, okQ := GemmLayout(lq, d, q.strides[2], q.strides[3])
	_, _, okK := GemmLayout(lk, d, k.strides[2], k.strides[3])
	_, _, okV := GemmLayout(lk, dv, v.strides[2], v.strides[3])
	_, transO, okO := GemmLayout(lq, dv, dst.strides[2], dst.strides[3])
	if !okQ || !okK || !okV || !okO || transO {
		return shapeErr(op, "q %v %v, k %v %v, v %v %v into %v %v: unsupported strides",
			q, q.strides, k, k.strides, v, v.strides, dst, dst.strides)
	}
	scale := p.Scale
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(d)))
	}
	bq, bk := attnBlocks(p, nb*nh, lq, lk)
	qBlocks := (lq + bq - 1) / bq
	a := attnTask{
		q: qs, k: ks, v: vs, out: ds.F32,
		d: d, dv: dv, lk: lk, scale: scale, causal: p.Causal,
	}
	scratch := bq*bk + 2*bq
	if p.Mode == AttentionSliced {
		scratch = bq * lk
	}
	asm.ParallelFor(nb*nh*qBlocks, 1, func(lo, hi int) {
		st, _ := c.Alloc(F32, scratch)
		defer c.Free(st)
		s := st.(*CPUStorage).F32
		a := a // this goroutine's copy
		for t := lo; t < hi; t++ {
			b, h, qb := t/(nh*qBlocks), t/qBlocks%nh, t%qBlocks
			q0 := qb * bq
			a.rows = min(bq, lq-q0)
			a.q0 = q0
			a.qOff = q.offset + b*q.strides[0] + h*q.strides[1] + q0*q.strides[2]
			a.qsr, a.qsc = q.strides[2], q.strides[3]
			a.kOff = k.offset + b*k.strides[0] + h*k.strides[1]
			a.ksr, a.ksc = k.strides[2], k.strides[3]
			a.vOff = v.offset + b*v.strides[0] + h*v.strides[1]
			a.vsr, a.vsc = v.strides[2], v.strides[3]
			a.oOff = dst.offset + b*dst.strides[0] + h*dst.strides[1] + q0*dst.strides[2]
			a.osr, a.osc = dst.strides[2], dst.strides[3]
			if p.Mode == AttentionSliced {
				a.sliced(s)
			} else {
				a.flash(s[:bq*bk], bk, s[bq*bk:bq*bk+bq], s[bq*bk+bq:])
			}
		}
	})
	return nil
}

// attnTask is one block of queries of one (batch, head): where its q rows, the
// head's k and v and the block's dst rows lie, with their row and column strides.
type attnTask struct {
	q, k, v        *CPUStorage
	out            []float32
	d, dv, lk      int
	scale          float32
	causal         bool
	q0, rows       int // first query of the block, number of queries
	qOff, qsr, qsc int
	kOff, ksr, ksc int
	vOff, vsr, vsc int
	oOff, osr, osc int
}

// qOperand returns the block's queries, rows×d.
func (a *attnTask) qOperand() asm.Operand {
	ld, tr, _ := GemmLayout(a.rows, a.d, a.qsr, a.qsc)
	return gemmOperandAt(a.q, a.qOff, ld, tr)
}

// kOperand returns kᵀ for keys [k0, k0+n), d×n: a transposed operand when the keys
// are rows of the view.
func (a *attnTask) kOperand(k0, n int) asm.Operand {
	ld, tr, _ := GemmLayout(a.d, n, a.ksc, a.ksr)
	return gemmOperandAt(a.k, a.kOff+k0*a.ksr, ld, tr)
}

// vOperand returns the values of keys [k0, k0+n), n×dv.
func (a *attnTask) vOperand(k0, n int) asm.Operand {
	ld, tr, _ := GemmLayout(n, a.dv, a.vsr, a.vsc)
	return gemmOperandAt(a.v, a.vOff+k0*a.vsr, ld, tr)
}

// output returns the block's dst rows and their stride.
func (a *attnTask) output() ([]float32, int) {
	ld, _, _ := GemmLayout(a.rows, a.dv, a.osr, a.osc)
	return a.out[a.oOff:], ld
}

// keys returns how many keys query row i of the block may attend to.
func (a *attnTask) keys(i int) int {
	if a.causal {
		return min(a.lk, a.q0+i+1)
	}
	return a.lk
}

// flash runs the online-softmax loop over blocks of bk keys with the scores in s
// (rows×bk) and the running maxima and sums in m and l.
func (a *attnTask) flash(s []float32, bk int, m, l []float32) {
	rows := a.rows
	qOp := a.qOperand()
	o, ldo := a.output()
	kEnd := a.keys(rows - 1)
	negInf := float32(math.Inf(-1))
	for i := range rows {
		m[i], l[i] = negInf, 0
	}
	for k0 := 0; k0 < kEnd; k0 += bk {
		kb := min(bk, kEnd-k0)
		first := k0 == 0
		asm.Gemm(rows, kb, a.d, a.scale, qOp, a.kOperand(k0, kb), 0, s, kb, 1)
		for i := range rows {
			row := s[i*kb : i*kb+kb]
			valid := row[:min(kb, max(0, a.keys(i)-k0))]
			clear(row[len(valid):])
			if len(valid) == 0 {
				continue // masked: nothing added, nothing rescaled
			}
			mNew := max(m[i], asm.Max(valid))
			asm.ScaleShift(valid, valid, 1, -mNew)
			asm.Exp(valid, valid)
			sum, _ := asm.SumSq(valid)
			if !first {
				if corr := float32(math.Exp(float64(m[i] - mNew))); corr != 1 {
					orow := o[i*ldo : i*ldo+a.dv]
					asm.Scale(orow, orow, corr)
					l[i] *= corr
				}
			}
			l[i] += sum
			m[i] = mNew
		}
		beta := float32(1)
		if first {
			beta = 0
		}
		asm.Gemm(rows, a.dv, kb, 1, asm.Operand{F32: s, Stride: kb}, a.vOperand(k0, kb), beta, o, ldo, 1)
	}
	for i := range rows {
		orow := o[i*ldo : i*ldo+a.dv]
		asm.Scale(orow, orow, 1/l[i])
	}
}

// sliced computes full rows of scores in s (rows×lk), their softmax, and P·V.
func (a *attnTask) sliced(s []float32) {
	rows := a.rows
	n := a.keys(rows - 1)
	o, ldo := a.output()
	asm.Gemm(rows, n, a.d, a.scale, a.qOperand(), a.kOperand(0, n), 0, s, n, 1)
	for i := range rows {
		row := s[i*n : i*n+n]
		valid := row[:min(n, a.keys(i))]
		asm.Softmax(valid)
		clear(row[len(valid):])
	}
	asm.Gemm(rows, a.dv, n, 1, asm.Operand{F32: s, Stride: n}, a.vOperand(0, n), 0, o, ldo, 1)
}

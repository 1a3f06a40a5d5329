package cuda

import (
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/sdgo/sdgo/tensor"
)

// The tensor-core flash attention of the FP16 and BF16 modes (attention.cu's
// flash_attn_tc_* kernels, FlashAttention-2 style): one kernel per call that
// reads q, k and v of the mode's dtype (in place when they already are of it
// with unit element stride, else through a contiguous converted copy; see
// tcOperandOf), copies 16-byte-aligned tiles to shared memory with cp.async,
// double-buffers the keys and values, and keeps the scores on chip. attnMixed
// (GEMM, softmax, GEMM) remains for what it cannot take, and when attentionEnv
// is "gemm".

const (
	tcThreads = 128 // threads per block (TC_WARPS warps)
	tcMaxD    = 160 // the largest head dimension of any variant
	// attentionEnv names the environment variable that chooses the FP16/BF16
	// attention: "gemm" forces attnMixed.
	attentionEnv = "SDGO_CUDA_ATTENTION"
)

// tcVariants are the kernels' padded head dimensions (DP in attention.cu's
// FLASH_TC lines) and query rows per block (64·WM), smallest first.
var tcVariants = []struct{ dp, bq int }{{48, 128}, {64, 128}, {80, 128}, {160, 64}}

// tcKernel is a flash_attn_tc_* kernel: its name and the query rows of a block.
type tcKernel struct {
	name string
	bq   int
}

// flashTCKernel returns the tensor-core kernel for attention in mixed dtype dt
// (F16 or BF16) over nb·nh heads of lq queries with head dimensions d (q, k)
// and dv (v), or false when the call goes to attnMixed: env (attentionEnv's
// value) is "gemm", a head dimension is over tcMaxD, or the grid would not
// fit. The variant is the smallest that holds both dimensions rounded up to 16.
func flashTCKernel(env string, dt tensor.DType, nb, nh, lq, d, dv int) (tcKernel, bool) {
	if strings.EqualFold(strings.TrimSpace(env), "gemm") {
		return tcKernel{}, false
	}
	if dt != tensor.F16 && dt != tensor.BF16 {
		return tcKernel{}, false
	}
	if d < 1 || dv < 1 || d > tcMaxD || dv > tcMaxD || nb < 1 || nh < 1 || lq < 1 || lq > math.MaxInt32 {
		return tcKernel{}, false
	}
	if nb*nh > 65535 {
		return tcKernel{}, false
	}
	dp := pad16(max(d, dv))
	for _, v := range tcVariants {
		if dp <= v.dp {
			return tcKernel{fmt.Sprintf("flash_attn_tc_%s_d%d", dtypeName(dt), v.dp), v.bq}, true
		}
	}
	return tcKernel{}, false
}

// attentionChoice returns attentionEnv's value, read on each call so that it
// can change between calls (tests set it).
func attentionChoice() string { return os.Getenv(attentionEnv) }

func pad16(n int) int { return (n + 15) &^ 15 }

// tcOperand is a [B,H,L,D] attention operand as the tensor-core kernel reads
// it: address, batch, head and row strides in elements (unit element stride),
// and whether the address and the strides are multiples of 16 bytes.
type tcOperand struct {
	p          uint64
	sb, sh, sl int
	aligned    bool
}

// tcAligned says whether elements of 2 bytes at p with strides st (those of
// dimensions of size 1 aside: they never move) start 16-byte-aligned rows.
func tcAligned(p uint64, shape, st []int) bool {
	if p%16 != 0 {
		return false
	}
	for i := range 3 {
		if shape[i] > 1 && st[i]%8 != 0 {
			return false
		}
	}
	return true
}

// tcOperandOf returns t as the kernel reads it: in place when it is of dtype dt
// with unit last stride (or rows of one element), else through a copy in dt,
// contiguous but for rows padded to a multiple of 8 elements (16 bytes) so
// that the kernel can copy its tiles with cp.async.
func (r *run) tcOperandOf(t *tensor.Tensor, dt tensor.DType) (tcOperand, error) {
	sh, st := t.Shape(), t.Strides()
	if t.DType() == dt && (st[3] == 1 || sh[3] == 1) {
		p, err := r.ptr(t)
		return tcOperand{p, st[0], st[1], st[2], tcAligned(p, sh, st)}, err
	}
	if sh[3]%8 == 0 {
		p, err := r.as(t, dt)
		cs := tensor.ContiguousStrides(sh)
		return tcOperand{p, cs[0], cs[1], cs[2], tcAligned(p, sh, cs)}, err
	}
	src, err := r.ptr(t)
	if err != nil {
		return tcOperand{}, err
	}
	d8 := (sh[3] + 7) &^ 7
	ps := []int{sh[1] * sh[2] * d8, sh[2] * d8, d8, 1}
	p, err := r.temp(dt, sh[0]*ps[0])
	if err != nil {
		return tcOperand{}, err
	}
	if err := r.copy(p, dt, ps, src, t.DType(), st, sh); err != nil {
		return tcOperand{}, err
	}
	return tcOperand{p, ps[0], ps[1], ps[2], tcAligned(p, sh, ps)}, nil
}

// flashTCArgs packs the parameters of a flash_attn_tc_* kernel.
func flashTCArgs(o attnOperand, q, k, v tcOperand, nh, lq, lk, d, dv int, scale float32, causal bool) *kernelArgs {
	c := 0
	if causal {
		c = 1
	}
	al := 0
	for i, x := range []tcOperand{q, k, v} {
		if x.aligned {
			al |= 1 << i
		}
	}
	return newArgs().Ptr(o.p).Ptr(q.p).Ptr(k.p).Ptr(v.p).
		I32(nh).I32(lq).I32(lk).I32(d).I32(dv).I32(al).
		I64(q.sb).I64(q.sh).I64(q.sl).I64(k.sb).I64(k.sh).I64(k.sl).
		I64(v.sb).I64(v.sh).I64(v.sl).I64(o.sb).I64(o.sh).I64(o.sl).F32(scale).I32(c)
}

// flashTCGrid is the kernels' grid: a block per bq queries of each head.
func flashTCGrid(bq, nb, nh, lq int) [3]uint32 {
	return [3]uint32{uint32((lq + bq - 1) / bq), uint32(nb * nh), 1}
}

// attnTC runs attention with the tensor-core kernel kn (see flashTCKernel).
func (r *run) attnTC(kn tcKernel, o attnOperand, q, k, v *tensor.Tensor, dt tensor.DType, nb, nh, lq, lk, d, dv int, scale float32, causal bool) error {
	aq, err := r.tcOperandOf(q, dt)
	if err != nil {
		return err
	}
	ak, err := r.tcOperandOf(k, dt)
	if err != nil {
		return err
	}
	av, err := r.tcOperandOf(v, dt)
	if err != nil {
		return err
	}
	a := flashTCArgs(o, aq, ak, av, nh, lq, lk, d, dv, scale, causal)
	r.path = fmt.Sprintf("flash, %d keys", lk)
	return r.d.launch(kn.name, flashTCGrid(kn.bq, nb, nh, lq), [3]uint32{tcThreads, 1, 1}, 0, a)
}

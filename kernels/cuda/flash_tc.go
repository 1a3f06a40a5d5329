package cuda

import (
	"math"
	"os"
	"strings"

	"github.com/sdgo/sdgo/tensor"
)

// The tensor-core flash attention of the FP16 and BF16 modes (attention.cu's
// flash_attn_tc_* kernels): one kernel per call that reads q, k and v in
// place (F32, F16 or BF16, any batch, head and row strides), rounds them to the
// mode's dtype in shared memory, and keeps the scores on chip. attnMixed (GEMM,
// softmax, GEMM) remains for what it cannot take, and when attentionEnv is
// "gemm".

const (
	tcBlockQ  = 64  // query rows per block (TC_BQ)
	tcThreads = 128 // threads per block (TC_WARPS warps)
	tcMaxD    = 160 // the largest head dimension of any variant
	// attentionEnv names the environment variable that chooses the FP16/BF16
	// attention: "gemm" forces attnMixed.
	attentionEnv = "SDGO_CUDA_ATTENTION"
)

// flashTCKernel returns the name of the tensor-core kernel for attention in
// mixed dtype dt (F16 or BF16) over nb·nh heads of lq queries with head
// dimensions d (q, k) and dv (v), or false when the call goes to attnMixed:
// env (attentionEnv's value) is "gemm", a head dimension is over tcMaxD, or the
// grid would not fit. The variant is the smallest of 64 and 160 that holds
// both dimensions rounded up to 16.
func flashTCKernel(env string, dt tensor.DType, nb, nh, lq, d, dv int) (string, bool) {
	if strings.EqualFold(strings.TrimSpace(env), "gemm") {
		return "", false
	}
	if dt != tensor.F16 && dt != tensor.BF16 {
		return "", false
	}
	if d < 1 || dv < 1 || d > tcMaxD || dv > tcMaxD || nb < 1 || nh < 1 || lq < 1 || lq > math.MaxInt32 {
		return "", false
	}
	if nb*nh > 65535 {
		return "", false
	}
	variant := "d160"
	if pad16(max(d, dv)) <= 64 {
		variant = "d64"
	}
	return "flash_attn_tc_" + dtypeName(dt) + "_" + variant, true
}

// attentionChoice returns attentionEnv's value, read on each call so that it
// can change between calls (tests set it).
func attentionChoice() string { return os.Getenv(attentionEnv) }

func pad16(n int) int { return (n + 15) &^ 15 }

// tcDTypeCode is the kernels' code for an operand's dtype: 0 F32, 1 F16, 2 BF16.
func tcDTypeCode(dt tensor.DType) int {
	switch dt {
	case tensor.F16:
		return 1
	case tensor.BF16:
		return 2
	}
	return 0
}

// tcOperand is a [B,H,L,D] attention operand as the tensor-core kernel reads
// it: address, dtype code and batch, head and row strides in elements (unit
// element stride).
type tcOperand struct {
	p          uint64
	dt         int
	sb, sh, sl int
}

// tcOperandOf returns t as the kernel reads it: in place when its last stride
// is 1 (or its rows hold one element), else through a contiguous copy in dt.
func (r *run) tcOperandOf(t *tensor.Tensor, dt tensor.DType) (tcOperand, error) {
	sh, st := t.Shape(), t.Strides()
	if st[3] == 1 || sh[3] == 1 {
		p, err := r.ptr(t)
		return tcOperand{p, tcDTypeCode(t.DType()), st[0], st[1], st[2]}, err
	}
	p, err := r.as(t, dt)
	cs := tensor.ContiguousStrides(sh)
	return tcOperand{p, tcDTypeCode(dt), cs[0], cs[1], cs[2]}, err
}

// flashTCArgs packs the parameters of a flash_attn_tc_* kernel.
func flashTCArgs(o attnOperand, q, k, v tcOperand, nh, lq, lk, d, dv int, scale float32, causal bool) *kernelArgs {
	c := 0
	if causal {
		c = 1
	}
	return newArgs().Ptr(o.p).Ptr(q.p).Ptr(k.p).Ptr(v.p).I32(q.dt).I32(k.dt).I32(v.dt).
		I32(nh).I32(lq).I32(lk).I32(d).I32(dv).
		I64(q.sb).I64(q.sh).I64(q.sl).I64(k.sb).I64(k.sh).I64(k.sl).
		I64(v.sb).I64(v.sh).I64(v.sl).I64(o.sb).I64(o.sh).I64(o.sl).F32(scale).I32(c)
}

// flashTCGrid is the kernels' grid: a block per 64 queries of each head.
func flashTCGrid(nb, nh, lq int) [3]uint32 {
	return [3]uint32{uint32((lq + tcBlockQ - 1) / tcBlockQ), uint32(nb * nh), 1}
}

// attnTC runs attention with the tensor-core kernel name (see flashTCKernel).
func (r *run) attnTC(name string, o attnOperand, q, k, v *tensor.Tensor, dt tensor.DType, nb, nh, lq, lk, d, dv int, scale float32, causal bool) error {
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
	return r.d.launch(name, flashTCGrid(nb, nh, lq), [3]uint32{tcThreads, 1, 1}, 0, a)
}

// Command gemm generates the AVX2+FMA SGEMM micro-kernels of kernels/asm and the
// register-only FMA loop that measures the processor's peak.
//
// The micro-kernel computes an mr×nr = 6×16 tile of C += A·B from packed slivers:
// a holds, for each p < kc, the 6 elements A[0:6, p]; b holds the 16 elements
// B[p, 0:16] (as float32, or as half-precision values widened with VCVTPH2PS).
// Twelve YMM registers hold the tile; each step loads two vectors of B, broadcasts
// six elements of A and issues twelve FMAs, which keeps both FMA ports busy while
// leaving the load ports room.
package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

const (
	mr = 6
	nr = 16
)

var acc = []VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11}

func main() {
	ConstraintExpr("amd64,!noasm")
	kernel("kernelF32AVX2", false)
	kernel("kernelF16BAVX2", true)
	peak()
	Generate()
}

// kernel emits C[0:6, 0:16] += Σp a[6p+r]·b[16p+j] (C rows ldc floats apart).
func kernel(name string, halfB bool) {
	btype := "*float32"
	if halfB {
		btype = "*uint16"
	}
	TEXT(name, NOSPLIT, fmt.Sprintf("func(kc int, a *float32, b %s, c *float32, ldc int)", btype))
	Doc(fmt.Sprintf("%s adds the 6x16 product of kc packed steps of A and B to C.", name))
	kc := Load(Param("kc"), GP64())
	pa := Load(Param("a"), GP64())
	pb := Load(Param("b"), GP64())
	for _, y := range acc {
		VXORPS(y, y, y)
	}
	bstep := nr * 4
	if halfB {
		bstep = nr * 2
	}
	step := func(p int) {
		if halfB {
			VCVTPH2PS(Mem{Base: pb, Disp: p * bstep}, Y12)
			VCVTPH2PS(Mem{Base: pb, Disp: p*bstep + 16}, Y13)
		} else {
			VMOVUPS(Mem{Base: pb, Disp: p * bstep}, Y12)
			VMOVUPS(Mem{Base: pb, Disp: p*bstep + 32}, Y13)
		}
		for r := 0; r < mr; r++ {
			a := Y14
			if r%2 == 1 {
				a = Y15
			}
			VBROADCASTSS(Mem{Base: pa, Disp: (p*mr + r) * 4}, a)
			VFMADD231PS(Y12, a, acc[2*r])
			VFMADD231PS(Y13, a, acc[2*r+1])
		}
	}
	const unroll = 4
	Comment("Unrolled by 4 while at least 4 steps remain.")
	Label(name + "_loop4")
	CMPQ(kc, Imm(unroll))
	JL(LabelRef(name + "_tail"))
	for p := 0; p < unroll; p++ {
		step(p)
	}
	ADDQ(U32(unroll*mr*4), pa)
	ADDQ(U32(unroll*bstep), pb)
	SUBQ(Imm(unroll), kc)
	JMP(LabelRef(name + "_loop4"))

	Label(name + "_tail")
	TESTQ(kc, kc)
	JE(LabelRef(name + "_store"))
	step(0)
	ADDQ(Imm(mr*4), pa)
	ADDQ(U32(bstep), pb)
	DECQ(kc)
	JMP(LabelRef(name + "_tail"))

	Label(name + "_store")
	pc := Load(Param("c"), GP64())
	ldc := Load(Param("ldc"), GP64())
	SHLQ(Imm(2), ldc)
	for r := 0; r < mr; r++ {
		VADDPS(Mem{Base: pc}, acc[2*r], acc[2*r])
		VMOVUPS(acc[2*r], Mem{Base: pc})
		VADDPS(Mem{Base: pc, Disp: 32}, acc[2*r+1], acc[2*r+1])
		VMOVUPS(acc[2*r+1], Mem{Base: pc, Disp: 32})
		if r < mr-1 {
			ADDQ(ldc, pc)
		}
	}
	VZEROUPPER()
	RET()
}

// peak emits a loop of independent FMAs on registers only: 12 chains, enough to
// cover the FMA latency on both ports, so it runs at the processor's FMA limit.
// Each iteration is 12 FMAs of 8 lanes, 192 floating-point operations.
func peak() {
	TEXT("fmaPeakAVX2", NOSPLIT, "func(iters int)")
	Doc("fmaPeakAVX2 runs iters iterations of 12 independent 8-lane FMAs.")
	n := Load(Param("iters"), GP64())
	for _, y := range acc {
		VXORPS(y, y, y)
	}
	VXORPS(Y12, Y12, Y12)
	VXORPS(Y13, Y13, Y13)
	Label("peak_loop")
	TESTQ(n, n)
	JE(LabelRef("peak_done"))
	for _, y := range acc {
		VFMADD231PS(Y12, Y13, y)
	}
	DECQ(n)
	JMP(LabelRef("peak_loop"))
	Label("peak_done")
	VZEROUPPER()
	RET()
}

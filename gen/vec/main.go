// Command vec generates kernels/asm/vec_amd64.s and vec_stub_amd64.go: the AVX2, FMA
// and F16C vector kernels behind kernels/asm's slice routines (conversions, exp,
// softmax, activations, norm steps and BLAS-1).
//
//	cd gen && go run ./vec -out ../kernels/asm/vec_amd64.s -stubs ../kernels/asm/vec_stub_amd64.go -pkg asm
//
// Every kernel handles any length, 0 included: a wide loop (unrolled where the body
// is cheap), an 8-lane loop, then a tail of 1..7 elements done with VMASKMOVPS
// (float32 data) or one lane at a time (16-bit data), so nothing is read or written
// past the end of a slice. Each kernel ends with VZEROUPPER.
//
// The elementwise math (exp, sigmoid, the two GELU forms) is described next to the
// code that emits it; kernels/asm/vec_test.go checks every kernel against the Go
// references and documents the error bounds.
package main

import (
	"fmt"
	"math"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

func main() {
	ConstraintExpr("amd64,!noasm") // written as //go:build amd64 && !noasm

	conversions()
	expKernels()
	activations()
	reductions()
	affine()
	blas1()

	Generate()
}

// ---------------------------------------------------------------------------
// Constants: 32-byte splats in read-only data, usable directly as the memory
// operand of a VEX instruction.

var constants = map[string]Mem{}

func splat(name string, bits uint32) Mem {
	if m, ok := constants[name]; ok {
		return m
	}
	m := GLOBL(name, RODATA|NOPTR)
	for i := 0; i < 8; i++ {
		DATA(4*i, U32(bits))
	}
	constants[name] = m
	return m
}

func splatF(name string, v float32) Mem { return splat(name, math.Float32bits(v)) }

// tailMask is eight all-ones words followed by eight zero words: the 32 bytes at
// tailMask+32-4k have the first k lanes set.
func tailMask() Mem {
	const name = "tailmask"
	if m, ok := constants[name]; ok {
		return m
	}
	m := GLOBL(name, RODATA|NOPTR)
	for i := 0; i < 16; i++ {
		v := uint32(0)
		if i < 8 {
			v = 0xffffffff
		}
		DATA(4*i, U32(v))
	}
	constants[name] = m
	return m
}

func one() Mem { return splatF("one", 1) }

func one64() Mem {
	if m, ok := constants["one64"]; ok {
		return m
	}
	m := GLOBL("one64", RODATA|NOPTR)
	DATA(0, U64(math.Float64bits(1))) // (avo prints F64(1) as the integer $(1))
	constants["one64"] = m
	return m
}
func absMask() Mem  { return splat("absmask", 0x7fffffff) }
func signMask() Mem { return splat("signmask", 0x80000000) }
func negInf() Mem   { return splat("neginf", 0xff800000) }

// load returns a fresh register holding the splat m.
func load(m Mem) VecVirtual {
	r := YMM()
	VMOVUPS(m, r)
	return r
}

// ---------------------------------------------------------------------------
// Loops.

// ptr is a data pointer advanced by the loops: elem is its element size in bytes.
type ptr struct {
	mem  Mem
	elem int
}

func param(name string, elem int) ptr {
	return ptr{Mem{Base: Load(Param(name).Base(), GP64())}, elem}
}

// at is the memory operand of element i (relative to the current position).
func (p ptr) at(i int) Mem { return p.mem.Offset(i * p.elem) }

// loops emits the main loops over n elements: blocks of 8*unroll elements, then
// blocks of 8, calling block(u) for the u-th group of 8 in a block. It leaves
// 0..7 elements in n, with the pointers at them, and falls through to the tail.
func loops(n Register, ptrs []ptr, unroll int, block func(u int)) {
	if unroll > 1 {
		Label("loopwide")
		CMPQ(n, U32(8*unroll))
		JB(LabelRef("loop8"))
		for u := 0; u < unroll; u++ {
			block(u)
		}
		for _, p := range ptrs {
			ADDQ(U32(8*unroll*p.elem), p.mem.Base)
		}
		SUBQ(U32(8*unroll), n)
		JMP(LabelRef("loopwide"))
	}
	Label("loop8")
	CMPQ(n, U32(8))
	JB(LabelRef("tail"))
	block(0)
	for _, p := range ptrs {
		ADDQ(U32(8*p.elem), p.mem.Base)
	}
	SUBQ(U32(8), n)
	JMP(LabelRef("loop8"))
	Label("tail")
}

// maskFor loads the mask of the first n (1..7) lanes; n is negated in passing.
func maskFor(n Register) VecVirtual {
	tbl := GP64()
	LEAQ(tailMask(), tbl)
	NEGQ(n)
	mask := YMM()
	VMOVDQU(Mem{Base: tbl, Index: n, Scale: 4, Disp: 32}, mask)
	return mask
}

func ret() {
	Label("done")
	VZEROUPPER()
	RET()
}

// mapKernel emits an elementwise kernel: out[i] = body(ins[0][i], ins[1][i], ...),
// all float32 slices of the length of param nParam. setup runs once before the
// loops (broadcast scalars, hoisted constants) and returns the body, which may
// overwrite its argument registers and returns the result register.
func mapKernel(name, sig, doc string, nParam string, ins []string, out string, unroll int,
	setup func() func(v []VecVirtual) VecVirtual) {
	TEXT(name, NOSPLIT, sig)
	Pragma("noescape")
	Doc(name + " " + doc)
	n := Load(Param(nParam).Len(), GP64())
	ptrOf := map[string]ptr{}
	var ptrs []ptr
	for _, p := range append(append([]string{}, ins...), out) {
		if _, ok := ptrOf[p]; !ok {
			ptrOf[p] = param(p, 4)
			ptrs = append(ptrs, ptrOf[p])
		}
	}
	body := setup()

	loops(n, ptrs, unroll, func(u int) {
		v := make([]VecVirtual, len(ins))
		for i, in := range ins {
			v[i] = YMM()
			VMOVUPS(ptrOf[in].at(8*u), v[i])
		}
		VMOVUPS(body(v), ptrOf[out].at(8*u))
	})

	TESTQ(n, n)
	JZ(LabelRef("done"))
	mask := maskFor(n)
	v := make([]VecVirtual, len(ins))
	for i, in := range ins {
		v[i] = YMM()
		VMASKMOVPS(ptrOf[in].mem, mask, v[i])
	}
	VMASKMOVPS(body(v), mask, ptrOf[out].mem)
	ret()
}

// ---------------------------------------------------------------------------
// Conversions.

func conversions() {
	// F16 -> F32: VCVTPH2PS, 8 lanes from 16 bytes; the tail one lane at a time.
	TEXT("f16ToF32AVX2", NOSPLIT, "func(dst []float32, src []uint16)")
	Pragma("noescape")
	Doc("f16ToF32AVX2 widens len(src) half-precision values into dst.")
	{
		n := Load(Param("src").Len(), GP64())
		d, s := param("dst", 4), param("src", 2)
		loops(n, []ptr{d, s}, 4, func(u int) {
			y := YMM()
			VCVTPH2PS(s.at(8*u), y)
			VMOVUPS(y, d.at(8*u))
		})
		Label("scalar")
		TESTQ(n, n)
		JZ(LabelRef("done"))
		h, x := GP32(), XMM()
		MOVWLZX(s.mem, h)
		VMOVD(h, x)
		VCVTPH2PS(x, x)
		VMOVSS(x, d.mem)
		ADDQ(U8(2), s.mem.Base)
		ADDQ(U8(4), d.mem.Base)
		DECQ(n)
		JMP(LabelRef("scalar"))
		ret()
	}

	// F32 -> F16: VCVTPS2PH with immediate 0 (round to nearest even, ignore MXCSR.RC).
	TEXT("f32ToF16AVX2", NOSPLIT, "func(dst []uint16, src []float32)")
	Pragma("noescape")
	Doc("f32ToF16AVX2 narrows len(src) float32 values into dst, rounding to nearest even.")
	{
		n := Load(Param("src").Len(), GP64())
		d, s := param("dst", 2), param("src", 4)
		loops(n, []ptr{d, s}, 4, func(u int) {
			y := YMM()
			VMOVUPS(s.at(8*u), y)
			VCVTPS2PH(U8(0), y, d.at(8*u))
		})
		Label("scalar")
		TESTQ(n, n)
		JZ(LabelRef("done"))
		h, x := GP32(), XMM()
		VMOVSS(s.mem, x)
		VCVTPS2PH(U8(0), x, x)
		VMOVD(x, h)
		MOVW(h.As16(), d.mem)
		ADDQ(U8(4), s.mem.Base)
		ADDQ(U8(2), d.mem.Base)
		DECQ(n)
		JMP(LabelRef("scalar"))
		ret()
	}

	// BF16 -> F32: zero-extend to 32 bits and shift into the high half.
	TEXT("bf16ToF32AVX2", NOSPLIT, "func(dst []float32, src []uint16)")
	Pragma("noescape")
	Doc("bf16ToF32AVX2 widens len(src) bfloat16 values into dst.")
	{
		n := Load(Param("src").Len(), GP64())
		d, s := param("dst", 4), param("src", 2)
		loops(n, []ptr{d, s}, 4, func(u int) {
			y := YMM()
			VPMOVZXWD(s.at(8*u), y)
			VPSLLD(U8(16), y, y)
			VMOVDQU(y, d.at(8*u))
		})
		Label("scalar")
		TESTQ(n, n)
		JZ(LabelRef("done"))
		h := GP32()
		MOVWLZX(s.mem, h)
		SHLL(U8(16), h)
		MOVL(h, d.mem)
		ADDQ(U8(2), s.mem.Base)
		ADDQ(U8(4), d.mem.Base)
		DECQ(n)
		JMP(LabelRef("scalar"))
		ret()
	}
}

// ---------------------------------------------------------------------------
// exp.
//
// exp(x) = 2^n · exp(r), n = round(x·log2 e), r = x - n·ln2 with ln2 split in two
// (Cody-Waite; with FMA the first product is exact), |r| <= ln2/2. exp(r) is
// 1 + r(1 + r·P(r)) with P of degree 4, a Chebyshev fit (mpmath.chebyfit) of
// (e^r-1-r)/r² on |r| <= ln2/2, its coefficients rounded to float32: relative
// error of the whole polynomial 1.1e-8 (0.2 ulp). n is found
// with the 1.5·2^23 trick, which also leaves it in the low mantissa bits.
//
// x is first clamped to [-104, 88.75] (NaN passes through the clamps: the
// operand order of VMINPS/VMAXPS returns x when it is NaN), so n is in
// [-150, 128]. The scale 2^n is applied as two multiplications by 2^(n>>1) and
// 2^(n-(n>>1)), both normal numbers: results that overflow become +Inf and those
// in the subnormal range are rounded once, so exp is accurate down to the
// smallest subnormal and is 0 below it. Infinite inputs give +Inf and 0.

var expPoly = []float32{ // highest degree first: P(r) coefficients r^4..r^0
	0.0013926184037700295,
	0.008363178931176662,
	0.041666556149721146,
	0.16666576266288757,
	0.5,
}

// expInPlace replaces x by exp(x). If corr is not nil it is added to the reduced
// argument r (used to pass the low part of an argument held in two registers).
// The result is returned (a new register; x is clobbered).
func expInPlace(x VecVirtual, corr func(r VecVirtual)) VecVirtual {
	magic := splatF("exp_magic", 12582912) // 1.5·2^23
	c := load(splatF("exp_hi", 88.75))
	VMINPS(x, c, x) // x = min(88.75, x); NaN -> x
	VMOVUPS(splatF("exp_lo", -104), c)
	VMAXPS(x, c, x) // x = max(-104, x); NaN -> x
	t := c
	VMOVUPS(magic, t)
	VFMADD231PS(splatF("log2e", math.Log2E), x, t) // t = x·log2e + magic
	nf := YMM()
	VSUBPS(magic, t, nf) // nf = round(x·log2e)
	ln2hi := float32(math.Ln2)
	ln2lo := float32(math.Ln2 - float64(ln2hi))
	VFNMADD231PS(splatF("ln2hi", ln2hi), nf, x) // r = x - nf·ln2hi
	VFNMADD231PS(splatF("ln2lo", ln2lo), nf, x) // r -= nf·ln2lo
	if corr != nil {
		corr(x)
	}
	VPSUBD(magic, t, t) // t = n (int32)
	p := nf
	VMOVUPS(splatF("exp_p0", expPoly[0]), p)
	for i := 1; i < len(expPoly); i++ {
		VFMADD213PS(splatF(fmt.Sprintf("exp_p%d", i), expPoly[i]), x, p) // p = p·r + c
	}
	VFMADD213PS(one(), x, p) // p = p·r + 1
	VFMADD213PS(one(), x, p) // p = p·r + 1 = exp(r)
	n1 := YMM()
	VPSRAD(U8(1), t, n1) // n1 = n>>1
	VPSUBD(n1, t, t)     // t = n - n1
	bias := splat("exp_bias", 127)
	VPADDD(bias, n1, n1)
	VPSLLD(U8(23), n1, n1) // 2^n1
	VPADDD(bias, t, t)
	VPSLLD(U8(23), t, t) // 2^(n-n1)
	VMULPS(n1, p, p)
	VMULPS(t, p, p)
	return p
}

// xSigmoid returns x·sigmoid(z) in a new register (x and z are kept). With
// e = exp(-|z|), which never overflows, sigmoid(z) is 1/(1+e) for z >= 0 and
// e/(1+e) for z < 0: no cancellation, and results down to the subnormal range
// for very negative z.
func xSigmoid(x, z VecVirtual) VecVirtual {
	e := YMM()
	VORPS(signMask(), z, e) // -|z|
	e = expInPlace(e, nil)
	xe := YMM()
	VMULPS(e, x, xe)
	VADDPS(one(), e, e)
	VBLENDVPS(z, xe, x, xe) // z < 0 ? x·e : x
	VDIVPS(e, xe, xe)
	return xe
}

func expKernels() {
	mapKernel("expAVX2", "func(dst, src []float32)", "sets dst[i] = exp(src[i]) for i < len(src).",
		"src", []string{"src"}, "dst", 2, func() func(v []VecVirtual) VecVirtual {
			return func(v []VecVirtual) VecVirtual { return expInPlace(v[0], nil) }
		})

	// max over one slice.
	TEXT("maxAVX2", NOSPLIT, "func(x []float32) float32")
	Pragma("noescape")
	Doc("maxAVX2 returns the largest element of x (-Inf if x is empty).")
	{
		n := Load(Param("x").Len(), GP64())
		x := param("x", 4)
		m := emitMax(n, x)
		Store(m, ReturnIndex(0))
		VZEROUPPER()
		RET()
	}

	// softmax in place: max pass, exp pass with a float64 running sum, scale pass.
	TEXT("softmaxAVX2", NOSPLIT, "func(x []float32)")
	Pragma("noescape")
	Doc("softmaxAVX2 replaces x by softmax(x); the sum of the exponentials is",
		"accumulated in float64, as the Go reference does.")
	{
		base := Load(Param("x").Base(), GP64())
		size := Load(Param("x").Len(), GP64())
		n := GP64()
		x := ptr{Mem{Base: GP64()}, 4}

		MOVQ(base, x.mem.Base)
		MOVQ(size, n)
		mx := emitMax(n, x)
		m := YMM()
		VBROADCASTSS(mx, m)

		// exp pass
		MOVQ(base, x.mem.Base)
		MOVQ(size, n)
		acc0, acc1 := YMM(), YMM()
		VXORPD(acc0, acc0, acc0)
		VXORPD(acc1, acc1, acc1)
		sum := func(e VecVirtual) {
			lo, hi := YMM(), YMM()
			VCVTPS2PD(e.AsX(), lo)
			VEXTRACTF128(U8(1), e, hi.AsX())
			VCVTPS2PD(hi.AsX(), hi)
			VADDPD(lo, acc0, acc0)
			VADDPD(hi, acc1, acc1)
		}
		expLoop := func(u int) {
			v := YMM()
			VMOVUPS(x.at(8*u), v)
			VSUBPS(m, v, v)
			e := expInPlace(v, nil)
			VMOVUPS(e, x.at(8*u))
			sum(e)
		}
		Label("exploop")
		CMPQ(n, U32(8))
		JB(LabelRef("exptail"))
		expLoop(0)
		ADDQ(U8(32), x.mem.Base)
		SUBQ(U8(8), n)
		JMP(LabelRef("exploop"))
		Label("exptail")
		TESTQ(n, n)
		JZ(LabelRef("reduce"))
		{
			mask := maskFor(n)
			v := YMM()
			VMASKMOVPS(x.mem, mask, v)
			VSUBPS(m, v, v)
			e := expInPlace(v, nil)
			VMASKMOVPS(e, mask, x.mem)
			VANDPS(mask, e, e)
			sum(e)
		}
		Label("reduce")
		VADDPD(acc1, acc0, acc0)
		h := XMM()
		VEXTRACTF128(U8(1), acc0, h)
		VADDPD(acc0.AsX(), h, h)
		h2 := XMM()
		VUNPCKHPD(h, h, h2)
		VADDSD(h2, h, h)
		inv := XMM()
		VMOVSD(one64(), inv)
		VDIVSD(h, inv, inv) // inv = 1/sum
		VCVTSD2SS(inv, inv, inv)
		s := YMM()
		VBROADCASTSS(inv, s)

		// scale pass
		MOVQ(base, x.mem.Base)
		MOVQ(size, n)
		loops(n, []ptr{x}, 4, func(u int) {
			v := YMM()
			VMULPS(x.at(8*u), s, v)
			VMOVUPS(v, x.at(8*u))
		})
		TESTQ(n, n)
		JZ(LabelRef("done"))
		mask := maskFor(n)
		v := YMM()
		VMASKMOVPS(x.mem, mask, v)
		VMULPS(s, v, v)
		VMASKMOVPS(v, mask, x.mem)
		ret()
	}
}

// emitMax emits a max reduction over n elements at x (advancing x and n) and
// returns the result in the low lane of an XMM register. Masked-off lanes of the
// tail are -Inf. Labels are prefixed "max".
func emitMax(n Register, x ptr) VecVirtual {
	ninf := negInf()
	acc := make([]VecVirtual, 4)
	for i := range acc {
		acc[i] = load(ninf)
	}
	Label("maxwide")
	CMPQ(n, U32(32))
	JB(LabelRef("max8"))
	for u := 0; u < 4; u++ {
		VMAXPS(x.at(8*u), acc[u], acc[u])
	}
	ADDQ(U32(128), x.mem.Base)
	SUBQ(U32(32), n)
	JMP(LabelRef("maxwide"))
	Label("max8")
	CMPQ(n, U32(8))
	JB(LabelRef("maxtail"))
	VMAXPS(x.mem, acc[0], acc[0])
	ADDQ(U32(32), x.mem.Base)
	SUBQ(U32(8), n)
	JMP(LabelRef("max8"))
	Label("maxtail")
	TESTQ(n, n)
	JZ(LabelRef("maxreduce"))
	mask := maskFor(n)
	v := YMM()
	VMASKMOVPS(x.mem, mask, v)
	VBLENDVPS(mask, v, acc[1], v) // masked-off lanes: -Inf or what acc[1] holds
	VMAXPS(v, acc[1], acc[1])
	Label("maxreduce")
	VMAXPS(acc[1], acc[0], acc[0])
	VMAXPS(acc[3], acc[2], acc[2])
	VMAXPS(acc[2], acc[0], acc[0])
	r := XMM()
	VEXTRACTF128(U8(1), acc[0], r)
	VMAXPS(acc[0].AsX(), r, r)
	t := XMM()
	VPERMILPS(U8(0x4e), r, t)
	VMAXPS(t, r, r)
	VPERMILPS(U8(0xb1), r, t)
	VMAXPS(t, r, r)
	return r
}

// ---------------------------------------------------------------------------
// Activations.

// GELU (erf form). With a = min(|x|, 14) and t = 1/(1 + 0.3a),
//
//	Φ(-a) = exp(-a²/2) · t · S(t),
//
// S a degree-9 polynomial fitted (Chebyshev, mpmath) to Φ(-a)·exp(a²/2)/t over
// a in [0, 14]; relative error 1.7e-8 with the float32 coefficients. a² is split
// into hi + lo with an FMA and the low part is fed to the reduced argument of exp,
// so exp(-a²/2) keeps full relative accuracy for large a. Then, with
// w = x·Φ(-|x|): GELU(x) = w for x < 0 and x - w for x >= 0 (blend on the sign
// bit), relatively accurate on both sides: no 1 + erf cancellation. In w, x is
// clamped to ±14 like a (Φ(-14) = 8e-45), so GELU(+Inf) = +Inf, GELU(x) for
// x < -14 is a subnormal or 0, and NaN stays NaN.
//
// The fit: mpmath.chebyfit of S(t) = Φ(-a)·exp(a²/2)/t, a = (1/t-1)/0.3, on
// t in [1/(1+0.3·14), 1] with 10 coefficients, each rounded to float32.
var geluS = []float32{ // highest degree first
	-0.020914359018206596,
	0.11404025554656982,
	-0.23203840851783752,
	0.1969405561685562,
	-0.08374246954917908,
	0.0984806939959526,
	0.07758907973766327,
	0.11040518432855606,
	0.11955177038908005,
	0.11968769878149033,
}

func geluBody(x VecVirtual) VecVirtual {
	a := YMM()
	VANDPS(absMask(), x, a)
	VMINPS(splatF("gelu_amax", 14), a, a) // NaN -> 14; NaN is kept through w below
	// t = 1/(1 + 0.3a)
	den := load(one())
	VFMADD231PS(splatF("gelu_p", 0.3), a, den)
	t := load(one())
	VDIVPS(den, t, t)
	// S(t)
	s := den
	VMOVUPS(splatF("gelu_s0", geluS[0]), s)
	for i := 1; i < len(geluS); i++ {
		VFMADD213PS(splatF(fmt.Sprintf("gelu_s%d", i), geluS[i]), t, s)
	}
	VMULPS(t, s, s) // s = t·S(t)
	// exp(-a²/2) with a² = hi + lo
	hi := YMM()
	VMULPS(a, a, hi)
	lo := t
	VMOVUPS(hi, lo)
	VFMSUB231PS(a, a, lo) // lo = a·a - hi (exact)
	half := splatF("neghalf", -0.5)
	VMULPS(half, hi, hi)
	e := expInPlace(hi, func(r VecVirtual) { VFMADD231PS(half, lo, r) })
	VMULPS(e, s, s) // s = Φ(-|x|)
	// w = clamp(x, ±14)·s (NaN x stays NaN)
	xc := a
	VMOVUPS(splatF("gelu_amax", 14), xc)
	VMINPS(x, xc, xc)
	c := load(splatF("gelu_amin", -14))
	VMAXPS(xc, c, xc)
	VMULPS(s, xc, xc) // w
	r := c
	VSUBPS(xc, x, r)       // x - w
	VBLENDVPS(x, xc, r, r) // sign(x) ? w : x - w
	return r
}

func activations() {
	mapKernel("siluAVX2", "func(dst, src []float32)", "sets dst[i] = src[i]·sigmoid(src[i]) = src[i]/(1+exp(-src[i])).",
		"src", []string{"src"}, "dst", 2, func() func(v []VecVirtual) VecVirtual {
			return func(v []VecVirtual) VecVirtual {
				return xSigmoid(v[0], v[0])
			}
		})

	mapKernel("quickGELUAVX2", "func(dst, src []float32)", "sets dst[i] = src[i]·sigmoid(1.702·src[i]).",
		"src", []string{"src"}, "dst", 2, func() func(v []VecVirtual) VecVirtual {
			return func(v []VecVirtual) VecVirtual {
				z := YMM()
				VMULPS(splatF("k1702", 1.702), v[0], z) // rounded as the reference rounds 1.702·x
				return xSigmoid(v[0], z)
			}
		})

	// GELU, tanh form: x/2·(1 + tanh(y)) = x·sigmoid(2y), y = √(2/π)(x + 0.044715x³),
	// so it is x·sigmoid(x·(k0 + k1·x²)) with k0 = 2√(2/π), k1 = 0.044715·k0:
	// no tanh, and no cancellation at either end.
	const k0 = 2 * 0.7978845608028654
	mapKernel("geluTanhAVX2", "func(dst, src []float32)", "sets dst[i] to the tanh approximation of GELU(src[i]).",
		"src", []string{"src"}, "dst", 2, func() func(v []VecVirtual) VecVirtual {
			return func(v []VecVirtual) VecVirtual {
				x := v[0]
				u := YMM()
				VMULPS(x, x, u)
				z := load(splatF("gelutanh_k1", k0*0.044715))
				VFMADD213PS(splatF("gelutanh_k0", k0), u, z) // z = k1·x² + k0
				VMULPS(x, z, z)
				return xSigmoid(x, z)
			}
		})

	mapKernel("geluAVX2", "func(dst, src []float32)", "sets dst[i] = src[i]/2·(1 + erf(src[i]/√2)).",
		"src", []string{"src"}, "dst", 1, func() func(v []VecVirtual) VecVirtual {
			return func(v []VecVirtual) VecVirtual { return geluBody(v[0]) }
		})

	mapKernel("scaleShiftSiLUAVX2", "func(dst, src []float32, scale, shift float32)",
		"sets dst[i] = silu(src[i]·scale + shift).",
		"src", []string{"src"}, "dst", 2, func() func(v []VecVirtual) VecVirtual {
			sc, sh := broadcast("scale"), broadcast("shift")
			return func(v []VecVirtual) VecVirtual {
				x := v[0]
				VFMADD213PS(sh, sc, x) // x = x·scale + shift
				return xSigmoid(x, x)
			}
		})
}

// broadcast loads the float32 parameter name into all lanes of a new register.
func broadcast(name string) VecVirtual {
	x := Load(Param(name), XMM())
	y := YMM()
	VBROADCASTSS(x, y)
	return y
}

// ---------------------------------------------------------------------------
// Reductions.

// hsum adds the eight lanes of acc and returns the sum in the low lane of an XMM.
func hsum(acc VecVirtual) VecVirtual {
	r := XMM()
	VEXTRACTF128(U8(1), acc, r)
	VADDPS(acc.AsX(), r, r)
	t := XMM()
	VMOVHLPS(r, r, t)
	VADDPS(t, r, r)
	VMOVSHDUP(r, t)
	VADDSS(t, r, r)
	return r
}

func reductions() {
	// sum and sum of squares, four accumulators each.
	TEXT("sumSqAVX2", NOSPLIT, "func(x []float32) (sum, sq float32)")
	Pragma("noescape")
	Doc("sumSqAVX2 returns the sum and the sum of squares of x.")
	{
		n := Load(Param("x").Len(), GP64())
		x := param("x", 4)
		var s, q [4]VecVirtual
		for i := range s {
			s[i], q[i] = YMM(), YMM()
			VXORPS(s[i], s[i], s[i])
			VXORPS(q[i], q[i], q[i])
		}
		loops(n, []ptr{x}, 4, func(u int) {
			v := YMM()
			VMOVUPS(x.at(8*u), v)
			VADDPS(v, s[u], s[u])
			VFMADD231PS(v, v, q[u])
		})
		TESTQ(n, n)
		JZ(LabelRef("reduce"))
		mask := maskFor(n)
		v := YMM()
		VMASKMOVPS(x.mem, mask, v) // masked-off lanes read as 0
		VADDPS(v, s[1], s[1])
		VFMADD231PS(v, v, q[1])
		Label("reduce")
		VADDPS(s[1], s[0], s[0])
		VADDPS(s[3], s[2], s[2])
		VADDPS(s[2], s[0], s[0])
		VADDPS(q[1], q[0], q[0])
		VADDPS(q[3], q[2], q[2])
		VADDPS(q[2], q[0], q[0])
		Store(hsum(s[0]), Return("sum"))
		Store(hsum(q[0]), Return("sq"))
		VZEROUPPER()
		RET()
	}

	TEXT("dotAVX2", NOSPLIT, "func(x, y []float32) float32")
	Pragma("noescape")
	Doc("dotAVX2 returns the inner product of x and y[:len(x)].")
	{
		n := Load(Param("x").Len(), GP64())
		x, y := param("x", 4), param("y", 4)
		var acc [4]VecVirtual
		for i := range acc {
			acc[i] = YMM()
			VXORPS(acc[i], acc[i], acc[i])
		}
		loops(n, []ptr{x, y}, 4, func(u int) {
			v := YMM()
			VMOVUPS(x.at(8*u), v)
			VFMADD231PS(y.at(8*u), v, acc[u])
		})
		TESTQ(n, n)
		JZ(LabelRef("reduce"))
		mask := maskFor(n)
		a, b := YMM(), YMM()
		VMASKMOVPS(x.mem, mask, a)
		VMASKMOVPS(y.mem, mask, b)
		VFMADD231PS(a, b, acc[1])
		Label("reduce")
		VADDPS(acc[1], acc[0], acc[0])
		VADDPS(acc[3], acc[2], acc[2])
		VADDPS(acc[2], acc[0], acc[0])
		Store(hsum(acc[0]), ReturnIndex(0))
		VZEROUPPER()
		RET()
	}
}

// ---------------------------------------------------------------------------
// Affine steps and BLAS-1.

func affine() {
	mapKernel("scaleShiftAVX2", "func(dst, src []float32, scale, shift float32)",
		"sets dst[i] = src[i]·scale + shift.",
		"src", []string{"src"}, "dst", 4, func() func(v []VecVirtual) VecVirtual {
			sc, sh := broadcast("scale"), broadcast("shift")
			return func(v []VecVirtual) VecVirtual {
				VFMADD213PS(sh, sc, v[0])
				return v[0]
			}
		})

	mapKernel("normalizeAVX2", "func(dst, src, gamma, beta []float32, mean, invStd float32)",
		"sets dst[i] = (src[i]-mean)·invStd·gamma[i] + beta[i].",
		"src", []string{"src", "gamma", "beta"}, "dst", 4, func() func(v []VecVirtual) VecVirtual {
			mean, inv := broadcast("mean"), broadcast("invStd")
			return func(v []VecVirtual) VecVirtual {
				x := v[0]
				VSUBPS(mean, x, x)
				VMULPS(inv, x, x)
				VFMADD213PS(v[2], v[1], x) // x = x·gamma + beta
				return x
			}
		})
}

func blas1() {
	mapKernel("axpyAVX2", "func(alpha float32, x, y []float32)", "sets y[i] += alpha·x[i] for i < len(x).",
		"x", []string{"x", "y"}, "y", 4, func() func(v []VecVirtual) VecVirtual {
			alpha := broadcast("alpha")
			return func(v []VecVirtual) VecVirtual {
				VFMADD231PS(alpha, v[0], v[1]) // y += alpha·x
				return v[1]
			}
		})

	mapKernel("addAVX2", "func(dst, a, b []float32)", "sets dst[i] = a[i] + b[i] for i < len(a).",
		"a", []string{"a", "b"}, "dst", 4, func() func(v []VecVirtual) VecVirtual {
			return func(v []VecVirtual) VecVirtual {
				VADDPS(v[1], v[0], v[0])
				return v[0]
			}
		})

	mapKernel("mulAVX2", "func(dst, a, b []float32)", "sets dst[i] = a[i] · b[i] for i < len(a).",
		"a", []string{"a", "b"}, "dst", 4, func() func(v []VecVirtual) VecVirtual {
			return func(v []VecVirtual) VecVirtual {
				VMULPS(v[1], v[0], v[0])
				return v[0]
			}
		})
}

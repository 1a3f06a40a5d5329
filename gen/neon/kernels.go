package main

import (
	"fmt"
	"math"
)

// ---------------------------------------------------------------------------
// SGEMM micro-kernels.
//
// The driver's panels are kept: a holds, for each p < kc, the 6 elements
// A[0:6, p]; b the 16 elements B[p, 0:16]. The 6×16 tile of C lives in 24
// registers (V8-V31, row r in V8+4r .. V11+4r); each step loads four vectors of B
// (V0-V3; for F16 B, two vectors of halves in V6-V7 widened with FCVTL/FCVTL2)
// and the six elements of A (V4 and the low half of V5), and issues 24 FMLAs by
// element, A[r] being lane r%4 of V4 or V5.

const (
	mr = 6
	nr = 16
)

func gemmKernels(f *file) {
	s := func(b string) signature {
		return sig("kc int, a *float32, b "+b+", c *float32, ldc int", "")
	}
	f.newFunc("kernelF32NEON", s("*float32"), []string{
		"kernelF32NEON adds the 6x16 product of kc packed steps of A and B to C",
		"(C rows ldc floats apart).",
	}, func(k *fn) { microKernel(k, false) })
	f.newFunc("kernelF16BNEON", s("*uint16"), []string{
		"kernelF16BNEON adds the 6x16 product of kc packed steps of A and of",
		"half-precision B, widened in registers, to C (C rows ldc floats apart).",
	}, func(k *fn) { microKernel(k, true) })
	f.newFunc("fmaPeakNEON", sig("iters int", ""), []string{
		"fmaPeakNEON runs iters iterations of 24 independent 4-lane FMAs.",
	}, peak)
}

func acc(r, j int) int { return 8 + 4*r + j }

func microKernel(k *fn, half bool) {
	k.i("MOVD %s, R0", k.arg("kc"))
	k.i("MOVD %s, R1", k.arg("a"))
	k.i("MOVD %s, R2", k.arg("b"))
	for r := acc(0, 0); r < 32; r++ {
		k.zero(vg{r})
	}
	step := func() {
		k.i("VLD1.P 16(R1), [V4.S4]")
		k.i("VLD1.P 8(R1), [V5.S2]")
		if half {
			k.i("VLD1.P 32(R2), [V6.H8, V7.H8]")
			for j := 0; j < 4; j++ {
				src := 6 + j/2
				if j%2 == 0 {
					k.word(encFCVTL|rdnm(j, src, 0), "fcvtl v%d.4s, v%d.4h", j, src)
				} else {
					k.word(encFCVTL2|rdnm(j, src, 0), "fcvtl2 v%d.4s, v%d.8h", j, src)
				}
			}
		} else {
			k.i("VLD1.P 64(R2), [V0.S4, V1.S4, V2.S4, V3.S4]")
		}
		for r := 0; r < mr; r++ {
			a := cref{4 + r/4, r % 4}
			for j := 0; j < nr/4; j++ {
				k.fmlaC(vg{acc(r, j)}, vg{j}, a)
			}
		}
	}
	const unroll = 4
	k.comment("Unrolled by %d while at least %d steps remain.", unroll, unroll)
	k.at("loop4")
	k.i("CMP $%d, R0", unroll)
	k.i("BLT tail")
	for p := 0; p < unroll; p++ {
		step()
	}
	k.i("SUB $%d, R0", unroll)
	k.i("B loop4")
	k.at("tail")
	k.i("CBZ R0, store")
	step()
	k.i("SUB $1, R0")
	k.i("B tail")
	k.at("store")
	k.i("MOVD %s, R3", k.arg("c"))
	k.i("MOVD %s, R4", k.arg("ldc"))
	k.i("LSL $2, R4")
	c := vg{0, 1, 2, 3}
	for r := 0; r < mr; r++ {
		k.i("VLD1 (R3), %s", list(c, "S4"))
		k.fadd(c, c, vg{acc(r, 0), acc(r, 1), acc(r, 2), acc(r, 3)})
		k.i("VST1 %s, (R3)", list(c, "S4"))
		if r < mr-1 {
			k.i("ADD R4, R3")
		}
	}
	k.i("RET")
}

// peak is a loop of independent FMAs on registers only: 24 chains cover the
// latency of every FMA pipe of current cores. Each iteration is 24 FMAs of 4
// lanes, 192 floating-point operations (the amd64 loop's count).
func peak(k *fn) {
	k.i("MOVD %s, R0", k.arg("iters"))
	for r := 0; r < 32; r++ {
		if r < 2 || r >= acc(0, 0) {
			k.zero(vg{r})
		}
	}
	k.at("loop")
	k.i("CBZ R0, done")
	for r := acc(0, 0); r < 32; r++ {
		k.fmla(vg{r}, vg{0}, vg{1})
	}
	k.i("SUB $1, R0")
	k.i("B loop")
	k.at("done")
	k.i("RET")
}

// ---------------------------------------------------------------------------
// Loops.

// mapLoops emits the loops of an elementwise kernel over n (a register holding
// the count) elements. ins are the pointer registers of the float32 inputs, out
// that of the output (a register of its own, even when it points at an input).
// body gets the loaded inputs and returns the result; it is emitted for the wide
// loop (k.u = unroll copies of 4 lanes), the 4-lane loop and the tail (one
// element at a time in lane 0: the scalar load clears the other lanes, whose
// results are not stored). k.scalar is set while the tail is emitted.
func (k *fn) mapLoops(n string, ins []string, out string, unroll int, body func(v []vg) vg) {
	emit := func(u int, scalar bool) {
		saved := k.used
		k.u, k.scalar = u, scalar
		v := make([]vg, len(ins))
		for i, p := range ins {
			v[i] = k.vec()
			if scalar {
				k.i("FMOVS.P 4(%s), F%d", p, v[i][0])
			} else {
				k.ld(v[i], p)
			}
		}
		r := body(v)
		if scalar {
			k.i("FMOVS.P F%d, 4(%s)", r[0], out)
		} else {
			k.st(r, out)
		}
		k.used = saved
		k.u, k.scalar = 1, false
	}
	wide, loop4, tail, done := k.label("wide"), k.label("loop"), k.label("tail"), k.label("done")
	if unroll > 1 {
		k.at(wide)
		k.i("CMP $%d, %s", 4*unroll, n)
		k.i("BLT %s", loop4)
		emit(unroll, false)
		k.i("SUB $%d, %s", 4*unroll, n)
		k.i("B %s", wide)
	}
	k.at(loop4)
	k.i("CMP $4, %s", n)
	k.i("BLT %s", tail)
	emit(1, false)
	k.i("SUB $4, %s", n)
	k.i("B %s", loop4)
	k.at(tail)
	k.i("CBZ %s, %s", n, done)
	emit(1, true)
	k.i("SUB $1, %s", n)
	k.i("B %s", tail)
	k.at(done)
}

// rep is a group of k.u copies of one register.
func (k *fn) rep(r int) vg {
	g := make(vg, k.u)
	for c := range g {
		g[c] = r
	}
	return g
}

// mapKernel is a kernel out[i] = body(ins[0][i], ...) over float32 slices of
// the length of the slice argument lenOf, unrolled unroll times in the wide
// loop. Constants and float32 arguments the body asks for (k.c, k.splatF,
// k.param) are loaded once, before the loops.
func (f *file) mapKernel(name, params string, doc []string, lenOf string, ins []string, out string, unroll int,
	body func(k *fn, v []vg) vg) {
	f.newFunc(name, sig(params, ""), doc, func(k *fn) {
		k.i("MOVD %s, R0", k.arg(lenOf+"_len"))
		var regs []string
		for i, in := range ins {
			regs = append(regs, fmt.Sprintf("R%d", i+1))
			k.i("MOVD %s, %s", k.arg(in+"_base"), regs[i])
		}
		o := fmt.Sprintf("R%d", len(ins)+1)
		k.i("MOVD %s, %s", k.arg(out+"_base"), o)
		k.mapLoops("R0", regs, o, unroll, func(v []vg) vg { return body(k, v) })
		k.i("RET")
	})
}

// ---------------------------------------------------------------------------
// Conversions.

func conversions(f *file) {
	s := sig("dst []float32, src []uint16", "")
	f.newFunc("f16ToF32NEON", s, []string{
		"f16ToF32NEON widens len(src) half-precision values into dst (FCVTL).",
	}, func(k *fn) {
		loads(k)
		k.at("wide")
		k.i("CMP $16, R2")
		k.i("BLT loop4")
		k.i("VLD1.P 32(R1), [V0.H8, V1.H8]")
		for j := 0; j < 4; j++ {
			if j%2 == 0 {
				k.word(encFCVTL|rdnm(2+j, j/2, 0), "fcvtl v%d.4s, v%d.4h", 2+j, j/2)
			} else {
				k.word(encFCVTL2|rdnm(2+j, j/2, 0), "fcvtl2 v%d.4s, v%d.8h", 2+j, j/2)
			}
		}
		k.i("VST1.P [V2.S4, V3.S4, V4.S4, V5.S4], 64(R0)")
		k.i("SUB $16, R2")
		k.i("B wide")
		k.at("loop4")
		k.i("CMP $4, R2")
		k.i("BLT tail")
		k.i("VLD1.P 8(R1), [V0.H4]")
		k.word(encFCVTL|rdnm(1, 0, 0), "fcvtl v1.4s, v0.4h")
		k.i("VST1.P [V1.S4], 16(R0)")
		k.i("SUB $4, R2")
		k.i("B loop4")
		k.at("tail")
		k.i("CBZ R2, done")
		k.i("MOVHU.P 2(R1), R3")
		k.i("FMOVS R3, F0")
		k.i("FCVTHS F0, F1")
		k.i("FMOVS.P F1, 4(R0)")
		k.i("SUB $1, R2")
		k.i("B tail")
		k.at("done")
		k.i("RET")
	})

	f.newFunc("f32ToF16NEON", sig("dst []uint16, src []float32", ""), []string{
		"f32ToF16NEON narrows len(src) float32 values into dst (FCVTN), rounding to",
		"nearest even (the FPCR mode Go runs with).",
	}, func(k *fn) {
		loads(k)
		k.at("wide")
		k.i("CMP $16, R2")
		k.i("BLT loop4")
		k.i("VLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]")
		for j := 0; j < 4; j++ {
			if j%2 == 0 {
				k.word(encFCVTN|rdnm(4+j/2, j, 0), "fcvtn v%d.4h, v%d.4s", 4+j/2, j)
			} else {
				k.word(encFCVTN2|rdnm(4+j/2, j, 0), "fcvtn2 v%d.8h, v%d.4s", 4+j/2, j)
			}
		}
		k.i("VST1.P [V4.H8, V5.H8], 32(R0)")
		k.i("SUB $16, R2")
		k.i("B wide")
		k.at("loop4")
		k.i("CMP $4, R2")
		k.i("BLT tail")
		k.i("VLD1.P 16(R1), [V0.S4]")
		k.word(encFCVTN|rdnm(1, 0, 0), "fcvtn v1.4h, v0.4s")
		k.i("VST1.P [V1.H4], 8(R0)")
		k.i("SUB $4, R2")
		k.i("B loop4")
		k.at("tail")
		k.i("CBZ R2, done")
		k.i("FMOVS.P 4(R1), F0")
		k.i("FCVTSH F0, F1")
		k.i("FMOVS F1, R3")
		k.i("MOVH.P R3, 2(R0)")
		k.i("SUB $1, R2")
		k.i("B tail")
		k.at("done")
		k.i("RET")
	})

	// BF16 -> F32: interleave zero halves below the bfloat16 ones (ZIP1/ZIP2 with
	// a zero register), which is the 16-bit shift into the high half.
	f.newFunc("bf16ToF32NEON", s, []string{
		"bf16ToF32NEON widens len(src) bfloat16 values into dst.",
	}, func(k *fn) {
		loads(k)
		k.zero(vg{31})
		k.at("wide")
		k.i("CMP $16, R2")
		k.i("BLT loop4")
		k.i("VLD1.P 32(R1), [V0.H8, V1.H8]")
		k.i("VZIP1 V0.H8, V31.H8, V2.H8")
		k.i("VZIP2 V0.H8, V31.H8, V3.H8")
		k.i("VZIP1 V1.H8, V31.H8, V4.H8")
		k.i("VZIP2 V1.H8, V31.H8, V5.H8")
		k.i("VST1.P [V2.S4, V3.S4, V4.S4, V5.S4], 64(R0)")
		k.i("SUB $16, R2")
		k.i("B wide")
		k.at("loop4")
		k.i("CMP $4, R2")
		k.i("BLT tail")
		k.i("VLD1.P 8(R1), [V0.H4]")
		k.i("VZIP1 V0.H8, V31.H8, V1.H8")
		k.i("VST1.P [V1.S4], 16(R0)")
		k.i("SUB $4, R2")
		k.i("B loop4")
		k.at("tail")
		k.i("CBZ R2, done")
		k.i("MOVHU.P 2(R1), R3")
		k.i("LSLW $16, R3")
		k.i("MOVW.P R3, 4(R0)")
		k.i("SUB $1, R2")
		k.i("B tail")
		k.at("done")
		k.i("RET")
	})
}

// loads puts dst in R0, src in R1 and len(src) in R2.
func loads(k *fn) {
	k.i("MOVD %s, R0", k.arg("dst_base"))
	k.i("MOVD %s, R1", k.arg("src_base"))
	k.i("MOVD %s, R2", k.arg("src_len"))
}

// ---------------------------------------------------------------------------
// exp: the algorithm of gen/vec (see there for the derivation of the
// coefficients and the bounds).
//
// exp(x) = 2^n · exp(r), n = round(x·log2 e) found with the 1.5·2^23 trick,
// r = x - n·ln2hi - n·ln2lo (fused), exp(r) = 1 + r(1 + r·P(r)), P of degree 4;
// x is clamped to [-104, 88.75] first (FMIN and FMAX keep NaN), and 2^n is
// applied as 2^(n>>1)·2^(n-(n>>1)) so that subnormal results are rounded once
// and overflow gives +Inf.

var expPoly = []float32{ // highest degree first
	0.0013926184037700295,
	0.008363178931176662,
	0.041666556149721146,
	0.16666576266288757,
	0.5,
}

const expMagic = 12582912 // 1.5·2^23

// exp returns exp(x) in a new group; x is clobbered (it holds r). corr, if not
// nil, is applied to the reduced argument r.
func (k *fn) exp(x vg, corr func(r vg)) vg {
	magic := k.splatF(expMagic)
	k.fmin(x, x, k.splatF(88.75))
	k.fmax(x, x, k.splatF(-104))
	t := k.vec()
	k.mov(t, magic)
	k.fmlaC(t, x, k.c(math.Log2E)) // t = x·log2e + magic
	p := k.vec()
	k.fsub(p, t, magic) // nf = round(x·log2e)
	ln2hi := float32(math.Ln2)
	ln2lo := float32(math.Ln2 - float64(ln2hi))
	k.fmlsC(x, p, k.c(ln2hi)) // r = x - nf·ln2hi
	k.fmlsC(x, p, k.c(ln2lo)) // r -= nf·ln2lo
	if corr != nil {
		corr(x)
	}
	k.isub(t, t, magic) // n (int32)
	k.dup(p, k.c(expPoly[0]))
	tmp := k.vec()
	horner := func(c vg) { // p = p·r + c
		k.fmla(c, p, x)
		p, tmp = c, p
	}
	for _, c := range expPoly[1:] {
		k.dup(tmp, k.c(c))
		horner(tmp)
	}
	one := k.splatF(1)
	for range 2 {
		k.mov(tmp, one)
		horner(tmp)
	}
	n1 := tmp
	k.sshr(n1, t, 1) // n1 = n>>1
	k.isub(t, t, n1) // t = n - n1
	bias := k.splat(127)
	k.iadd(n1, n1, bias)
	k.shl(n1, n1, 23) // 2^n1
	k.iadd(t, t, bias)
	k.shl(t, t, 23) // 2^(n-n1)
	k.fmul(p, p, n1)
	k.fmul(p, p, t)
	k.free(t, n1)
	return p
}

// xSigmoid returns x·sigmoid(z) in a new group (x and z are kept): with
// e = exp(-|z|), which never overflows, sigmoid(z) is 1/(1+e) for z >= 0 and
// e/(1+e) for z < 0 (the sign bit decides, as in gen/vec).
func (k *fn) xSigmoid(x, z vg) vg {
	e := k.vec()
	k.fabs(e, z)
	k.fneg(e, e)
	p := k.exp(e, nil)
	k.free(e)
	xe := k.vec()
	k.fmul(xe, x, p)
	k.fadd(p, p, k.splatF(1))
	m := k.vec()
	k.cmlt0(m, z)
	k.bsl(m, xe, x) // z < 0 ? x·e : x
	k.fdiv(m, m, p)
	k.free(xe, p)
	return m
}

func expKernels(f *file) {
	un := "dst []float32, src []float32"
	f.mapKernel("expNEON", un, []string{"expNEON sets dst[i] = exp(src[i]) for i < len(src)."},
		"src", []string{"src"}, "dst", 2, func(k *fn, v []vg) vg { return k.exp(v[0], nil) })

	f.newFunc("maxNEON", sig("x []float32", "ret float32"), []string{
		"maxNEON returns the largest element of x (-Inf if x is empty).",
	}, func(k *fn) {
		k.i("MOVD %s, R0", k.arg("x_base"))
		k.i("MOVD %s, R1", k.arg("x_len"))
		m := k.emitMax("R1", "R0")
		k.i("FMOVS F%d, %s", m, k.arg("ret"))
		k.i("RET")
	})

	// softmax in place: a max pass, an exp pass that sums the exponentials in
	// float64 (two 2-lane accumulators, and a scalar one for the tail), a scale pass.
	f.newFunc("softmaxNEON", sig("x []float32", ""), []string{
		"softmaxNEON replaces x by softmax(x); the sum of the exponentials is",
		"accumulated in float64, as the Go reference does.",
	}, func(k *fn) {
		k.i("MOVD %s, R0", k.arg("x_base"))
		k.i("MOVD %s, R1", k.arg("x_len"))
		k.i("MOVD R0, R2")
		k.i("MOVD R1, R3")
		saved := k.used
		mx := k.emitMax("R3", "R2")
		k.used = saved
		m := k.vec()[0]
		k.i("VDUP V%d.S[0], V%d.S4", mx, m)
		sums := k.vecN(3) // two 2×float64 accumulators, and the tail's float64
		for _, r := range sums {
			k.zero(vg{r})
		}
		k.i("MOVD R0, R2")
		k.i("MOVD R0, R4")
		k.i("MOVD R1, R3")
		k.mapLoops("R3", []string{"R2"}, "R4", 2, func(v []vg) vg {
			x := v[0]
			k.fsub(x, x, k.rep(m))
			e := k.exp(x, nil)
			if k.scalar {
				t := k.vec()[0]
				k.i("FCVTSD F%d, F%d", e[0], t)
				k.i("FADDD F%d, F%d, F%d", t, sums[2], sums[2])
				return e
			}
			lo, hi := k.vec(), k.vec()
			for c := range e {
				k.word(encFCVTLD|rdnm(lo[c], e[c], 0), "fcvtl v%d.2d, v%d.2s", lo[c], e[c])
				k.word(encFCVTL2D|rdnm(hi[c], e[c], 0), "fcvtl2 v%d.2d, v%d.4s", hi[c], e[c])
				k.word(encFADD2D|rdnm(sums[0], sums[0], lo[c]), "fadd v%d.2d, v%d.2d, v%d.2d", sums[0], sums[0], lo[c])
				k.word(encFADD2D|rdnm(sums[1], sums[1], hi[c]), "fadd v%d.2d, v%d.2d, v%d.2d", sums[1], sums[1], hi[c])
			}
			return e
		})
		s0, s1, st := sums[0], sums[1], sums[2]
		k.word(encFADD2D|rdnm(s0, s0, s1), "fadd v%d.2d, v%d.2d, v%d.2d", s0, s0, s1)
		k.word(encFADDPD|rdnm(s0, s0, 0), "faddp d%d, v%d.2d", s0, s0)
		k.i("FADDD F%d, F%d, F%d", st, s0, s0)
		k.i("FMOVD $1.0, F%d", s1)
		k.i("FDIVD F%d, F%d, F%d", s0, s1, s1) // 1/sum
		k.i("FCVTDS F%d, F%d", s1, s1)
		k.i("VDUP V%d.S[0], V%d.S4", s1, s1)
		k.i("MOVD R0, R2")
		k.i("MOVD R0, R4")
		k.i("MOVD R1, R3")
		k.mapLoops("R3", []string{"R2"}, "R4", 4, func(v []vg) vg {
			k.fmul(v[0], v[0], k.rep(s1))
			return v[0]
		})
		k.i("RET")
	})
}

// emitMax emits a max reduction over n elements at p (advancing both) and
// returns the register whose lane 0 holds the result. Four accumulators start
// at -Inf; the tail loads each element into all four lanes (LD1R).
func (k *fn) emitMax(n, p string) int {
	ninf := k.splat(0xff800000)
	a := k.vecN(4)
	for _, r := range a {
		k.mov(vg{r}, ninf)
	}
	v := k.vecN(4)
	one := func(i int) (vg, vg) { return vg{a[i]}, vg{v[i]} }
	k.at("maxwide")
	k.i("CMP $16, %s", n)
	k.i("BLT max4")
	k.ld(v, p)
	for i := range a {
		d, x := one(i)
		k.fmax(d, d, x)
	}
	k.i("SUB $16, %s", n)
	k.i("B maxwide")
	k.at("max4")
	k.i("CMP $4, %s", n)
	k.i("BLT maxtail")
	d, x := one(0)
	k.ld(x, p)
	k.fmax(d, d, x)
	k.i("SUB $4, %s", n)
	k.i("B max4")
	k.at("maxtail")
	k.i("CBZ %s, maxreduce", n)
	d, x = one(1)
	k.i("VLD1R.P 4(%s), [V%d.S4]", p, x[0])
	k.fmax(d, d, x)
	k.i("SUB $1, %s", n)
	k.i("B maxtail")
	k.at("maxreduce")
	k.fmax(vg{a[0]}, vg{a[0]}, vg{a[1]})
	k.fmax(vg{a[2]}, vg{a[2]}, vg{a[3]})
	k.fmax(vg{a[0]}, vg{a[0]}, vg{a[2]})
	k.word(encFMAXV|rdnm(a[0], a[0], 0), "fmaxv s%d, v%d.4s", a[0], a[0])
	k.free(a, v)
	return a[0]
}

// ---------------------------------------------------------------------------
// Activations.

// GELU, erf form, as in gen/vec: with a = min(|x|, 14) and t = 1/(1 + 0.3a),
// Φ(-a) = exp(-a²/2)·t·S(t), S of degree 9; a² = hi + lo exactly (FMA) and lo
// goes into the reduced argument of exp. With w = clamp(x, ±14)·Φ(-|x|),
// GELU(x) = w for x < 0 and x - w otherwise.
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

func (k *fn) gelu(x vg) vg {
	one := k.splatF(1)
	amax := k.splatF(14)
	a := k.vec()
	k.fabs(a, x)
	k.fmin(a, a, amax)
	den := k.vec()
	k.mov(den, one)
	k.fmlaC(den, a, k.c(0.3)) // 1 + 0.3a
	t := k.vec()
	k.fdiv(t, one, den)
	s, tmp := den, k.vec()
	k.dup(s, k.c(geluS[0]))
	for _, c := range geluS[1:] {
		k.dup(tmp, k.c(c))
		k.fmla(tmp, s, t) // tmp = c + s·t
		s, tmp = tmp, s
	}
	k.fmul(s, s, t) // t·S(t)
	hi := k.vec()
	k.fmul(hi, a, a)
	lo := t
	k.fneg(lo, hi)
	k.fmla(lo, a, a) // lo = a·a - hi, exactly
	half := k.c(-0.5)
	k.fmulC(hi, hi, half)
	e := k.exp(hi, func(r vg) { k.fmlaC(r, lo, half) })
	k.free(hi, lo)
	k.fmul(s, s, e) // Φ(-|x|)
	xc := a
	k.fmin(xc, x, amax)
	k.fmax(xc, xc, k.splatF(-14))
	k.fmul(xc, xc, s) // w
	r := e
	k.fsub(r, x, xc) // x - w
	m := tmp
	k.cmlt0(m, x)
	k.bsl(m, xc, r) // x < 0 ? w : x - w
	k.free(a, s, e)
	return m
}

func activations(f *file) {
	un := "dst []float32, src []float32"
	f.mapKernel("siluNEON", un, []string{"siluNEON sets dst[i] = src[i]·sigmoid(src[i]) = src[i]/(1+exp(-src[i]))."},
		"src", []string{"src"}, "dst", 2, func(k *fn, v []vg) vg { return k.xSigmoid(v[0], v[0]) })

	f.mapKernel("quickGELUNEON", un, []string{"quickGELUNEON sets dst[i] = src[i]·sigmoid(1.702·src[i])."},
		"src", []string{"src"}, "dst", 2, func(k *fn, v []vg) vg {
			z := k.vec()
			k.fmulC(z, v[0], k.c(1.702)) // rounded as the reference rounds 1.702·x
			return k.xSigmoid(v[0], z)
		})

	// GELU, tanh form: x·sigmoid(x·(k0 + k1·x²)) with k0 = 2√(2/π) and
	// k1 = 0.044715·k0 (see gen/vec).
	const k0 = 2 * 0.7978845608028654
	f.mapKernel("geluTanhNEON", un, []string{"geluTanhNEON sets dst[i] to the tanh approximation of GELU(src[i])."},
		"src", []string{"src"}, "dst", 2, func(k *fn, v []vg) vg {
			x := v[0]
			u := k.vec()
			k.fmul(u, x, x)
			z := k.vec()
			k.dup(z, k.c(k0))
			k.fmlaC(z, u, k.c(k0*0.044715)) // z = k0 + k1·x²
			k.fmul(z, z, x)
			return k.xSigmoid(x, z)
		})

	f.mapKernel("geluNEON", un, []string{"geluNEON sets dst[i] = src[i]/2·(1 + erf(src[i]/√2))."},
		"src", []string{"src"}, "dst", 1, func(k *fn, v []vg) vg { return k.gelu(v[0]) })

	f.mapKernel("scaleShiftSiLUNEON", "dst []float32, src []float32, scale float32, shift float32",
		[]string{"scaleShiftSiLUNEON sets dst[i] = silu(src[i]·scale + shift)."},
		"src", []string{"src"}, "dst", 2, func(k *fn, v []vg) vg {
			x := k.vec()
			k.mov(x, k.param("shift"))
			k.fmla(x, v[0], k.param("scale")) // x = src·scale + shift
			return k.xSigmoid(x, x)
		})
}

// ---------------------------------------------------------------------------
// Reductions: four accumulators over 16-element blocks, the 4-lane loop and
// the tail (scalar loads, zero in the other lanes) add into one of them.

// hsum leaves the sum of the four lanes of r in its lane 0.
func (k *fn) hsum(r int) {
	k.word(encFADDP|rdnm(r, r, r), "faddp v%d.4s, v%d.4s, v%d.4s", r, r, r)
	k.word(encFADDPS|rdnm(r, r, 0), "faddp s%d, v%d.2s", r, r)
}

func reductions(f *file) {
	f.newFunc("sumSqNEON", sig("x []float32", "sum float32, sq float32"), []string{
		"sumSqNEON returns the sum and the sum of squares of x.",
	}, func(k *fn) {
		k.i("MOVD %s, R0", k.arg("x_base"))
		k.i("MOVD %s, R1", k.arg("x_len"))
		s, q, v := k.vecN(4), k.vecN(4), k.vecN(4)
		k.zero(s)
		k.zero(q)
		k.reduceLoops("R1", []string{"R0"}, []vg{v}, func(c, lane int) {
			k.fadd(vg{s[c]}, vg{s[c]}, vg{v[lane]})
			k.fmla(vg{q[c]}, vg{v[lane]}, vg{v[lane]})
		})
		for _, a := range []vg{s, q} {
			k.fadd(vg{a[0], a[2]}, vg{a[0], a[2]}, vg{a[1], a[3]})
			k.fadd(vg{a[0]}, vg{a[0]}, vg{a[2]})
			k.hsum(a[0])
		}
		k.i("FMOVS F%d, %s", s[0], k.arg("sum"))
		k.i("FMOVS F%d, %s", q[0], k.arg("sq"))
		k.i("RET")
	})

	f.newFunc("dotNEON", sig("x []float32, y []float32", "ret float32"), []string{
		"dotNEON returns the inner product of x and y[:len(x)].",
	}, func(k *fn) {
		k.i("MOVD %s, R0", k.arg("x_base"))
		k.i("MOVD %s, R1", k.arg("y_base"))
		k.i("MOVD %s, R2", k.arg("x_len"))
		a, x, y := k.vecN(4), k.vecN(4), k.vecN(4)
		k.zero(a)
		k.reduceLoops("R2", []string{"R0", "R1"}, []vg{x, y}, func(c, lane int) {
			k.fmla(vg{a[c]}, vg{x[lane]}, vg{y[lane]})
		})
		k.fadd(vg{a[0], a[2]}, vg{a[0], a[2]}, vg{a[1], a[3]})
		k.fadd(vg{a[0]}, vg{a[0]}, vg{a[2]})
		k.hsum(a[0])
		k.i("FMOVS F%d, %s", a[0], k.arg("ret"))
		k.i("RET")
	})
}

// reduceLoops emits the loops of a reduction over n elements: ptrs are loaded
// into the four registers of the matching group of in, and step(c, lane) adds
// the vector in lane of each group into accumulator c. The 4-lane loop and the
// tail use accumulator 0 and 1 and register 0 of each group.
func (k *fn) reduceLoops(n string, ptrs []string, in []vg, step func(c, lane int)) {
	k.at("wide")
	k.i("CMP $16, %s", n)
	k.i("BLT loop4")
	for i, p := range ptrs {
		k.ld(in[i], p)
	}
	for c := 0; c < 4; c++ {
		step(c, c)
	}
	k.i("SUB $16, %s", n)
	k.i("B wide")
	k.at("loop4")
	k.i("CMP $4, %s", n)
	k.i("BLT tail")
	for i, p := range ptrs {
		k.ld(in[i][:1], p)
	}
	step(0, 0)
	k.i("SUB $4, %s", n)
	k.i("B loop4")
	k.at("tail")
	k.i("CBZ %s, reduce", n)
	for i, p := range ptrs {
		k.i("FMOVS.P 4(%s), F%d", p, in[i][0])
	}
	step(1, 0)
	k.i("SUB $1, %s", n)
	k.i("B tail")
	k.at("reduce")
}

// ---------------------------------------------------------------------------
// Affine steps and BLAS-1.

func affine(f *file) {
	f.mapKernel("scaleShiftNEON", "dst []float32, src []float32, scale float32, shift float32",
		[]string{"scaleShiftNEON sets dst[i] = src[i]·scale + shift."},
		"src", []string{"src"}, "dst", 4, func(k *fn, v []vg) vg {
			r := k.vec()
			k.mov(r, k.param("shift"))
			k.fmla(r, v[0], k.param("scale"))
			return r
		})

	f.mapKernel("normalizeNEON", "dst []float32, src []float32, gamma []float32, beta []float32, mean float32, invStd float32",
		[]string{"normalizeNEON sets dst[i] = (src[i]-mean)·invStd·gamma[i] + beta[i]."},
		"src", []string{"src", "gamma", "beta"}, "dst", 4, func(k *fn, v []vg) vg {
			x := v[0]
			k.fsub(x, x, k.param("mean"))
			k.fmul(x, x, k.param("invStd"))
			k.fmla(v[2], x, v[1]) // beta + x·gamma
			return v[2]
		})

	f.mapKernel("axpyNEON", "alpha float32, x []float32, y []float32",
		[]string{"axpyNEON sets y[i] += alpha·x[i] for i < len(x)."},
		"x", []string{"x", "y"}, "y", 4, func(k *fn, v []vg) vg {
			k.fmla(v[1], v[0], k.param("alpha"))
			return v[1]
		})

	f.mapKernel("addNEON", "dst []float32, a []float32, b []float32",
		[]string{"addNEON sets dst[i] = a[i] + b[i] for i < len(a)."},
		"a", []string{"a", "b"}, "dst", 4, func(k *fn, v []vg) vg {
			k.fadd(v[0], v[0], v[1])
			return v[0]
		})

	f.mapKernel("mulNEON", "dst []float32, a []float32, b []float32",
		[]string{"mulNEON sets dst[i] = a[i] · b[i] for i < len(a)."},
		"a", []string{"a", "b"}, "dst", 4, func(k *fn, v []vg) vg {
			k.fmul(v[0], v[0], v[1])
			return v[0]
		})
}

//go:build arm64 && !noasm

package asm

// The F16 block of B stays in half precision only when the generated kernel can
// widen it; the Go kernel is given float32 panels. The NEON kernels keep the
// driver's 6×16 tile: 24 accumulators of 4 lanes, with 8 registers left for B and A.
var hasF16Kernel = useNEON

func kernelF32(kc int, a, b, c []float32, ldc int) {
	if !useNEON {
		kernelF32Generic(kc, a, b, c, ldc)
		return
	}
	// The kernel reads kc steps of both slivers and a 6×16 tile of C: check the
	// bounds here, once, since the assembly cannot.
	_, _, _ = a[kc*gemmMR-1], b[kc*gemmNR-1], c[(gemmMR-1)*ldc+gemmNR-1]
	kernelF32NEON(kc, &a[0], &b[0], &c[0], ldc)
}

func kernelF16B(kc int, a []float32, b []uint16, c []float32, ldc int) {
	if !useNEON {
		kernelF16BGeneric(kc, a, b, c, ldc)
		return
	}
	_, _, _ = a[kc*gemmMR-1], b[kc*gemmNR-1], c[(gemmMR-1)*ldc+gemmNR-1]
	kernelF16BNEON(kc, &a[0], &b[0], &c[0], ldc)
}

// fmaPeak runs iters iterations of the register-only FMA loop and returns the
// floating-point operations it performed, or 0 without the NEON kernels.
func fmaPeak(iters int) int {
	if !useNEON {
		return 0
	}
	fmaPeakNEON(iters)
	return iters * fmaFlopsPerIter
}

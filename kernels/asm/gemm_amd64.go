//go:build amd64 && !noasm

package asm

// The F16 block of B stays in half precision only when the generated kernel can
// widen it; the Go kernel is given float32 panels.
var hasF16Kernel = useAVX2

func kernelF32(kc int, a, b, c []float32, ldc int) {
	if !useAVX2 {
		kernelF32Generic(kc, a, b, c, ldc)
		return
	}
	// The kernel reads kc steps of both slivers and a 6×16 tile of C: check the
	// bounds here, once, since the assembly cannot.
	_, _, _ = a[kc*gemmMR-1], b[kc*gemmNR-1], c[(gemmMR-1)*ldc+gemmNR-1]
	kernelF32AVX2(kc, &a[0], &b[0], &c[0], ldc)
}

func kernelF16B(kc int, a []float32, b []uint16, c []float32, ldc int) {
	if !useAVX2 {
		kernelF16BGeneric(kc, a, b, c, ldc)
		return
	}
	_, _, _ = a[kc*gemmMR-1], b[kc*gemmNR-1], c[(gemmMR-1)*ldc+gemmNR-1]
	kernelF16BAVX2(kc, &a[0], &b[0], &c[0], ldc)
}

// fmaPeak runs iters iterations of the register-only FMA loop and returns the
// floating-point operations it performed, or 0 without the AVX2 kernels.
func fmaPeak(iters int) int {
	if !useAVX2 {
		return 0
	}
	fmaPeakAVX2(iters)
	return iters * fmaFlopsPerIter
}

//go:build (!amd64 && !arm64) || noasm

package asm

// Without assembly the F16 block of B is widened while packing: the Go kernel
// gains nothing from reading half-precision values.
const hasF16Kernel = false

func kernelF32(kc int, a, b, c []float32, ldc int) { kernelF32Generic(kc, a, b, c, ldc) }

func kernelF16B(kc int, a []float32, b []uint16, c []float32, ldc int) {
	kernelF16BGeneric(kc, a, b, c, ldc)
}

func fmaPeak(iters int) int { return 0 }

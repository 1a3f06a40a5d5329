//go:build arm64 && !noasm

package asm

// Dispatch of the vector routines: the NEON kernels of kernels_arm64.s (generated
// by gen/neon) where the processor has them, the Go references otherwise.
// Callers have already cut every slice to the length the kernel reads.

func f16ToF32(dst []float32, src []uint16) {
	if useNEON && len(src) > 0 {
		f16ToF32NEON(dst, src)
		return
	}
	f16ToF32Generic(dst, src)
}

func f32ToF16(dst []uint16, src []float32) {
	if useNEON && len(src) > 0 {
		f32ToF16NEON(dst, src)
		return
	}
	f32ToF16Generic(dst, src)
}

func bf16ToF32(dst []float32, src []uint16) {
	if useNEON && len(src) > 0 {
		bf16ToF32NEON(dst, src)
		return
	}
	bf16ToF32Generic(dst, src)
}

func expVec(dst, src []float32) {
	if useNEON && len(src) > 0 {
		expNEON(dst, src)
		return
	}
	expGeneric(dst, src)
}

func softmax(x []float32) {
	if useNEON && len(x) > 0 {
		softmaxNEON(x)
		return
	}
	softmaxGeneric(x)
}

func silu(dst, src []float32) {
	if useNEON && len(src) > 0 {
		siluNEON(dst, src)
		return
	}
	siluGeneric(dst, src)
}

func gelu(dst, src []float32) {
	if useNEON && len(src) > 0 {
		geluNEON(dst, src)
		return
	}
	geluGeneric(dst, src)
}

func geluTanh(dst, src []float32) {
	if useNEON && len(src) > 0 {
		geluTanhNEON(dst, src)
		return
	}
	geluTanhGeneric(dst, src)
}

func quickGELU(dst, src []float32) {
	if useNEON && len(src) > 0 {
		quickGELUNEON(dst, src)
		return
	}
	quickGELUGeneric(dst, src)
}

func sumSq(x []float32) (float32, float32) {
	if useNEON && len(x) > 0 {
		return sumSqNEON(x)
	}
	return sumSqGeneric(x)
}

func scaleShift(dst, src []float32, scale, shift float32) {
	if useNEON && len(src) > 0 {
		scaleShiftNEON(dst, src, scale, shift)
		return
	}
	scaleShiftGeneric(dst, src, scale, shift)
}

func scaleShiftSiLU(dst, src []float32, scale, shift float32) {
	if useNEON && len(src) > 0 {
		scaleShiftSiLUNEON(dst, src, scale, shift)
		return
	}
	scaleShiftSiLUGeneric(dst, src, scale, shift)
}

func normalize(dst, src, gamma, beta []float32, mean, invStd float32) {
	if useNEON && len(src) > 0 {
		normalizeNEON(dst, src, gamma, beta, mean, invStd)
		return
	}
	normalizeGeneric(dst, src, gamma, beta, mean, invStd)
}

func axpy(alpha float32, x, y []float32) {
	if useNEON && len(x) > 0 {
		axpyNEON(alpha, x, y)
		return
	}
	axpyGeneric(alpha, x, y)
}

func dot(x, y []float32) float32 {
	if useNEON && len(x) > 0 {
		return dotNEON(x, y)
	}
	return dotGeneric(x, y)
}

func add(dst, a, b []float32) {
	if useNEON && len(a) > 0 {
		addNEON(dst, a, b)
		return
	}
	addGeneric(dst, a, b)
}

func mul(dst, a, b []float32) {
	if useNEON && len(a) > 0 {
		mulNEON(dst, a, b)
		return
	}
	mulGeneric(dst, a, b)
}

func maxVec(x []float32) float32 {
	if useNEON && len(x) > 0 {
		return maxNEON(x)
	}
	return maxGeneric(x)
}

package asm

// Vector routines. Each checks its slice lengths (panicking like copy-style
// standard-library functions when dst is shorter than src) and runs the AVX2 or NEON
// kernel where the processor has it, the Go reference otherwise.

func checkLen(name string, dst, src int) {
	if dst < src {
		panic("asm." + name + ": dst shorter than src")
	}
}

// F16ToF32 widens IEEE half-precision bit patterns to float32: dst[i] = float32(src[i]).
func F16ToF32(dst []float32, src []uint16) {
	checkLen("F16ToF32", len(dst), len(src))
	f16ToF32(dst[:len(src)], src)
}

// F32ToF16 narrows float32 to IEEE half-precision bit patterns, rounding to nearest even
// (overflow goes to ±Inf, NaN stays NaN).
func F32ToF16(dst []uint16, src []float32) {
	checkLen("F32ToF16", len(dst), len(src))
	f32ToF16(dst[:len(src)], src)
}

// BF16ToF32 widens bfloat16 bit patterns to float32 (exact: a 16-bit shift).
func BF16ToF32(dst []float32, src []uint16) {
	checkLen("BF16ToF32", len(dst), len(src))
	bf16ToF32(dst[:len(src)], src)
}

// F32ToBF16 narrows float32 to bfloat16 bit patterns, rounding to nearest even; NaN stays NaN.
func F32ToBF16(dst []uint16, src []float32) {
	checkLen("F32ToBF16", len(dst), len(src))
	f32ToBF16Generic(dst[:len(src)], src)
}

// Exp sets dst[i] = exp(src[i]) to within a few float32 ulps; exp of a large negative
// input is 0, of a large positive input +Inf.
func Exp(dst, src []float32) {
	checkLen("Exp", len(dst), len(src))
	expVec(dst[:len(src)], src)
}

// Softmax replaces x by softmax(x) = exp(x - max x) / sum exp(x - max x).
func Softmax(x []float32) {
	if len(x) == 0 {
		return
	}
	softmax(x)
}

// SiLU sets dst[i] = src[i] * sigmoid(src[i]).
func SiLU(dst, src []float32) {
	checkLen("SiLU", len(dst), len(src))
	silu(dst[:len(src)], src)
}

// GELU sets dst[i] = src[i]/2 * (1 + erf(src[i]/√2)), the exact (erf) form.
func GELU(dst, src []float32) {
	checkLen("GELU", len(dst), len(src))
	gelu(dst[:len(src)], src)
}

// GELUTanh sets dst[i] to the tanh approximation of GELU:
// x/2 * (1 + tanh(√(2/π) (x + 0.044715 x³))).
func GELUTanh(dst, src []float32) {
	checkLen("GELUTanh", len(dst), len(src))
	geluTanh(dst[:len(src)], src)
}

// QuickGELU sets dst[i] = src[i] * sigmoid(1.702 src[i]) (OpenAI CLIP's activation).
func QuickGELU(dst, src []float32) {
	checkLen("QuickGELU", len(dst), len(src))
	quickGELU(dst[:len(src)], src)
}

// SumSq returns the sum and the sum of squares of x, accumulated in float32 in
// several vector lanes. Callers that need accuracy over long inputs sum blocks of a
// few thousand elements and add the block results in float64.
func SumSq(x []float32) (sum, sq float32) {
	return sumSq(x)
}

// ScaleShift sets dst[i] = src[i]*scale + shift (group norm's per-channel affine step).
func ScaleShift(dst, src []float32, scale, shift float32) {
	checkLen("ScaleShift", len(dst), len(src))
	scaleShift(dst[:len(src)], src, scale, shift)
}

// ScaleShiftSiLU sets dst[i] = silu(src[i]*scale + shift) (group norm fused with SiLU).
func ScaleShiftSiLU(dst, src []float32, scale, shift float32) {
	checkLen("ScaleShiftSiLU", len(dst), len(src))
	scaleShiftSiLU(dst[:len(src)], src, scale, shift)
}

// Normalize sets dst[i] = (src[i]-mean)*invStd*gamma[i] + beta[i] (layer norm's
// per-row step). gamma and beta must be at least as long as src.
func Normalize(dst, src, gamma, beta []float32, mean, invStd float32) {
	checkLen("Normalize", len(dst), len(src))
	checkLen("Normalize(gamma)", len(gamma), len(src))
	checkLen("Normalize(beta)", len(beta), len(src))
	normalize(dst[:len(src)], src, gamma[:len(src)], beta[:len(src)], mean, invStd)
}

// Axpy sets y[i] += alpha*x[i].
func Axpy(alpha float32, x, y []float32) {
	checkLen("Axpy", len(y), len(x))
	axpy(alpha, x, y[:len(x)])
}

// Dot returns the inner product of x and y[:len(x)].
func Dot(x, y []float32) float32 {
	checkLen("Dot", len(y), len(x))
	return dot(x, y[:len(x)])
}

// Add sets dst[i] = a[i] + b[i]; b and dst must be at least as long as a.
func Add(dst, a, b []float32) {
	checkLen("Add", len(dst), len(a))
	checkLen("Add(b)", len(b), len(a))
	add(dst[:len(a)], a, b[:len(a)])
}

// Mul sets dst[i] = a[i] * b[i]; b and dst must be at least as long as a.
func Mul(dst, a, b []float32) {
	checkLen("Mul", len(dst), len(a))
	checkLen("Mul(b)", len(b), len(a))
	mul(dst[:len(a)], a, b[:len(a)])
}

// Scale sets dst[i] = src[i] * s.
func Scale(dst, src []float32, s float32) {
	checkLen("Scale", len(dst), len(src))
	scaleShift(dst[:len(src)], src, s, 0)
}

// Max returns the largest element of x (-Inf for an empty slice; NaN if any is NaN
// is not guaranteed).
func Max(x []float32) float32 {
	return maxVec(x)
}

//go:build (!amd64 && !arm64) || noasm

package asm

func f16ToF32(dst []float32, src []uint16)                { f16ToF32Generic(dst, src) }
func f32ToF16(dst []uint16, src []float32)                { f32ToF16Generic(dst, src) }
func bf16ToF32(dst []float32, src []uint16)               { bf16ToF32Generic(dst, src) }
func expVec(dst, src []float32)                           { expGeneric(dst, src) }
func softmax(x []float32)                                 { softmaxGeneric(x) }
func silu(dst, src []float32)                             { siluGeneric(dst, src) }
func gelu(dst, src []float32)                             { geluGeneric(dst, src) }
func geluTanh(dst, src []float32)                         { geluTanhGeneric(dst, src) }
func quickGELU(dst, src []float32)                        { quickGELUGeneric(dst, src) }
func sumSq(x []float32) (float32, float32)                { return sumSqGeneric(x) }
func scaleShift(dst, src []float32, scale, shift float32) { scaleShiftGeneric(dst, src, scale, shift) }
func scaleShiftSiLU(dst, src []float32, scale, shift float32) {
	scaleShiftSiLUGeneric(dst, src, scale, shift)
}
func normalize(dst, src, gamma, beta []float32, mean, invStd float32) {
	normalizeGeneric(dst, src, gamma, beta, mean, invStd)
}
func axpy(alpha float32, x, y []float32) { axpyGeneric(alpha, x, y) }
func dot(x, y []float32) float32         { return dotGeneric(x, y) }
func add(dst, a, b []float32)            { addGeneric(dst, a, b) }
func mul(dst, a, b []float32)            { mulGeneric(dst, a, b) }
func maxVec(x []float32) float32         { return maxGeneric(x) }

//go:build amd64 && !noasm

package asm

import "testing"

// The AVX2 kernels called directly (not through the dispatch), against the same
// references and bounds as vec_test.go.

func skipNoAVX2(t testing.TB) {
	if !useAVX2 {
		t.Skip("no AVX2+FMA+F16C on this processor")
	}
}

func TestVecAVX2UnaryKernels(t *testing.T) {
	skipNoAVX2(t)
	kernels := map[string]func(dst, src []float32){
		"Exp": expAVX2, "SiLU": siluAVX2, "QuickGELU": quickGELUAVX2, "GELU": geluAVX2, "GELUTanh": geluTanhAVX2,
	}
	for _, c := range vecUnaryCases() {
		t.Run(c.name, func(t *testing.T) {
			worst := checkUnary(t, c, kernels[c.name])
			t.Logf("%sAVX2: largest error %d ulps", c.name, worst)
		})
	}
}

func TestVecAVX2Conversions(t *testing.T) {
	skipNoAVX2(t)
	checkConversions(t, f16ToF32AVX2, f32ToF16AVX2, bf16ToF32AVX2)
}

func TestVecAVX2Softmax(t *testing.T) {
	skipNoAVX2(t)
	t.Logf("softmaxAVX2: largest error %d ulps", checkSoftmax(t, softmaxAVX2))
	softmaxAVX2(nil)
}

func TestVecAVX2Reductions(t *testing.T) {
	skipNoAVX2(t)
	checkSumSq(t, sumSqAVX2)
	checkDot(t, dotAVX2)
	checkMax(t, maxAVX2)
}

func TestVecAVX2AffineAndBLAS1(t *testing.T) {
	skipNoAVX2(t)
	checkAffine(t, vecAffine{scaleShiftAVX2, scaleShiftSiLUAVX2, normalizeAVX2, axpyAVX2, addAVX2, mulAVX2})
}

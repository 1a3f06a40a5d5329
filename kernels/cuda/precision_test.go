package cuda

import (
	"testing"

	"github.com/sdgo/sdgo/tensor"
)

func TestParsePrecision(t *testing.T) {
	for s, want := range map[string]Precision{"fp32": FP32, "": FP32, "TF32": TF32, "fp16": FP16, "half": FP16, "bf16": BF16, " BFloat16 ": BF16} {
		p, err := ParsePrecision(s)
		if err != nil || p != want {
			t.Errorf("ParsePrecision(%q) = %v, %v; want %v", s, p, err, want)
		}
	}
	if _, err := ParsePrecision("fp8"); err == nil {
		t.Error("fp8 accepted")
	}
	for _, p := range []Precision{FP32, TF32, FP16, BF16} {
		if q, err := ParsePrecision(p.String()); err != nil || q != p {
			t.Errorf("round trip of %v: %v, %v", p, q, err)
		}
	}
	var b Backend
	if b.Precision() != FP32 {
		t.Error("zero Backend is not FP32")
	}
	if err := b.SetPrecision(BF16); err != nil || b.Precision() != BF16 {
		t.Errorf("SetPrecision(BF16): %v, %v", err, b.Precision())
	}
	if err := b.SetPrecision(-1); err == nil {
		t.Error("SetPrecision(-1) accepted")
	}
}

// TestGemmDType checks which dtype cuBLAS gets both operands in, and the
// compute type.
func TestGemmDType(t *testing.T) {
	f32, f16, bf16 := tensor.F32, tensor.F16, tensor.BF16
	for _, c := range []struct {
		p        Precision
		a, b, dt tensor.DType
	}{
		{FP32, f32, f32, f32}, {FP32, f32, f16, f32}, {FP32, bf16, f32, f32}, {FP32, f16, f16, f16}, {FP32, f16, bf16, f32},
		{TF32, f32, f32, f32}, {TF32, f32, f16, f32}, {TF32, bf16, bf16, bf16},
		{FP16, f32, f32, f16}, {FP16, f32, f16, f16}, {FP16, f32, bf16, f16}, {FP16, bf16, bf16, bf16}, {FP16, f16, f16, f16},
		{BF16, f32, f32, bf16}, {BF16, f32, f16, bf16}, {BF16, f16, f16, f16}, {BF16, f16, bf16, bf16},
	} {
		if got := gemmDType(c.p, c.a, c.b); got != c.dt {
			t.Errorf("%v: %v × %v in %v, want %v", c.p, c.a, c.b, got, c.dt)
		}
	}
	if computeType(TF32, f32) != cublasCompute32FFastTF32 || computeType(TF32, f16) != cublasCompute32F ||
		computeType(FP32, f32) != cublasCompute32F || computeType(FP16, f16) != cublasCompute32F {
		t.Error("compute types")
	}
}

func TestConvChunk(t *testing.T) {
	for _, c := range []struct{ n, k, pix, limit, nimg, pc int }{
		{2, 2880, 4096, 1 << 26, 2, 4096},     // SD 1.5 first level: one step
		{8, 2880, 4096, 1 << 26, 5, 4096},     // images per step
		{1, 1152, 1 << 20, 1 << 26, 1, 58248}, // VAE at 1024: pixels per step, a multiple of 8
		{1, 1 << 27, 100, 1 << 26, 1, 8},      // at least 8 pixels
		{1, 9, 5, 1 << 26, 1, 5},
	} {
		nimg, pc := convChunk(c.n, c.k, c.pix, c.limit)
		if nimg != c.nimg || pc != c.pc {
			t.Errorf("convChunk(%d, %d, %d, %d) = %d, %d; want %d, %d", c.n, c.k, c.pix, c.limit, nimg, pc, c.nimg, c.pc)
		}
		if pc%8 != 0 && pc != c.pix {
			t.Errorf("pc %d", pc)
		}
	}
}

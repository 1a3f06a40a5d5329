package metal

import (
	"fmt"
	"strings"
)

// Precision chooses the arithmetic of a Backend's matrix products (MatMul,
// Linear and Conv2d).
type Precision int32

const (
	// FP32 stages the operands of every product in float: results match the CPU
	// backend to about 1e-6 of their largest magnitude. The default.
	FP32 Precision = iota
	// FP16 stages them in half on simdgroup_half8x8 matrices, with FP32
	// accumulation and F32 results: twice the multiply rate and half the
	// threadgroup memory, at F16 rounding of the operands (about 1e-3 of the
	// largest magnitude; values beyond ±65504 overflow, which is why the
	// pipelines run a force_upcast VAE under tensor.FullPrecision).
	FP16
)

func (p Precision) String() string {
	switch p {
	case FP32:
		return "FP32"
	case FP16:
		return "FP16"
	}
	return "Precision(?)"
}

// ParsePrecision reads a --precision value: fp32 (f32, float32) or fp16 (f16,
// float16, half), in any case.
func ParsePrecision(s string) (Precision, error) {
	switch strings.ToLower(s) {
	case "fp32", "f32", "float32":
		return FP32, nil
	case "fp16", "f16", "float16", "half":
		return FP16, nil
	}
	return FP32, fmt.Errorf("metal: precision %q: want fp16 or fp32", s)
}

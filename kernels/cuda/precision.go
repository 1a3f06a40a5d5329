package cuda

import (
	"fmt"
	"strings"

	"github.com/sdgo/sdgo/tensor"
)

// Precision chooses how a Backend runs its matrix products (MatMul, Conv2d and
// Attention); every other operation is FP32 in every mode, and activations stay
// F32 tensors.
//
//   - FP32 (the default): FP32 products, as accurate as the CPU backend. F16
//     and BF16 weights are widened exactly; cuBLAS runs F32 products without
//     TF32 (operands that are both F16, or both BF16, run on cuBLAS as they are,
//     with FP32 accumulation).
//   - TF32: as FP32, but cuBLAS may round F32 operands to TF32 on the tensor
//     cores (CUBLAS_COMPUTE_32F_FAST_TF32; a 10-bit mantissa), and Conv2d
//     runs as im2col + cuBLAS GEMM. Attention is as in FP32 mode.
//   - FP16 and BF16, "mixed": the products run on the tensor cores through
//     cuBLAS (cublasGemmEx, cublasGemmStridedBatchedEx) with F16 (or BF16) A
//     and B, FP32 accumulation (CUBLAS_COMPUTE_32F) and F32 output. The F32
//     operand (the activation) is rounded to F16/BF16 into a temporary first;
//     a weight already in that dtype is read in place, one of another dtype is
//     converted on each call. Conv2d lays its input out as columns (im2col,
//     F16/BF16, at most convScratch elements at a time) for a batched GEMM
//     that writes NCHW directly, the bias added through beta. Attention
//     computes BlockQ rows of scores at a time (in either AttentionMode): S =
//     scale·Q·Kᵀ with F32 output, a softmax kernel that writes P in F16/BF16, and
//     O = P·V, with Q, K and V converted to F16/BF16 once per call.
//
// F16 holds magnitudes up to 65504: an activation beyond it becomes ±Inf in
// FP16 mode (SDXL's VAE decoder is known to get there; use BF16 or FP32 for
// it). BF16 has F32's range with 8 bits of mantissa. The tests' error bounds
// (precision_gpu_test.go): the largest error is at most 4u of the largest
// output of a product (8u for attention), u = 2⁻¹¹ for F16 and TF32, 2⁻⁸ for BF16.
//
// Without cuBLAS (not found, SDGO_CUBLAS=off, or UseCUBLAS(false)) every mode
// runs as FP32 on the embedded kernels.
type Precision int32

const (
	FP32 Precision = iota
	TF32
	FP16
	BF16
)

var precisionNames = [...]string{"fp32", "tf32", "fp16", "bf16"}

func (p Precision) String() string {
	if p >= 0 && int(p) < len(precisionNames) {
		return precisionNames[p]
	}
	return fmt.Sprintf("Precision(%d)", int32(p))
}

// ParsePrecision returns the Precision named s: "fp32", "tf32", "fp16" or
// "bf16" (any case; "f32", "f16", "half" and "bfloat16" are accepted too).
func ParsePrecision(s string) (Precision, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "fp32", "f32", "float32", "":
		return FP32, nil
	case "tf32":
		return TF32, nil
	case "fp16", "f16", "float16", "half":
		return FP16, nil
	case "bf16", "bfloat16":
		return BF16, nil
	}
	return FP32, fmt.Errorf("cuda: unknown precision %q (want fp32, tf32, fp16 or bf16)", s)
}

// SetPrecision chooses the precision of the matrix products of the operations
// that start afterwards (see Precision). It may be called at any time, from
// any goroutine.
func (b *Backend) SetPrecision(p Precision) error {
	if p < FP32 || p > BF16 {
		return fmt.Errorf("cuda.SetPrecision: %w: %v", tensor.ErrRange, p)
	}
	b.prec.Store(int32(p))
	return nil
}

// Precision returns the precision set by SetPrecision (FP32 by default).
func (b *Backend) Precision() Precision { return Precision(b.prec.Load()) }

// blasOK says whether this operation's products may go to cuBLAS.
func (r *run) blasOK() bool { return r.d.blas != nil && !r.b.noBLAS }

// mixedDType returns the dtype the tensor cores read in this operation's
// precision (F16 or BF16), or F32 and false in FP32 and TF32 modes or without
// cuBLAS.
func (r *run) mixedDType() (tensor.DType, bool) {
	if !r.blasOK() {
		return tensor.F32, false
	}
	switch r.prec {
	case FP16:
		return tensor.F16, true
	case BF16:
		return tensor.BF16, true
	}
	return tensor.F32, false
}

// gemmDType returns the dtype both operands of a cuBLAS product of a and b
// operands are given in: their own when they share one (F32 stays F32 only in
// FP32 and TF32 modes), else F32 in FP32 and TF32 modes and the mixed dtype in
// FP16 and BF16 modes.
func gemmDType(p Precision, adt, bdt tensor.DType) tensor.DType {
	mixed := tensor.F32
	switch p {
	case FP16:
		mixed = tensor.F16
	case BF16:
		mixed = tensor.BF16
	}
	if adt == bdt && (adt != tensor.F32 || mixed == tensor.F32) {
		return adt
	}
	return mixed
}

// computeType is cuBLAS's compute type for operands of dtype dt: FP32
// accumulation, allowing TF32 for F32 operands in TF32 mode.
func computeType(p Precision, dt tensor.DType) int32 {
	if p == TF32 && dt == tensor.F32 {
		return cublasCompute32FFastTF32
	}
	return cublasCompute32F
}

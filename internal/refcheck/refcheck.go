// Package refcheck compares what the engine computes with the reference
// fixtures (see internal/fixture): the README's tolerance for model outputs,
// and reading fixture tensors onto a backend.
package refcheck

import (
	"math"
	"os"
	"strings"
	"testing"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/tensor"
)

// Tolerance is the relative tolerance of model outputs, max abs error over
// max(1, max|want|): the README's 1e-4 when the fixtures run in FP32 (on the
// CPU, or a device in its FP32 mode), and looser bounds when a device's
// matrix products round their operands ($SDGO_TEST_PRECISION, see
// fixture.Backend):
//
//   - fp16: 2e-2. An FP16 operand carries a relative error of up to
//     u = 2^-11 = 4.9e-4; the fixture networks chain 20 to 60 products and
//     normalisations, with random weights that do not damp errors as trained
//     ones do, so errors of a few tens of u at the outputs are rounding, while a
//     real bug (a wrong weight, a transposed operand) is of order one.
//   - bf16: 1e-1, the same argument with u = 2^-8 = 3.9e-3.
//   - tf32: 1e-2 (u = 2^-11, as FP16, with FP32's range).
func Tolerance() float64 {
	switch strings.ToLower(os.Getenv("SDGO_TEST_PRECISION")) {
	case "fp16", "f16", "half", "float16":
		return 2e-2
	case "bf16", "bfloat16":
		return 1e-1
	case "tf32":
		return 1e-2
	}
	return 1e-4
}

// RequireClose checks got against want with the tolerance for model outputs,
// max abs error <= Tolerance() x max(1, max|want|) (the README's 1e-4 in FP32),
// raised to floor when floor is larger, and reports the worst element; with a
// reduced precision it also logs the error it found.
func RequireClose(t testing.TB, what string, want, got []float32, floor float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	scale := 1.0
	for _, w := range want {
		scale = math.Max(scale, math.Abs(float64(w)))
	}
	worst, at := 0.0, 0
	for i := range want {
		if d := math.Abs(float64(want[i]) - float64(got[i])); d > worst || math.IsNaN(d) {
			worst, at = d, i
			if math.IsNaN(d) {
				worst = math.Inf(1)
			}
		}
	}
	rel := Tolerance()
	tol := math.Max(rel*scale, floor)
	if !(worst <= tol) {
		t.Fatalf("%s: max abs error %g at %d (want %g, got %g), tolerance %g", what, worst, at, want[at], got[at], tol)
	}
	if rel > 1e-4 {
		t.Logf("%s: max abs error %.2g = %.2g of max(1, max|want|) (tolerance %.2g)", what, worst, worst/scale, rel)
	} else if floor > 1e-4*scale {
		t.Logf("%s: error %.2g within the measured rounding sensitivity (tolerance %.2g)", what, worst, tol)
	}
}

// Tensor reads a tensor of a fixture file as F32 onto b.
func Tensor(t testing.TB, b tensor.Backend, f *safetensors.File, name string) *tensor.Tensor {
	t.Helper()
	v, err := f.Float32s(name)
	if err != nil {
		t.Fatalf("fixture %s: %v", f.Name(), err)
	}
	info, _ := f.Info(name)
	x, err := tensor.FromFloat32(b, v, info.Shape...)
	if err != nil {
		t.Fatalf("fixture %s: %s: %v", f.Name(), name, err)
	}
	return x
}

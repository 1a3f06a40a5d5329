// Package refcheck compares what the engine computes with the reference
// fixtures (see internal/fixture): the README's tolerance for model outputs,
// and reading fixture tensors onto a backend.
package refcheck

import (
	"math"
	"testing"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/tensor"
)

// RequireClose checks got against want with the README's tolerance for model
// outputs, max abs error <= 1e-4 x max(1, max|want|), raised to floor when floor
// is larger, and reports the worst element.
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
	tol := math.Max(1e-4*scale, floor)
	if !(worst <= tol) {
		t.Fatalf("%s: max abs error %g at %d (want %g, got %g), tolerance %g", what, worst, at, want[at], got[at], tol)
	}
	if floor > 1e-4*scale {
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

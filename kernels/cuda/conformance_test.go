package cuda

import (
	"testing"

	"github.com/sdgo/sdgo/tensor/backendtest"
)

// TestGPUConformance runs the backend conformance suite that every backend
// passes (package tensor/backendtest) on the GPU: in FP32 with the CPU's
// tolerances, and with FP16 tensor-core products within what F16 operands
// allow. The suite bounds errors by the largest output, and a bias can cancel
// most of a product whose F16 rounding (u = 2⁻¹¹ of the product) sets the
// error: x·w + b with |b| close to |x·w| measured 2.7e-3 of the output on an
// H200. So FP16 gets 1e-2, about 20u; a wrong kernel is off by far more.
func TestGPUConformance(t *testing.T) {
	b := gpu(t)
	defer b.SetPrecision(b.Precision())
	b.SetPrecision(FP32)
	t.Run("fp32", func(t *testing.T) { backendtest.Run(t, b, backendtest.Tolerance{}) })
	b.SetPrecision(FP16)
	t.Run("fp16", func(t *testing.T) { backendtest.Run(t, b, backendtest.Tolerance{Sum: 1e-2}) })
	b.SetPrecision(FP32)
}

package backendtest

import (
	"testing"

	"github.com/sdgo/sdgo/tensor"
)

// TestCPU runs the suite on the CPU backend itself: a second CPU backend is
// compared with the reference one, so every case must hold exactly, and the
// suite's own code is exercised on every `go test ./...`.
func TestCPU(t *testing.T) {
	Run(t, tensor.NewCPU(), Tolerance{Elem: 1e-7, Sum: 1e-7})
}

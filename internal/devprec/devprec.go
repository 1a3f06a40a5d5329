// Package devprec sets a device backend's precision by name, for the commands
// (--precision) and the fixture tests ($SDGO_TEST_PRECISION) alike.
package devprec

import (
	"github.com/sdgo/sdgo/kernels/cuda"
	"github.com/sdgo/sdgo/kernels/metal"
	"github.com/sdgo/sdgo/tensor"
)

// Set sets b's precision to the one name names ("fp32", "tf32", "fp16",
// "bf16"; see cuda.ParsePrecision and metal.ParsePrecision). It reports
// whether b has a precision setting at all: the CPU has none, and Set leaves
// it alone.
func Set(b tensor.Backend, name string) (bool, error) {
	switch d := b.(type) {
	case *cuda.Backend:
		p, err := cuda.ParsePrecision(name)
		if err != nil {
			return true, err
		}
		return true, d.SetPrecision(p)
	case *metal.Backend:
		p, err := metal.ParsePrecision(name)
		if err != nil {
			return true, err
		}
		d.SetPrecision(p)
		return true, nil
	}
	return false, nil
}

// Package bench holds what sdgo's benchmarks share: models of the real shapes
// with synthetic weights made in memory (real weights cannot be downloaded where
// the project is tested), peak-memory readings, and the timing harness behind
// `sd bench` and the `go test -bench` benchmarks.
package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/sdgo/sdgo/tensor"
	"github.com/x448/float16"
)

// Synthetic is an nn.Params that makes every weight on demand with the shape
// the model asks for: random values scaled by 1/√fan-in (so activations keep a
// sensible range through many layers), norms' weights 1 and biases 0. Weights
// are stored in DType, as real checkpoints store them (F16 by default).
type Synthetic struct {
	Backend tensor.Backend
	DType   tensor.DType
	Seed    uint64
}

// Tensor refuses names: a synthetic model knows shapes only through Synthesize.
func (s *Synthetic) Tensor(name string) (*tensor.Tensor, error) {
	return nil, fmt.Errorf("synthetic weights: %s requested without a shape", name)
}

// Synthesize makes the weight called name with the given shape.
func (s *Synthetic) Synthesize(name string, shape []int) (*tensor.Tensor, error) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	value := s.values(name, shape)
	dt := s.DType
	if dt == 0 {
		dt = tensor.F16
	}
	// On the CPU, written straight into a long-lived tensor, as the weights
	// loader does, so that making a model holds no second copy of its weights.
	t, err := tensor.NewLongLived(s.Backend, dt, shape...)
	if err != nil {
		return nil, err
	}
	cs, onCPU := t.Storage().(*tensor.CPUStorage)
	if !onCPU {
		cs = &tensor.CPUStorage{}
		if dt == tensor.F32 {
			cs.F32 = make([]float32, n)
		} else {
			cs.U16 = make([]uint16, n)
		}
	}
	switch dt {
	case tensor.F32:
		for i := range cs.F32 {
			cs.F32[i] = value()
		}
	case tensor.BF16:
		for i := range cs.U16 {
			cs.U16[i] = uint16(math.Float32bits(value()) >> 16)
		}
	default:
		for i := range cs.U16 {
			cs.U16[i] = float16.Fromfloat32(value()).Bits()
		}
	}
	if !onCPU {
		var src any = cs.U16
		if dt == tensor.F32 {
			src = cs.F32
		}
		if err := s.Backend.Write(t.Storage(), src); err != nil {
			t.Release()
			return nil, err
		}
	}
	return t, nil
}

// values returns the generator of the weight called name's elements, in order.
func (s *Synthetic) values(name string, shape []int) func() float32 {
	h := uint64(14695981039346656037)
	for _, c := range []byte(name) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	rng := rand.New(rand.NewPCG(s.Seed, h))
	isNorm := strings.Contains(name, "norm") && len(shape) == 1
	scale := float32(0) // biases and norms' shifts are 0
	switch {
	case isNorm && strings.HasSuffix(name, ".weight"):
	case isNorm || strings.HasSuffix(name, ".bias"):
	default:
		fanIn := 1
		if len(shape) > 1 {
			for _, d := range shape[1:] {
				fanIn *= d
			}
		}
		scale = float32(1 / math.Sqrt(float64(fanIn)))
	}
	return func() float32 {
		if isNorm && strings.HasSuffix(name, ".weight") {
			return 1
		}
		if scale == 0 {
			return 0
		}
		return (rng.Float32()*2 - 1) * scale
	}
}

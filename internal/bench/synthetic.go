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
	h := uint64(14695981039346656037)
	for _, c := range []byte(name) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	rng := rand.New(rand.NewPCG(s.Seed, h))
	v := make([]float32, n)
	isNorm := strings.Contains(name, "norm") && len(shape) == 1
	switch {
	case isNorm && strings.HasSuffix(name, ".weight"):
		for i := range v {
			v[i] = 1
		}
	case isNorm || strings.HasSuffix(name, ".bias"):
		// zeros
	default:
		fanIn := 1
		if len(shape) > 1 {
			for _, d := range shape[1:] {
				fanIn *= d
			}
		}
		scale := float32(1 / math.Sqrt(float64(fanIn)))
		for i := range v {
			v[i] = (rng.Float32()*2 - 1) * scale
		}
	}
	switch s.DType {
	case tensor.F16, 0:
		bits := make([]uint16, n)
		for i, x := range v {
			bits[i] = float16.Fromfloat32(x).Bits()
		}
		return tensor.FromBits(s.Backend, tensor.F16, bits, shape...)
	case tensor.BF16:
		bits := make([]uint16, n)
		for i, x := range v {
			bits[i] = uint16(math.Float32bits(x) >> 16)
		}
		return tensor.FromBits(s.Backend, tensor.BF16, bits, shape...)
	}
	return tensor.FromFloat32(s.Backend, v, shape...)
}

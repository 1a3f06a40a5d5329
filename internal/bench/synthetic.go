// Package bench holds what sdgo's benchmarks share: models of the real shapes
// with synthetic weights, written once to a cached checkpoint (real weights
// cannot be downloaded where the project is tested), peak-memory readings, and
// the timing harness behind `sd bench` and the `go test -bench` benchmarks.
package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/diffusion/weights"
	"github.com/sdgo/sdgo/tensor"
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

// Synthesize makes the weight called name with the given shape: the bytes a
// synthetic checkpoint holds for it (File), loaded as weights.FromBytes loads a
// checkpoint's.
func (s *Synthetic) Synthesize(name string, shape []int) (*tensor.Tensor, error) {
	info := safetensors.Info{Name: name, DType: fileDType(s.DType), Shape: shape}
	return weights.FromBytes(s.Backend, info.DType, shape, s.encode(info))
}

// fileDType is the safetensors dtype that stores dt (F16 for the zero DType).
func fileDType(dt tensor.DType) safetensors.DType {
	switch dt {
	case tensor.F32:
		return safetensors.F32
	case tensor.BF16:
		return safetensors.BF16
	}
	return safetensors.F16
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

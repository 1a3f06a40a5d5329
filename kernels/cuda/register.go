package cuda

import (
	"fmt"
	"os"

	"github.com/sdgo/sdgo/tensor"
)

// The CUDA backend opens by name through tensor.OpenDevice ("cuda",
// "cuda:1") in any program that imports this package. Opened that way its
// precision is $SDGO_CUDA_PRECISION when set (fp32, tf32, fp16 or bf16; see
// Precision), FP32 otherwise; OpenBackend itself always starts in FP32.
func init() {
	tensor.RegisterDevice("cuda", func(index int) (tensor.Backend, error) {
		p, err := ParsePrecision(os.Getenv("SDGO_CUDA_PRECISION"))
		if err != nil {
			return nil, fmt.Errorf("SDGO_CUDA_PRECISION: %w", err)
		}
		b, err := OpenBackend(index)
		if err != nil {
			return nil, err
		}
		if err := b.SetPrecision(p); err != nil {
			b.Close()
			return nil, err
		}
		return b, nil
	})
}

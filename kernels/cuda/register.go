package cuda

import "github.com/sdgo/sdgo/tensor"

// The CUDA backend opens by name through tensor.OpenDevice ("cuda",
// "cuda:1") in any program that imports this package.
func init() {
	tensor.RegisterDevice("cuda", func(index int) (tensor.Backend, error) {
		b, err := OpenBackend(index)
		if err != nil {
			return nil, err
		}
		return b, nil
	})
}

package metal

import "github.com/sdgo/sdgo/tensor"

// The Metal backend opens by name through tensor.OpenDevice ("metal",
// "metal:1") in any program that imports this package; on systems other than
// macOS opening it fails with an error that says Metal needs macOS.
func init() {
	tensor.RegisterDevice("metal", func(index int) (tensor.Backend, error) {
		b, err := OpenBackend(index)
		if err != nil {
			return nil, err
		}
		return b, nil
	})
}

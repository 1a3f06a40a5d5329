package tensor

import "errors"

// otherDevice stands for a device other than the CPU: it keeps tensors in host
// memory through a CPU backend but names itself, and its storage, as another
// backend, so that operations mixing it with CPU tensors must fail with
// ErrBackend.
type otherDevice struct{ *CPU }

// OtherDevice is exported to the external tests (package tensor_test).
var OtherDevice = func() Backend { return &otherDevice{NewCPU()} }

func (d *otherDevice) Name() string { return "other device" }

func (d *otherDevice) Alloc(dt DType, n int) (Storage, error) {
	s, err := d.CPU.Alloc(dt, n)
	if err != nil {
		return nil, err
	}
	return otherStorage{s.(*CPUStorage), d}, nil
}

func (d *otherDevice) Free(s Storage) {
	if o, ok := s.(otherStorage); ok {
		d.CPU.Free(o.CPUStorage)
	}
}

func (d *otherDevice) Write(dst Storage, src any) error {
	if o, ok := dst.(otherStorage); ok {
		dst = o.CPUStorage
	}
	return d.CPU.Write(dst, src)
}

func (d *otherDevice) Fill(dst *Tensor, v float32) error {
	return errors.New("the other device runs no operations")
}

type otherStorage struct {
	*CPUStorage
	dev *otherDevice
}

func (s otherStorage) Backend() Backend { return s.dev }

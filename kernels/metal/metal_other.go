//go:build !darwin

package metal

import (
	"runtime"

	"github.com/sdgo/sdgo/tensor"
)

// notMacOS is the error Open returns on every system but macOS: "metal: Metal
// needs macOS (this is linux/amd64)", wrapping ErrNoDevice.
type notMacOS struct{}

func (notMacOS) Error() string {
	return "metal: Metal needs macOS (this is " + runtime.GOOS + "/" + runtime.GOARCH + ")"
}

func (notMacOS) Unwrap() error { return ErrNoDevice }

var errNotMacOS error = notMacOS{}

// Device is a Metal GPU; on this system there is none.
type Device struct{}

// Open fails: Metal needs macOS.
func Open(index int) (*Device, error) { return nil, errNotMacOS }

// Close does nothing.
func (d *Device) Close() error { return nil }

// Backend runs tensor operations on a Metal device; on this system none can be
// opened, and its methods are never reached.
type Backend struct {
	tensor.Backend
}

// OpenBackend fails: Metal needs macOS.
func OpenBackend(index int) (*Backend, error) { return nil, errNotMacOS }

// Close does nothing.
func (b *Backend) Close() error { return nil }

// Synchronize fails: Metal needs macOS.
func (b *Backend) Synchronize() error { return errNotMacOS }

// SetPrecision does nothing here.
func (b *Backend) SetPrecision(p Precision) {}

// Precision returns FP32.
func (b *Backend) Precision() Precision { return FP32 }

// FullPrecision does nothing here.
func (b *Backend) FullPrecision() (restore func()) { return func() {} }

// Device returns nil: there is no device.
func (b *Backend) Device() *Device { return nil }

// Name returns "metal (needs macOS)".
func (d *Device) Name() string { return "metal (needs macOS)" }

// Synchronize fails: Metal needs macOS.
func (d *Device) Synchronize() error { return errNotMacOS }

// NewBackend returns a backend that cannot run anything: there is no device
// here (Open fails), so it is never called with one.
func NewBackend(d *Device) *Backend { return &Backend{} }

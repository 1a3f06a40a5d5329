package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	// The CUDA backend registers itself as the "cuda" device; it loads the
	// NVIDIA driver only when a command asks for it.
	_ "github.com/sdgo/sdgo/kernels/cuda"
	"github.com/sdgo/sdgo/tensor"
)

// openDevice opens the backend a --device flag names.
func openDevice(name string) (tensor.Backend, error) {
	b, err := tensor.OpenDevice(name)
	if err != nil {
		return nil, fmt.Errorf("--device %s: %w", name, err)
	}
	return b, nil
}

// closeDevice releases a backend that holds a device.
func closeDevice(b tensor.Backend) {
	if c, ok := b.(io.Closer); ok {
		c.Close()
	}
}

// checkDevice refuses, as a usage error, a --device whose kind this build does
// not know; whether the device opens is known only when it is opened.
func checkDevice(name string) error {
	kind, _, _ := strings.Cut(name, ":")
	if known := tensor.Devices(); kind != "" && !slices.Contains(known, kind) {
		return fmt.Errorf("%w: --device %s: unknown device %q (known: %s)", errUsage, name, kind, strings.Join(known, ", "))
	}
	return nil
}

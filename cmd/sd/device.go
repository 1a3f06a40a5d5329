package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/sdgo/sdgo/internal/devprec"
	// The CUDA backend registers itself as the "cuda" device; it loads the
	// NVIDIA driver only when a command asks for it.
	"github.com/sdgo/sdgo/kernels/cuda"
	// The Metal backend registers itself as the "metal" device; on systems other
	// than macOS opening it says that Metal needs macOS.
	"github.com/sdgo/sdgo/kernels/metal"
	"github.com/sdgo/sdgo/tensor"
)

// precisionUsage is the help of the --precision flags.
const precisionUsage = "matrix products on a GPU: fp16 (FP32 accumulation; the default on cuda and metal), bf16 or tf32 (cuda), fp32 (the CPU computes in fp32)"

// openDevice opens the backend a --device flag names, in the precision a
// --precision flag names ("" for the device's default: FP16 products on
// CUDA, as the issue of record asks; FP32 on the CPU).
func openDevice(name, precision string) (tensor.Backend, error) {
	if err := checkDevice(name); err != nil {
		return nil, err
	}
	if err := checkPrecision(name, precision); err != nil {
		return nil, err
	}
	b, err := tensor.OpenDevice(name)
	if err != nil {
		return nil, fmt.Errorf("--device %s: %w", name, err)
	}
	if precision == "" {
		precision = "fp16"
	}
	// The CPU has no precision setting (checkPrecision allowed only fp32 there).
	if _, err = devprec.Set(b, precision); err != nil {
		closeDevice(b)
		return nil, fmt.Errorf("--precision %s: %w", precision, err)
	}
	return b, nil
}

// checkPrecision refuses, as a usage error, a --precision the device cannot
// use.
func checkPrecision(device, precision string) error {
	if precision == "" {
		return nil
	}
	kind, _, _ := strings.Cut(device, ":")
	if kind == "" || kind == "cpu" {
		if p := strings.ToLower(precision); p != "fp32" && p != "f32" && p != "float32" {
			return fmt.Errorf("%w: --precision %s: the cpu computes in fp32", errUsage, precision)
		}
		return nil
	}
	var err error
	if kind == "metal" {
		_, err = metal.ParsePrecision(precision)
	} else {
		_, err = cuda.ParsePrecision(precision)
	}
	if err != nil {
		return fmt.Errorf("%w: --precision: %v", errUsage, err)
	}
	return nil
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

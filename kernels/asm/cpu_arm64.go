//go:build arm64 && !noasm

package asm

import "github.com/klauspost/cpuid/v2"

// useNEON is read once at start-up. The generated arm64 kernels need Advanced SIMD
// (ASIMD) and its half-precision conversions (FCVTL, FCVTN): both are part of
// ARMv8-A, so of every processor Go runs on (its runtime uses ASIMD itself).
// cpuid learns the features from the operating system (HWCAP on Linux, sysctl on
// Darwin); where it learns nothing (other systems, an unreadable auxiliary vector)
// it does not report FP either, and the baseline is assumed. Only a system that
// reports FP but not ASIMD runs the Go code.
var useNEON = cpuid.CPU.Supports(cpuid.ASIMD) || !cpuid.CPU.Supports(cpuid.FP)

// useAVX2 is the amd64 kernels' switch (Features reads it): never on arm64.
const useAVX2 = false

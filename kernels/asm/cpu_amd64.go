//go:build amd64 && !noasm

package asm

import "github.com/klauspost/cpuid/v2"

// useAVX2 is read once at start-up: the generated kernels need AVX2, FMA and F16C.
var useAVX2 = cpuid.CPU.Supports(cpuid.AVX2, cpuid.FMA3, cpuid.F16C)

// useNEON is the arm64 kernels' switch (Features reads it): never on amd64.
const useNEON = false

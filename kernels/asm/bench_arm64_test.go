//go:build arm64 && !noasm

package asm

import (
	"math/rand/v2"
	"testing"
)

// arm64 benchmarks of the NEON kernels themselves, next to the Go references;
// the operator-level ones (BenchmarkSgemm, BenchmarkSgemmF16B, BenchmarkPeakFMA,
// BenchmarkExp, ...) run on arm64 as they are. The numbers only mean something
// on arm64 hardware: under qemu-aarch64 (make test-arm64) every instruction is
// emulated, and the ratios between kernels say nothing about a real core.

// BenchmarkMicroKernelNEON times one 6×16 tile over a full kc block, the inner
// loop of every GEMM, with float32 and with half-precision B.
func BenchmarkMicroKernelNEON(b *testing.B) {
	skipNoNEON(b)
	rng := rand.New(rand.NewPCG(1, 2))
	kc := gemmKC
	pa, pb := randF32(rng, kc*gemmMR), randF32(rng, kc*gemmNR)
	ph := randHalf(rng, kc*gemmNR, ElemF16)
	c := make([]float32, gemmMR*gemmNR)
	flops := 2 * float64(kc*gemmMR*gemmNR)
	b.Run("f32", func(b *testing.B) {
		for b.Loop() {
			kernelF32NEON(kc, &pa[0], &pb[0], &c[0], gemmNR)
		}
		reportGFLOPS(b, flops)
	})
	b.Run("f16b", func(b *testing.B) {
		for b.Loop() {
			kernelF16BNEON(kc, &pa[0], &ph[0], &c[0], gemmNR)
		}
		reportGFLOPS(b, flops)
	})
	b.Run("go", func(b *testing.B) {
		for b.Loop() {
			kernelF32Generic(kc, pa, pb, c, gemmNR)
		}
		reportGFLOPS(b, flops)
	})
}

// BenchmarkVecNEON times the cheap kernels (the transcendental ones and the
// conversions have benchmarks in vec_bench_test.go) on 4096 elements.
func BenchmarkVecNEON(b *testing.B) {
	skipNoNEON(b)
	rng := rand.New(rand.NewPCG(3, 4))
	x, y, dst := uniform(rng, vecBenchN, -4, 4), uniform(rng, vecBenchN, -4, 4), make([]float32, vecBenchN)
	run := func(name string, f func()) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(4 * vecBenchN)
			for b.Loop() {
				f()
			}
			reportElems(b, vecBenchN)
		})
	}
	run("Add/neon", func() { addNEON(dst, x, y) })
	run("Add/go", func() { addGeneric(dst, x, y) })
	run("Axpy/neon", func() { axpyNEON(0.5, x, dst) })
	run("Axpy/go", func() { axpyGeneric(0.5, x, dst) })
	run("Dot/neon", func() { dotNEON(x, y) })
	run("Dot/go", func() { dotGeneric(x, y) })
	run("SumSq/neon", func() { sumSqNEON(x) })
	run("SumSq/go", func() { sumSqGeneric(x) })
	run("Normalize/neon", func() { normalizeNEON(dst, x, y, x, 0.1, 2) })
	run("Normalize/go", func() { normalizeGeneric(dst, x, y, x, 0.1, 2) })
	run("ScaleShiftSiLU/neon", func() { scaleShiftSiLUNEON(dst, x, 1.5, 0.5) })
	run("ScaleShiftSiLU/go", func() { scaleShiftSiLUGeneric(dst, x, 1.5, 0.5) })
}

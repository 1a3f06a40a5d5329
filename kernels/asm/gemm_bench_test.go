package asm

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// threadCounts are the goroutine counts the benchmarks report: one core, and all.
func threadCounts() []int {
	if n := runtime.GOMAXPROCS(0); n > 1 {
		return []int{1, n}
	}
	return []int{1}
}

func reportGFLOPS(b *testing.B, flopsPerOp float64) {
	b.ReportMetric(flopsPerOp*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkSgemm times square float32 products C = A·B on one goroutine and on
// GOMAXPROCS goroutines.
func BenchmarkSgemm(b *testing.B) {
	for _, n := range []int{256, 512, 1024} {
		rng := rand.New(rand.NewPCG(1, uint64(n)))
		x, y, c := randF32(rng, n*n), randF32(rng, n*n), make([]float32, n*n)
		for _, threads := range threadCounts() {
			b.Run(fmt.Sprintf("%d/threads=%d", n, threads), func(b *testing.B) {
				for b.Loop() {
					Gemm(n, n, n, 1, Operand{F32: x, Stride: n}, Operand{F32: y, Stride: n}, 0, c, n, threads)
				}
				reportGFLOPS(b, 2*float64(n)*float64(n)*float64(n))
			})
		}
	}
}

// BenchmarkSgemmF16B times C = A·Bᵀ with B a half-precision weight stored [n, k],
// the shape of a Linear layer's product.
func BenchmarkSgemmF16B(b *testing.B) {
	const n = 1024
	rng := rand.New(rand.NewPCG(2, n))
	x, w, c := randF32(rng, n*n), randHalf(rng, n*n, ElemF16), make([]float32, n*n)
	for _, threads := range threadCounts() {
		b.Run(fmt.Sprintf("%d/threads=%d", n, threads), func(b *testing.B) {
			for b.Loop() {
				Gemm(n, n, n, 1, Operand{F32: x, Stride: n}, Operand{U16: w, Elem: ElemF16, Stride: n, Trans: true}, 0, c, n, threads)
			}
			reportGFLOPS(b, 2*float64(n)*float64(n)*float64(n))
		})
	}
}

// BenchmarkPeakFMA measures the processor's FMA throughput with a loop that touches
// no memory: the ceiling any SGEMM can reach, on one core and on GOMAXPROCS cores.
func BenchmarkPeakFMA(b *testing.B) {
	if fmaPeak(1) == 0 {
		b.Skip("no FMA kernel on this build or processor")
	}
	const iters = 1 << 16
	b.Run("threads=1", func(b *testing.B) {
		for b.Loop() {
			fmaPeak(iters)
		}
		reportGFLOPS(b, iters*fmaFlopsPerIter)
	})
	if n := runtime.GOMAXPROCS(0); n > 1 {
		// One loop per GOMAXPROCS goroutine; b.N counts loops over all of them.
		b.Run(fmt.Sprintf("threads=%d", n), func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					fmaPeak(iters)
				}
			})
			reportGFLOPS(b, iters*fmaFlopsPerIter)
		})
	}
}

package asm

import (
	"math/rand/v2"
	"testing"
)

// Vector routine benchmarks, through the exported functions (so the AVX2 kernels
// where the processor has them) and through the Go references ("go") for
// comparison. Throughput is reported as the bytes of input per second
// (b.SetBytes) and as elements per second.

const vecBenchN = 4096

func reportElems(b *testing.B, perOp int) {
	b.ReportMetric(float64(perOp)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
}

func benchUnary(b *testing.B, api, ref func(dst, src []float32), lo, hi float32) {
	rng := rand.New(rand.NewPCG(1, 2))
	src, dst := uniform(rng, vecBenchN, lo, hi), make([]float32, vecBenchN)
	for _, c := range []struct {
		name string
		f    func(dst, src []float32)
	}{{Features(), api}, {"go", ref}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(4 * vecBenchN)
			for b.Loop() {
				c.f(dst, src)
			}
			reportElems(b, vecBenchN)
		})
	}
}

func BenchmarkExp(b *testing.B)      { benchUnary(b, Exp, expGeneric, -20, 20) }
func BenchmarkSiLU(b *testing.B)     { benchUnary(b, SiLU, siluGeneric, -8, 8) }
func BenchmarkGELU(b *testing.B)     { benchUnary(b, GELU, geluGeneric, -8, 8) }
func BenchmarkGELUTanh(b *testing.B) { benchUnary(b, GELUTanh, geluTanhGeneric, -8, 8) }

// BenchmarkSoftmax times one attention row of 4096 scores, in place.
func BenchmarkSoftmax(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	row := uniform(rng, vecBenchN, -10, 10)
	buf := make([]float32, vecBenchN)
	for _, c := range []struct {
		name string
		f    func([]float32)
	}{{Features(), Softmax}, {"go", softmaxGeneric}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(4 * vecBenchN)
			for b.Loop() {
				copy(buf, row) // keeps the input the same; small next to the softmax
				c.f(buf)
			}
			reportElems(b, vecBenchN)
		})
	}
}

// BenchmarkF16ToF32 widens 64Ki half-precision values (a weight tile).
func BenchmarkF16ToF32(b *testing.B) {
	const n = 64 << 10
	rng := rand.New(rand.NewPCG(5, 6))
	src, dst := make([]uint16, n), make([]float32, n)
	for i := range src {
		src[i] = uint16(rng.Uint32()) & 0xbfff // finite values
	}
	for _, c := range []struct {
		name string
		f    func([]float32, []uint16)
	}{{Features(), F16ToF32}, {"go", f16ToF32Generic}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(2 * n)
			for b.Loop() {
				c.f(dst, src)
			}
			reportElems(b, n)
		})
	}
}

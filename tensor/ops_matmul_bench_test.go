package tensor

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdgo/sdgo/tensor/tensortest"
)

// The matrix-product benchmarks at Stable Diffusion's sizes. Each reports GFLOP/s
// (multiply and add counted as two) and ms/op. They are large: run them with
// -benchtime 1x or 3x on a shared machine.

func mmBenchInput(b *testing.B, c *CPU, dt DType, shape ...int) *Tensor {
	b.Helper()
	t, _ := mmInput(b, c, dt, tensortest.Rand(rand.New(rand.NewPCG(1, uint64(len(shape)))), tensortest.Numel(shape)), shape...)
	return t
}

func mmReport(b *testing.B, flops float64) {
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(flops/sec/1e9, "GFLOP/s")
	b.ReportMetric(sec*1e3, "ms/op")
}

func BenchmarkConv2d(b *testing.B) {
	c := NewCPU()
	for _, bc := range []struct {
		name          string
		n, ch, h, w   int
		o, k, padding int
	}{
		{"sd15_320x64x64_3x3", 1, 320, 64, 64, 320, 3, 1},
		{"sd15_320x64x64_1x1", 1, 320, 64, 64, 320, 1, 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			x := mmBenchInput(b, c, F32, bc.n, bc.ch, bc.h, bc.w)
			w := mmBenchInput(b, c, F16, bc.o, bc.ch, bc.k, bc.k)
			bias := mmBenchInput(b, c, F16, bc.o)
			p := Conv2dParams{Padding: bc.padding}
			b.ResetTimer()
			for b.Loop() {
				out, err := Conv2d(x, w, bias, p)
				require.NoError(b, err)
				out.Release()
			}
			mmReport(b, 2*float64(bc.n*bc.o*bc.ch*bc.k*bc.k*bc.h*bc.w))
		})
	}
}

func BenchmarkAttention(b *testing.B) {
	c := NewCPU()
	for _, bc := range []struct {
		name         string
		batch, heads int
		lq, lk, d    int
		mode         AttentionMode
	}{
		{"sd15_4096x4096_8x40", 1, 8, 4096, 4096, 40, AttentionFlash},
		{"sd15_4096x4096_8x40_sliced", 1, 8, 4096, 4096, 40, AttentionSliced},
		{"sd15_4096x77_8x40", 1, 8, 4096, 77, 40, AttentionFlash},
	} {
		b.Run(bc.name, func(b *testing.B) {
			q := mmBenchInput(b, c, F32, bc.batch, bc.heads, bc.lq, bc.d)
			k := mmBenchInput(b, c, F32, bc.batch, bc.heads, bc.lk, bc.d)
			v := mmBenchInput(b, c, F32, bc.batch, bc.heads, bc.lk, bc.d)
			p := AttentionParams{Mode: bc.mode}
			b.ResetTimer()
			for b.Loop() {
				out, err := Attention(q, k, v, p)
				require.NoError(b, err)
				out.Release()
			}
			mmReport(b, 4*float64(bc.batch*bc.heads*bc.lq*bc.lk*bc.d))
		})
	}
}

func BenchmarkLinear(b *testing.B) {
	c := NewCPU()
	for _, bc := range []struct {
		name          string
		rows, in, out int
	}{
		{"sd15_4096x320x320_f16", 4096, 320, 320},
		{"sdxl_1024x640x640_f16", 1024, 640, 640},
	} {
		b.Run(bc.name, func(b *testing.B) {
			x := mmBenchInput(b, c, F32, bc.rows, bc.in)
			w := mmBenchInput(b, c, F16, bc.out, bc.in)
			bias := mmBenchInput(b, c, F16, bc.out)
			b.ResetTimer()
			for b.Loop() {
				out, err := Linear(x, w, bias)
				require.NoError(b, err)
				out.Release()
			}
			mmReport(b, 2*float64(bc.rows*bc.in*bc.out))
		})
	}
}

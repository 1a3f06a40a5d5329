package tensor_test

import (
	"math/rand/v2"
	"testing"

	"github.com/sdgo/sdgo/tensor"
	"github.com/sdgo/sdgo/tensor/tensortest"
)

// Benchmarks of the memory-bound operations at Stable Diffusion sizes. SetBytes
// counts one read of the input and one write of the result, so the MB/s column
// is the memory bandwidth the operation reaches; ms/op is reported as well.

func benchInput(b *testing.B, cpu *tensor.CPU, shape ...int) *tensor.Tensor {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 1))
	x, err := tensor.FromFloat32(cpu, tensortest.Rand(rng, tensortest.Numel(shape)), shape...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(x.Release)
	return x
}

// benchOp runs f b.N times, releasing each result, and reports bytes as moved.
func benchOp(b *testing.B, bytes int, f func() (*tensor.Tensor, error)) {
	b.Helper()
	b.SetBytes(int64(bytes))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		y, err := f()
		if err != nil {
			b.Fatal(err)
		}
		y.Release()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e6/float64(b.N), "ms/op")
}

func BenchmarkGroupNorm(b *testing.B) {
	cpu := tensor.NewCPU()
	x := benchInput(b, cpu, 1, 320, 64, 64)
	g, beta := benchInput(b, cpu, 320), benchInput(b, cpu, 320)
	b.Run("plain", func(b *testing.B) {
		benchOp(b, 8*x.Numel(), func() (*tensor.Tensor, error) { return tensor.GroupNorm(x, g, beta, 32, 1e-5) })
	})
	b.Run("silu", func(b *testing.B) {
		benchOp(b, 8*x.Numel(), func() (*tensor.Tensor, error) { return tensor.GroupNormSiLU(x, g, beta, 32, 1e-5) })
	})
}

func BenchmarkLayerNorm(b *testing.B) {
	cpu := tensor.NewCPU()
	x := benchInput(b, cpu, 4096, 320)
	g, beta := benchInput(b, cpu, 320), benchInput(b, cpu, 320)
	benchOp(b, 8*x.Numel(), func() (*tensor.Tensor, error) { return tensor.LayerNorm(x, g, beta, 1e-5) })
}

func BenchmarkSoftmax(b *testing.B) {
	cpu := tensor.NewCPU()
	x := benchInput(b, cpu, 1024, 4096)
	benchOp(b, 8*x.Numel(), func() (*tensor.Tensor, error) { return tensor.Softmax(x) })
}

func BenchmarkAddBroadcast(b *testing.B) {
	cpu := tensor.NewCPU()
	x := benchInput(b, cpu, 2, 320, 64, 64)
	bias := benchInput(b, cpu, 1, 320, 1, 1)
	benchOp(b, 8*x.Numel(), func() (*tensor.Tensor, error) { return tensor.Add(x, bias) })
}

func BenchmarkCopyTranspose(b *testing.B) {
	cpu := tensor.NewCPU()
	x := benchInput(b, cpu, 2, 320, 4096) // NCHW with HW flattened, to N(HW)C
	xt, err := x.Transpose(1, 2)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(xt.Release)
	benchOp(b, 8*x.Numel(), func() (*tensor.Tensor, error) { return xt.Contiguous() })
}

func BenchmarkToF16(b *testing.B) {
	cpu := tensor.NewCPU()
	x := benchInput(b, cpu, 1280, 1280)
	benchOp(b, 6*x.Numel(), func() (*tensor.Tensor, error) { return x.To(tensor.F16) })
}

func BenchmarkCopyTransposeBack(b *testing.B) {
	cpu := tensor.NewCPU()
	x := benchInput(b, cpu, 2, 4096, 320) // N(HW)C to NCHW
	xt, err := x.Transpose(1, 2)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(xt.Release)
	benchOp(b, 8*x.Numel(), func() (*tensor.Tensor, error) { return xt.Contiguous() })
}

package cuda

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/sdgo/sdgo/tensor"
)

// The tests in this file need a GPU (or the emulator, with the host model of
// cuBLASLt): MatMul with a bias in TF32, FP16 and BF16 modes, which runs
// through cuBLASLt with the bias in the epilogue (cublaslt.go), against the
// CPU backend, and against the same products with SDGO_CUBLASLT=off.

// ltUnit is the unit roundoff of mode p's operands (see mixedTol).
func ltUnit(p Precision) float64 {
	if p == BF16 {
		return math.Ldexp(1, -8)
	}
	return math.Ldexp(1, -11)
}

// ltCase is one product: x [nb or 1, m, k] times the weight w [nw, n, k] read
// transposed (a Linear's [out,in]), plus the bias.
type ltCase struct {
	nb, xb, wb int // batch, x's batch (1: shared), w's batch (1: shared)
	m, n, k    int
	wdt        tensor.DType // the weight's dtype
	bias       string       // "f32", "f16" or "strided" (F32, stride 2)
}

func (c ltCase) String() string {
	return fmt.Sprintf("nb%d(x%d,w%d) m%d n%d k%d w%v bias-%s", c.nb, c.xb, c.wb, c.m, c.n, c.k, c.wdt, c.bias)
}

// ltOperands makes the case's operands on the CPU and the GPU.
type ltOperands struct{ x, w, bias *tensor.Tensor }

func ltMake(t *testing.T, g *Backend, c ltCase, seed uint64) (cp, gp ltOperands) {
	t.Helper()
	m := mustT(t)
	cp.x, gp.x = randPair(t, g, seed, c.xb, c.m, c.k)
	cw, gw := randPair(t, g, seed+1, c.wb, c.n, c.k)
	if c.wdt != tensor.F32 {
		cw, gw = to(t, c.wdt, cw, gw)
	}
	cp.w, gp.w = m(cw.Transpose(1, 2)), m(gw.Transpose(1, 2)) // [wb, k, n], transposed
	switch c.bias {
	case "strided":
		cb, gb := randPair(t, g, seed+2, 2*c.n)
		cp.bias, gp.bias = m(cb.Slice(0, 0, 2*c.n, 2)), m(gb.Slice(0, 0, 2*c.n, 2))
	case "f16":
		cp.bias, gp.bias = randPair(t, g, seed+2, c.n)
		cp.bias, gp.bias = to(t, tensor.F16, cp.bias, gp.bias)
	default:
		cp.bias, gp.bias = randPair(t, g, seed+2, c.n)
	}
	return cp, gp
}

// ltRun runs MatMul(x, w) + bias with alpha on backend b into a new tensor.
func ltRun(t *testing.T, b tensor.Backend, o ltOperands, nb, m, n int, alpha float32) *tensor.Tensor {
	t.Helper()
	dst := mustT(t)(tensor.New(b, tensor.F32, nb, m, n))
	if err := b.MatMul(dst, o.x, o.w, o.bias, alpha); err != nil {
		t.Fatal(err)
	}
	return dst
}

// ltCases are awkward shapes: m 1, 7, 77, 4097; n 1, 5, 320, 1280; k 1, 3, 640;
// batches with x or the weight shared; F16 and F32 weights; F32, F16 and
// strided biases.
func ltCases() []ltCase {
	var cs []ltCase
	for i, s := range [][3]int{
		{1, 1, 1}, {1, 5, 3}, {7, 1, 640}, {7, 320, 640}, {77, 5, 640}, {77, 1280, 3},
		{77, 1280, 640}, {4097, 320, 640}, {1, 1280, 640}, {7, 5, 1},
	} {
		wdt := []tensor.DType{tensor.F16, tensor.F32}[i%2]
		bias := []string{"f32", "f16", "strided"}[i%3]
		cs = append(cs, ltCase{nb: 1, xb: 1, wb: 1, m: s[0], n: s[1], k: s[2], wdt: wdt, bias: bias})
	}
	if os.Getenv("SDGO_EMU_LIB") == "" {
		cs = append(cs, ltCase{nb: 1, xb: 1, wb: 1, m: 4097, n: 1280, k: 640, wdt: tensor.F16, bias: "f16"})
	}
	// Batched: x batched with a shared weight (B), and the other way round.
	cs = append(cs,
		ltCase{nb: 2, xb: 2, wb: 1, m: 77, n: 320, k: 640, wdt: tensor.F16, bias: "f32"},
		ltCase{nb: 3, xb: 3, wb: 1, m: 7, n: 5, k: 3, wdt: tensor.F32, bias: "strided"},
		ltCase{nb: 2, xb: 1, wb: 2, m: 77, n: 320, k: 640, wdt: tensor.F16, bias: "f16"},
		ltCase{nb: 2, xb: 2, wb: 2, m: 7, n: 1280, k: 640, wdt: tensor.F32, bias: "f32"},
	)
	return cs
}

// TestGPUMatMulBiasLt compares MatMul with a bias in TF32, FP16 and BF16 modes
// (cuBLASLt, bias in the epilogue) with the CPU backend within mixedTol, and
// with the same products with SDGO_CUBLASLT=off (copy of the bias +
// cublasGemmEx) within u, the unit roundoff: both round the same operands, and
// differ only in the order of the FP32 sums. It checks, through the profile,
// that the products took cuBLASLt when cuBLAS is loaded.
func TestGPUMatMulBiasLt(t *testing.T) {
	g := gpu(t)
	t.Setenv("SDGO_CUBLASLT", "")
	cases := ltCases()
	forModes(t, g, mixedModes, func(t *testing.T, p Precision) {
		for i, c := range cases {
			cp, gp := ltMake(t, g, c, uint64(700+10*i))
			alpha := float32(1)
			if i%4 == 3 {
				alpha = 0.5
			}
			want := ltRun(t, cpu, cp, c.nb, c.m, c.n, alpha)

			g.ResetProfile()
			g.SetProfiling(true)
			got := ltRun(t, g, gp, c.nb, c.m, c.n, alpha)
			g.SetProfiling(false)
			if g.dev.blas != nil {
				path := ""
				for _, o := range g.Profile() {
					path += o.Op + ";"
				}
				if !strings.Contains(path, "MatMul cublasLt") {
					t.Errorf("%v: did not run on cuBLASLt (%s; %v)", c, path, g.dev.ltErr)
				}
			}
			checkMixed(t, c.String(), got, want, mixedTol(p, false))

			os.Setenv("SDGO_CUBLASLT", "off")
			off := ltRun(t, g, gp, c.nb, c.m, c.n, alpha)
			os.Setenv("SDGO_CUBLASLT", "")
			if r := maxRel(t, got, off); r > ltUnit(p) {
				t.Errorf("%v: cuBLASLt and cublasGemmEx differ by %.3g of the largest output, want ≤ %.3g", c, r, ltUnit(p))
			} else {
				t.Logf("%v: cuBLASLt vs cublasGemmEx: %.3g", c, r)
			}
			for _, x := range []*tensor.Tensor{want, got, off} {
				x.Release()
			}
		}
	})
	if g.dev.lt != nil {
		ok := 0
		for _, p := range g.dev.lt.plans {
			if p.ok {
				ok++
			}
		}
		t.Logf("%s: %d plans (%d usable), %d heuristic calls", g.dev.lt.path, len(g.dev.lt.plans), ok, g.dev.lt.heuristics)
	} else if g.dev.blas != nil {
		t.Errorf("cuBLAS is loaded but cuBLASLt is not: %v", g.dev.ltErr)
	}
}

// TestGPULinearBiasLt runs tensor.Linear (the weight [out,in] read transposed)
// with F16 and F32 weights and biases in the mixed modes, against the CPU.
func TestGPULinearBiasLt(t *testing.T) {
	g := gpu(t)
	t.Setenv("SDGO_CUBLASLT", "")
	forModes(t, g, mixedModes, func(t *testing.T, p Precision) {
		m := mustT(t)
		for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
			cx, dx := randPair(t, g, 780, 2, 77, 640)
			cw, dw := randPair(t, g, 781, 1280, 640)
			cb, db := randPair(t, g, 782, 1280)
			cw, dw = to(t, dt, cw, dw)
			cb, db = to(t, dt, cb, db)
			checkMixed(t, "Linear "+dt.String(), m(tensor.Linear(dx, dw, db)), m(tensor.Linear(cx, cw, cb)), mixedTol(p, false))
		}
	})
}

// TestGPUMatMulBiasFP32 checks that FP32 mode does not use cuBLASLt: the
// result is bit for bit the same with SDGO_CUBLASLT=off.
func TestGPUMatMulBiasFP32(t *testing.T) {
	g := gpu(t)
	t.Setenv("SDGO_CUBLASLT", "")
	c := ltCase{nb: 1, xb: 1, wb: 1, m: 77, n: 320, k: 640, wdt: tensor.F16, bias: "f32"}
	_, gp := ltMake(t, g, c, 790)
	got := ltRun(t, g, gp, 1, c.m, c.n, 1)
	os.Setenv("SDGO_CUBLASLT", "off")
	off := ltRun(t, g, gp, 1, c.m, c.n, 1)
	os.Setenv("SDGO_CUBLASLT", "")
	if r := maxRel(t, got, off); r != 0 {
		t.Errorf("FP32 mode changed with SDGO_CUBLASLT=off: %.3g", r)
	}
}

// BenchmarkGPULinearBias times SDXL's Linear layers, F32 activations times
// F16 weights [out,in] plus an F16 bias, in TF32, FP16 and BF16 modes, with
// cuBLASLt (lt) and without (off: the bias copied into the output, then
// cublasGemmEx with beta = 1).
func BenchmarkGPULinearBias(b *testing.B) {
	g, err := gpuBackend()
	if err != nil {
		b.Skip(err)
	}
	defer g.SetPrecision(FP32)
	for _, s := range []struct{ m, in, out int }{{8192, 640, 640}, {8192, 640, 5120}, {2048, 1280, 1280}} {
		x := randT(b, g, s.m, s.in)
		w := zeros(b, g, tensor.F16, s.out, s.in)
		bias := zeros(b, g, tensor.F16, s.out)
		flops := 2 * float64(s.m) * float64(s.in) * float64(s.out)
		for _, p := range mixedModes {
			for _, path := range []string{"lt", "off"} {
				b.Run(fmt.Sprintf("%dx%dx%d/%v/%s", s.m, s.in, s.out, p, path), func(b *testing.B) {
					if err := g.SetPrecision(p); err != nil {
						b.Fatal(err)
					}
					if path == "off" {
						b.Setenv("SDGO_CUBLASLT", "off")
					} else {
						b.Setenv("SDGO_CUBLASLT", "")
					}
					call := func() {
						y, err := tensor.Linear(x, w, bias)
						if err != nil {
							b.Fatal(err)
						}
						y.Release()
					}
					// Warm up (the plan, the workspace), then time b.N
					// products queued back to back, up to the last one's end.
					call()
					if err := g.Synchronize(); err != nil {
						b.Fatal(err)
					}
					b.ResetTimer()
					for range b.N {
						call()
					}
					if err := g.Synchronize(); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e12, "TFLOP/s")
					b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/op")
				})
			}
		}
		x.Release()
		w.Release()
		bias.Release()
	}
}

package cuda

import (
	"fmt"
	"os"
	"testing"

	"github.com/sdgo/sdgo/tensor"
)

// The tensor-core flash attention (flash_attn_tc_*, FP16 and BF16 modes)
// against the CPU backend's FP32 attention on the same F32 data (or on the
// same F16/BF16-rounded data for F16/BF16 inputs), with precision_gpu_test.go's
// bound: the largest error at most mixedTol(p, true) = 8u of the largest output
// (3.9e-3 for FP16, 3.1e-2 for BF16). The kernel rounds q, k, v and the
// probabilities P to the mode's dtype, as attnMixed does, and accumulates in
// FP32 (see mixedTol for why the bound does not grow with the number of keys).
// The cases cover one query and one key, odd tails of queries (17, 77, 130)
// and keys (77, 129) against the blocks of 128 (d160: 64) query rows and the
// tiles of 64 (d80, d160: 32) keys, head dimensions from 8 to 160 on every
// variant (d48, d64, d80, d160) with Dv != D, causal masks with Lq != Lk,
// several batch items and heads, strided [B,L,H,D] views (one fused q|k|v
// projection among them), F16/BF16 inputs, and an output written into a
// [B,L,H,Dv] buffer. The operands reach the kernel 16-byte aligned (whole-chunk
// cp.async: contiguous F16/BF16 of the mode's dtype with D % 8 == 0, the fused
// projection, and every converted copy) and not (scalar loads: D = 65, and the
// [B,L,H,D+3] views of the mode's dtype).

type flashTCCase struct {
	b, h, lq, lk, d, dv int
	causal              bool
	scale               float32
}

func (c flashTCCase) params() tensor.AttentionParams {
	return tensor.AttentionParams{Mode: tensor.AttentionFlash, Causal: c.causal, Scale: c.scale}
}

// big says whether the CPU reference or the emulator would take long.
func (c flashTCCase) big() bool { return c.b*c.h*c.lq*c.lk > 1<<20 }

var flashTCCases = []flashTCCase{
	{b: 1, h: 1, lq: 1, lk: 1, d: 8, dv: 8},
	{b: 2, h: 3, lq: 17, lk: 77, d: 40, dv: 40},
	{b: 1, h: 2, lq: 77, lk: 77, d: 64, dv: 64, causal: true}, // CLIP
	{b: 2, h: 2, lq: 130, lk: 129, d: 80, dv: 80},
	{b: 1, h: 2, lq: 130, lk: 77, d: 160, dv: 160},
	{b: 2, h: 1, lq: 17, lk: 129, d: 24, dv: 40},
	{b: 1, h: 1, lq: 33, lk: 1, d: 64, dv: 24},
	{b: 2, h: 2, lq: 77, lk: 129, d: 40, dv: 64, causal: true},
	{b: 1, h: 3, lq: 130, lk: 77, d: 160, dv: 8, causal: true},
	{b: 1, h: 2, lq: 1, lk: 129, d: 160, dv: 80},
	{b: 1, h: 1, lq: 65, lk: 65, d: 65, dv: 17, scale: 0.3},
	{b: 1, h: 2, lq: 4096, lk: 77, d: 40, dv: 40},
	{b: 1, h: 1, lq: 4100, lk: 129, d: 64, dv: 64},
	{b: 1, h: 2, lq: 1024, lk: 1024, d: 40, dv: 40},
	{b: 1, h: 1, lq: 300, lk: 300, d: 160, dv: 160, causal: true},
}

// blhd returns a [B,H,L,D] view into a random [B,L,H,D+3] buffer of dtype dt
// on the CPU and on the GPU (the same values), as the model's views of a
// projection are.
func blhd(t *testing.T, g *Backend, seed uint64, dt tensor.DType, b, h, l, d int) (c, x *tensor.Tensor) {
	m := mustT(t)
	cb, db := randPair(t, g, seed, b, l, h, d+3)
	cb, db = to(t, dt, cb, db)
	view := func(y *tensor.Tensor) *tensor.Tensor { return m(m(y.Narrow(3, 0, d)).Permute(0, 2, 1, 3)) }
	return view(cb), view(db)
}

// fusedQKV returns q, k and v [B,H,L,D] as views of one [B,L,3·H·D] buffer
// (a fused projection) on the CPU and on the GPU.
func fusedQKV(t *testing.T, g *Backend, seed uint64, b, h, l, d int) (c, x [3]*tensor.Tensor) {
	m := mustT(t)
	cb, db := randPair(t, g, seed, b, l, 3*h*d)
	for i := range 3 {
		view := func(y *tensor.Tensor) *tensor.Tensor {
			return m(m(m(y.Narrow(2, i*h*d, h*d)).Reshape(b, l, h, d)).Permute(0, 2, 1, 3))
		}
		c[i], x[i] = view(cb), view(db)
	}
	return c, x
}

func TestGPUFlashTC(t *testing.T) {
	g := gpu(t)
	if g.dev.blas == nil {
		t.Skipf("cuBLAS not loaded (%s): FP16 and BF16 modes run as FP32", g.dev.BLAS())
	}
	t.Setenv(attentionEnv, "")
	emu := os.Getenv("SDGO_EMU_LIB") != ""
	forModes(t, g, []Precision{FP16, BF16}, func(t *testing.T, p Precision) {
		m := mustT(t)
		tl := mixedTol(p, true)
		dt := tensor.F16
		if p == BF16 {
			dt = tensor.BF16
		}
		for i, c := range flashTCCases {
			if emu && c.big() {
				continue // minutes in the emulator
			}
			name := fmt.Sprintf("%+v", c)
			if k, ok := flashTCKernel("", dt, c.b, c.h, c.lq, c.d, c.dv); !ok {
				t.Fatalf("%s: not a tensor-core shape", name)
			} else {
				t.Logf("%s: %s", name, k.name)
			}
			seed := uint64(500 + 10*i)
			cq, dq := randPair(t, g, seed, c.b, c.h, c.lq, c.d)
			ck, dk := randPair(t, g, seed+1, c.b, c.h, c.lk, c.d)
			cv, dv := randPair(t, g, seed+2, c.b, c.h, c.lk, c.dv)
			want := m(tensor.Attention(cq, ck, cv, c.params()))
			checkMixed(t, name+" F32", m(tensor.Attention(dq, dk, dv, c.params())), want, tl)
			// Sliced mode takes the same kernel.
			sl := c.params()
			sl.Mode, sl.BlockQ = tensor.AttentionSliced, 16
			checkMixed(t, name+" sliced", m(tensor.Attention(dq, dk, dv, sl)), want, tl)
			// Into a [B,Lq,H,Dv+1] buffer.
			buf := m(tensor.Zeros(g, tensor.F32, c.b, c.lq, c.h, c.dv+1))
			dst := m(m(buf.Narrow(3, 0, c.dv)).Permute(0, 2, 1, 3))
			if err := tensor.AttentionInto(dst, dq, dk, dv, c.params()); err != nil {
				t.Fatal(err)
			}
			checkMixed(t, name+" into BLHD", m(dst.Contiguous()), want, tl)
			if c.big() {
				continue
			}
			// Operands stored as F16 or BF16, all three or k and v only (q F32).
			for _, in := range []tensor.DType{tensor.F16, tensor.BF16} {
				cqh, dqh := to(t, in, cq, dq)
				ckh, dkh := to(t, in, ck, dk)
				cvh, dvh := to(t, in, cv, dv)
				checkMixed(t, name+" all "+in.String(), m(tensor.Attention(dqh, dkh, dvh, c.params())),
					m(tensor.Attention(cqh, ckh, cvh, c.params())), tl)
				checkMixed(t, name+" kv "+in.String(), m(tensor.Attention(dq, dkh, dvh, c.params())),
					m(tensor.Attention(cq, ckh, cvh, c.params())), tl)
			}
			// Strided [B,L,H,D] views, of F32, F16 and BF16 buffers.
			for j, in := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
				s := seed + 3 + uint64(3*j)
				cq, dq := blhd(t, g, s, in, c.b, c.h, c.lq, c.d)
				ck, dk := blhd(t, g, s+1, in, c.b, c.h, c.lk, c.d)
				cv, dv := blhd(t, g, s+2, tensor.F32, c.b, c.h, c.lk, c.dv)
				checkMixed(t, name+" BLHD "+in.String(), m(tensor.Attention(dq, dk, dv, c.params())),
					m(tensor.Attention(cq, ck, cv, c.params())), tl)
			}
			// q, k and v from one fused projection (self-attention).
			if c.lq == c.lk && c.d == c.dv {
				cs, ds := fusedQKV(t, g, seed+20, c.b, c.h, c.lq, c.d)
				checkMixed(t, name+" fused qkv", m(tensor.Attention(ds[0], ds[1], ds[2], c.params())),
					m(tensor.Attention(cs[0], cs[1], cs[2], c.params())), tl)
			}
		}
	})
}

// TestGPUFlashTCMatchesGemm compares the tensor-core kernel with attnMixed
// (SDGO_CUDA_ATTENTION=gemm) on the same GPU inputs. Both round q, k, v and P
// to the mode's dtype and accumulate in FP32; they differ in where P is
// rounded (relative to the running maximum here, the row's maximum there) and
// in the order of the sums, so they agree within the bound that each meets
// against FP32, 8u of the largest output.
func TestGPUFlashTCMatchesGemm(t *testing.T) {
	g := gpu(t)
	if g.dev.blas == nil {
		t.Skipf("cuBLAS not loaded (%s): FP16 and BF16 modes run as FP32", g.dev.BLAS())
	}
	emu := os.Getenv("SDGO_EMU_LIB") != ""
	forModes(t, g, []Precision{FP16, BF16}, func(t *testing.T, p Precision) {
		m := mustT(t)
		tl := mixedTol(p, true)
		for i, c := range flashTCCases {
			if emu && c.big() {
				continue
			}
			seed := uint64(700 + 10*i)
			_, dq := blhd(t, g, seed, tensor.F32, c.b, c.h, c.lq, c.d)
			_, dk := blhd(t, g, seed+1, tensor.F16, c.b, c.h, c.lk, c.d)
			_, dv := randPair(t, g, seed+2, c.b, c.h, c.lk, c.dv)
			for _, pp := range []tensor.AttentionParams{c.params(), {Mode: tensor.AttentionSliced, BlockQ: 7, Causal: c.causal, Scale: c.scale}} {
				t.Setenv(attentionEnv, "gemm")
				ref := m(tensor.Attention(dq, dk, dv, pp))
				t.Setenv(attentionEnv, "")
				got := m(tensor.Attention(dq, dk, dv, pp))
				checkMixed(t, fmt.Sprintf("%+v %v vs gemm", c, pp.Mode), got, ref, tl)
			}
		}
	})
}

// BenchmarkGPUFlashTC times attention in FP16 and BF16 modes on the
// tensor-core kernel ("flash") and on attnMixed ("gemm"), F32 [B,H,L,D]
// inputs as the model gives them, with CUDA events: ms per call and
// TFLOP/s counting 4·B·H·Lq·Lk·D. Use -benchtime=20x or so.
func BenchmarkGPUFlashTC(b *testing.B) {
	g, err := gpuBackend()
	if err != nil {
		b.Skipf("no CUDA GPU: %v", err)
	}
	if os.Getenv("SDGO_EMU_LIB") != "" {
		b.Skip("emulated")
	}
	if g.dev.blas == nil {
		b.Skipf("cuBLAS not loaded (%s)", g.dev.BLAS())
	}
	defer g.SetPrecision(FP32)
	for _, s := range []struct {
		name              string
		nb, nh, lq, lk, d int
	}{
		{"2x8x4096x40", 2, 8, 4096, 4096, 40},
		{"2x8x4096x40_k77", 2, 8, 4096, 77, 40},
		{"2x10x4096x64", 2, 10, 4096, 4096, 64},
		{"2x20x1024x64", 2, 20, 1024, 1024, 64},
		{"2x8x1024x80", 2, 8, 1024, 1024, 80},
		{"2x8x256x160", 2, 8, 256, 256, 160},
	} {
		mk := func(seed uint64, l int) *tensor.Tensor {
			x, err := tensor.FromFloat32(g, randData(s.nb*s.nh*l*s.d, seed, -2, 2), s.nb, s.nh, l, s.d)
			if err != nil {
				b.Fatal(err)
			}
			return x
		}
		q, k, v := mk(1, s.lq), mk(2, s.lk), mk(3, s.lk)
		dst, err := tensor.Zeros(g, tensor.F32, s.nb, s.nh, s.lq, s.d)
		if err != nil {
			b.Fatal(err)
		}
		flops := 4 * float64(s.nb*s.nh) * float64(s.lq) * float64(s.lk) * float64(s.d)
		for _, p := range []Precision{FP16, BF16} {
			for _, path := range []string{"flash", "gemm"} {
				b.Run(p.String()+"/"+s.name+"/"+path, func(b *testing.B) {
					b.Setenv(attentionEnv, path)
					if err := g.SetPrecision(p); err != nil {
						b.Fatal(err)
					}
					run := func() {
						if err := tensor.AttentionInto(dst, q, k, v, tensor.AttentionParams{}); err != nil {
							b.Fatal(err)
						}
					}
					run() // load the kernels, warm the allocator
					if err := g.Synchronize(); err != nil {
						b.Fatal(err)
					}
					b.ResetTimer()
					tm, err := g.Device().StartTimer()
					if err != nil {
						b.Fatal(err)
					}
					for range b.N {
						run()
					}
					ms, err := tm.Stop()
					if err != nil {
						b.Fatal(err)
					}
					per := float64(ms) / float64(b.N)
					b.ReportMetric(per, "ms/call")
					b.ReportMetric(flops/per/1e9, "TFLOP/s")
				})
			}
		}
	}
}

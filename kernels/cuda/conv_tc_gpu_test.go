package cuda

import (
	"fmt"
	"os"
	"testing"

	"github.com/sdgo/sdgo/tensor"
)

// The tests of the tensor-core implicit-GEMM convolution (conv.cu, convTC) in
// FP16 and BF16 modes. They need a GPU with cuBLAS (or the emulator) and skip
// otherwise.
//
// Bounds: against the CPU backend's FP32 result on the same data (the weight
// rounded to its stored dtype, as the GPU reads it) the error relative to the
// largest output must stay under mixedTol (4u, see precision_gpu_test.go),
// like the im2col path. The two paths round the same operands the same way
// (round to nearest even; the weight by the same conversion kernel) and
// both accumulate in FP32, products of F16 or BF16 values being exact in FP32,
// so they differ only by the FP32 summation order (and the tensor cores'
// internal rounding): errors of order 2⁻²⁴·K·rms(term), ~1e-6 of the largest
// output even for K = 11520; they must agree within u (mixedTol/4: 4.9e-4 for
// F16, 3.9e-3 for BF16), a wide margin that still catches any wrong element.

// convTCCase is a convolution of the tests.
type convTCCase struct {
	x, w []int
	p    tensor.Conv2dParams
}

var convTCCases = []convTCCase{
	{[]int{1, 1, 1, 1}, []int{1, 1, 1, 1}, tensor.Conv2dParams{}},
	{[]int{2, 3, 7, 7}, []int{5, 3, 3, 3}, tensor.Conv2dParams{Padding: 1}},
	{[]int{1, 4, 64, 64}, []int{64, 4, 3, 3}, tensor.Conv2dParams{Padding: 1}},               // UNet conv_in, K = 36
	{[]int{3, 9, 31, 17}, []int{130, 9, 3, 3}, tensor.Conv2dParams{Padding: 1}},              // inpainting conv_in, O tail
	{[]int{2, 33, 31, 17}, []int{130, 33, 3, 3}, tensor.Conv2dParams{Stride: 2, Padding: 1}}, // K = 297
	{[]int{1, 33, 7, 7}, []int{5, 33, 1, 1}, tensor.Conv2dParams{}},                          // 1×1, K = 33
	{[]int{2, 320, 31, 17}, []int{64, 320, 1, 1}, tensor.Conv2dParams{}},                     // 1×1, cp.async path
	{[]int{2, 320, 16, 16}, []int{130, 320, 3, 3}, tensor.Conv2dParams{Padding: 1}},          // K = 2880
	{[]int{1, 64, 15, 15}, []int{64, 64, 3, 3}, tensor.Conv2dParams{Stride: 2, PadEnd: 1}},   // VAE downsample
	{[]int{3, 1, 64, 64}, []int{64, 1, 3, 3}, tensor.Conv2dParams{Padding: 1, PadEnd: 1}},    // C = 1
	{[]int{1, 9, 1, 1}, []int{5, 9, 3, 3}, tensor.Conv2dParams{Padding: 1}},                  // H = W = 1
	{[]int{2, 16, 7, 31}, []int{1, 16, 3, 3}, tensor.Conv2dParams{Stride: 2}},                // O = 1, no padding
	{[]int{1, 8, 9, 9}, []int{16, 8, 3, 3}, tensor.Conv2dParams{Padding: 2, PadEnd: 1}},      // wider padding
}

// convTCEmuCost is the number of (block, K slice) steps of c, what the
// emulator's time grows with.
func convTCEmuCost(c convTCCase) int {
	s := max(c.p.Stride, 1)
	ho := conv2dOutSize(c.x[2], c.w[2], s, c.p.Padding, c.p.PadEnd)
	wo := conv2dOutSize(c.x[3], c.w[3], s, c.p.Padding, c.p.PadEnd)
	blocks := (c.x[0]*ho*wo + convTCN - 1) / convTCN * ((c.w[0] + convTCM - 1) / convTCM)
	return blocks * ((c.w[1]*c.w[2]*c.w[3] + 31) / 32)
}

// needMixed skips (or, with SDGO_CUDA_REQUIRE, fails) when cuBLAS is absent:
// FP16 and BF16 modes then run as FP32 and the implicit GEMM never runs.
func needMixed(t *testing.T, g *Backend) {
	t.Helper()
	if g.dev.blas == nil {
		if os.Getenv("SDGO_CUDA_REQUIRE") != "" {
			t.Fatalf("cuBLAS not loaded (%s): FP16/BF16 modes run as FP32", g.dev.BLAS())
		}
		t.Skipf("cuBLAS not loaded (%s): FP16/BF16 modes run as FP32", g.dev.BLAS())
	}
}

// convBoth runs tensor.Conv2d with SDGO_CUDA_CONV=implicit and =im2col.
func convBoth(t *testing.T, x, w, b *tensor.Tensor, p tensor.Conv2dParams) (implicit, im2col *tensor.Tensor) {
	t.Helper()
	m := mustT(t)
	t.Setenv(convEnv, "implicit")
	implicit = m(tensor.Conv2d(x, w, b, p))
	t.Setenv(convEnv, "im2col")
	im2col = m(tensor.Conv2d(x, w, b, p))
	return implicit, im2col
}

func TestGPUConvTC(t *testing.T) {
	g := gpu(t)
	needMixed(t, g)
	m := mustT(t)
	type variant struct {
		name       string
		dx, dw, db *tensor.Tensor
		p          tensor.Conv2dParams
		want       *tensor.Tensor
	}
	// Each case with an F32 weight and bias, an F16 weight and no bias, and a
	// BF16 weight and bias; the CPU results once for both modes.
	var vs []variant
	for i, c := range convTCCases {
		if os.Getenv("SDGO_EMU_LIB") != "" && convTCEmuCost(c) > 300 {
			continue // minutes in the emulator
		}
		cx, dx := randPair(t, g, uint64(700+i), c.x...)
		cw, dw := randPair(t, g, uint64(720+i), c.w...)
		cb, db := randPair(t, g, uint64(740+i), c.w[0])
		name := fmt.Sprint(c.x, c.w, c.p)
		vs = append(vs, variant{name + " F32 w+b", dx, dw, db, c.p, m(tensor.Conv2d(cx, cw, cb, c.p))})
		cwh, dwh := to(t, tensor.F16, cw, dw)
		vs = append(vs, variant{name + " F16 w", dx, dwh, nil, c.p, m(tensor.Conv2d(cx, cwh, nil, c.p))})
		cwb, dwb := to(t, tensor.BF16, cw, dw)
		cbb, dbb := to(t, tensor.BF16, cb, db)
		vs = append(vs, variant{name + " BF16 w+b", dx, dwb, dbb, c.p, m(tensor.Conv2d(cx, cwb, cbb, c.p))})
	}
	// An F16 weight whose elements start 2 bytes past a 16-byte boundary
	// (K % 8 == 0, but no cp.async) and a strided F32 bias.
	{
		x, w := []int{2, 16, 9, 11}, []int{24, 16, 3, 3}
		n := w[0] * w[1] * w[2] * w[3]
		cx, dx := randPair(t, g, 760, x...)
		cf, df := randPair(t, g, 761, n+1)
		cf, df = to(t, tensor.F16, cf, df)
		view := func(f *tensor.Tensor) *tensor.Tensor { return m(m(f.Narrow(0, 1, n)).Reshape(w...)) }
		cb, db := randPair(t, g, 762, 2*w[0])
		stride2 := func(b *tensor.Tensor) *tensor.Tensor { return m(b.Slice(0, 0, 2*w[0], 2)) }
		p := tensor.Conv2dParams{Padding: 1}
		vs = append(vs, variant{"misaligned F16 w, strided bias", dx, view(df), stride2(db), p,
			m(tensor.Conv2d(cx, view(cf), stride2(cb), p))})
	}
	forModes(t, g, []Precision{FP16, BF16}, func(t *testing.T, p Precision) {
		tl := mixedTol(p, false)
		for _, v := range vs {
			got, ref := convBoth(t, v.dx, v.dw, v.db, v.p)
			checkMixed(t, v.name+" implicit", got, v.want, tl)
			checkMixed(t, v.name+" im2col", ref, v.want, tl)
			checkMixed(t, v.name+" implicit vs im2col", got, ref, tl/4)
			got.Release()
			ref.Release()
		}
	})
}

// TestGPUConvTCModel: the real SD shapes, the implicit GEMM against the im2col
// path (the CPU would take too long), both in FP16 and BF16 mode.
func TestGPUConvTCModel(t *testing.T) {
	g := gpu(t)
	needMixed(t, g)
	if os.Getenv("SDGO_EMU_LIB") != "" {
		t.Skip("too large for the emulator")
	}
	m := mustT(t)
	forModes(t, g, []Precision{FP16, BF16}, func(t *testing.T, p Precision) {
		tl := mixedTol(p, false)
		for i, c := range convTCModelShapes {
			if c.big {
				continue
			}
			_, dx := randPair(t, g, uint64(800+i), c.x...)
			_, dw := randPair(t, g, uint64(820+i), c.w...)
			dw = m(dw.To(tensor.F16))
			_, db := randPair(t, g, uint64(840+i), c.w[0])
			got, ref := convBoth(t, dx, dw, db, c.p)
			checkMixed(t, c.name+" implicit vs im2col", got, ref, tl/4)
			for _, x := range []*tensor.Tensor{dx, dw, db, got, ref} {
				x.Release()
			}
		}
	})
}

// convTCModelShapes are the convolutions of the SD 1.x UNet at 512×512 (batch
// 2: classifier-free guidance) and of the VAE decoder at 512×512 and 1024×1024
// (big: benchmarks only).
var convTCModelShapes = []struct {
	name string
	x, w []int
	p    tensor.Conv2dParams
	big  bool
}{
	{"unet_320x64x64_3x3", []int{2, 320, 64, 64}, []int{320, 320, 3, 3}, tensor.Conv2dParams{Padding: 1}, false},
	{"unet_640x32x32_3x3", []int{2, 640, 32, 32}, []int{640, 640, 3, 3}, tensor.Conv2dParams{Padding: 1}, false},
	{"unet_1280x16x16_3x3", []int{2, 1280, 16, 16}, []int{1280, 1280, 3, 3}, tensor.Conv2dParams{Padding: 1}, false},
	{"unet_1280x8x8_3x3", []int{2, 1280, 8, 8}, []int{1280, 1280, 3, 3}, tensor.Conv2dParams{Padding: 1}, false},
	{"unet_conv_in_4x64x64", []int{2, 4, 64, 64}, []int{320, 4, 3, 3}, tensor.Conv2dParams{Padding: 1}, false},
	{"unet_320to640x32x32_1x1", []int{2, 320, 32, 32}, []int{640, 320, 1, 1}, tensor.Conv2dParams{}, false},
	{"unet_640to1280x16x16_1x1", []int{2, 640, 16, 16}, []int{1280, 640, 1, 1}, tensor.Conv2dParams{}, false},
	{"unet_down_320x64x64_s2", []int{2, 320, 64, 64}, []int{320, 320, 3, 3}, tensor.Conv2dParams{Stride: 2, Padding: 1}, false},
	{"unet_down_640x32x32_s2", []int{2, 640, 32, 32}, []int{640, 640, 3, 3}, tensor.Conv2dParams{Stride: 2, Padding: 1}, false},
	{"vae_512x64x64_3x3", []int{1, 512, 64, 64}, []int{512, 512, 3, 3}, tensor.Conv2dParams{Padding: 1}, false},
	{"vae_512x128x128_3x3", []int{1, 512, 128, 128}, []int{512, 512, 3, 3}, tensor.Conv2dParams{Padding: 1}, false},
	{"vae_512x256x256_3x3", []int{1, 512, 256, 256}, []int{512, 512, 3, 3}, tensor.Conv2dParams{Padding: 1}, true},
	{"vae_256x256x256_3x3", []int{1, 256, 256, 256}, []int{256, 256, 3, 3}, tensor.Conv2dParams{Padding: 1}, false},
	{"vae_256x512x512_3x3", []int{1, 256, 512, 512}, []int{256, 256, 3, 3}, tensor.Conv2dParams{Padding: 1}, true},
	{"vae_128x512x512_3x3", []int{1, 128, 512, 512}, []int{128, 128, 3, 3}, tensor.Conv2dParams{Padding: 1}, false},
	{"vae_128x1024x1024_3x3", []int{1, 128, 1024, 1024}, []int{128, 128, 3, 3}, tensor.Conv2dParams{Padding: 1}, true},
	{"vae_conv_out_128x512x512", []int{1, 128, 512, 512}, []int{3, 128, 3, 3}, tensor.Conv2dParams{Padding: 1}, false},
}

// BenchmarkGPUConvTC times every shape of convTCModelShapes in FP16 mode on
// both paths (…/implicit and …/im2col), with an F16 weight and an F32 bias;
// BF16 mode for the first UNet shape. TFLOP/s counts 2 flops per multiply-add.
func BenchmarkGPUConvTC(b *testing.B) {
	g, err := gpuBackend()
	if err != nil {
		b.Skip(err)
	}
	if g.dev.blas == nil {
		b.Skipf("cuBLAS not loaded (%s)", g.dev.BLAS())
	}
	defer g.SetPrecision(FP32)
	for i, c := range convTCModelShapes {
		modes := []Precision{FP16}
		if i == 0 {
			modes = append(modes, BF16)
		}
		for _, p := range modes {
			name := c.name
			if p != FP16 {
				name += "_" + p.String()
			}
			b.Run(name, func(b *testing.B) {
				x := randT(b, g, c.x...)
				wf := randT(b, g, c.w...)
				w, err := wf.To(tensor.F16)
				if err != nil {
					b.Fatal(err)
				}
				wf.Release()
				bias := randT(b, g, c.w[0])
				defer func() { x.Release(); w.Release(); bias.Release() }()
				ho := conv2dOutSize(c.x[2], c.w[2], max(c.p.Stride, 1), c.p.Padding, c.p.PadEnd)
				wo := conv2dOutSize(c.x[3], c.w[3], max(c.p.Stride, 1), c.p.Padding, c.p.PadEnd)
				flops := 2 * float64(c.x[0]*c.w[0]*ho*wo) * float64(c.w[1]*c.w[2]*c.w[3])
				for _, path := range []string{"implicit", "im2col"} {
					b.Run(path, func(b *testing.B) {
						b.Setenv(convEnv, path)
						if err := g.SetPrecision(p); err != nil {
							b.Fatal(err)
						}
						call := func() {
							y, err := tensor.Conv2d(x, w, bias, c.p)
							if err != nil {
								b.Fatal(err)
							}
							if err := g.Synchronize(); err != nil {
								b.Fatal(err)
							}
							y.Release()
						}
						call()
						for b.Loop() {
							call()
						}
						b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e12, "TFLOP/s")
						b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/op")
					})
				}
			})
		}
	}
}

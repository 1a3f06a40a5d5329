package cuda

import (
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/sdgo/sdgo/tensor"
)

// The mixed-precision tests compare each product in TF32, FP16 and BF16 modes
// with the CPU backend's FP32 result on the same (unrounded) F32 data. They
// need a GPU (or the emulator) and skip otherwise.
//
// Tolerance: the largest error over all elements, relative to the largest
// |output| (maxRel below), must stay under mixedTol(p) = 4u, u being the unit
// roundoff of the operands' dtype: 2⁻¹¹ ≈ 4.9e-4 for F16 and TF32 (10
// mantissa bits), 2⁻⁸ ≈ 3.9e-3 for BF16 (7 bits), so 2.0e-3 and 1.6e-2.
// Why: a K-long dot product of values rounded to relative error ≤ u has an
// error of ≈ u·√(2K)·rms(a)·rms(b) (independent roundings of both operands,
// FP32 accumulation adding ~2⁻²⁴·√K more), whereas the largest of many outputs
// is ≈ 4·√K·rms(a)·rms(b) (4 standard deviations): the error relative to the
// largest output is ≈ u·√2/4 per element, ≈ 1.4u in the worst of ~10⁵ elements
// (5σ), whatever K is (K up to 5000 here). 4u leaves a margin of ~3.
// Attention rounds three operands and the probabilities P and its output is an
// average (its largest element is smaller relative to the errors), so it gets
// 8u: 3.9e-3 (F16) and 3.1e-2 (BF16). Each test logs the error it saw.
func mixedTol(p Precision, attention bool) float64 {
	u := math.Ldexp(1, -11)
	if p == BF16 {
		u = math.Ldexp(1, -8)
	}
	if attention {
		return 8 * u
	}
	return 4 * u
}

var mixedModes = []Precision{TF32, FP16, BF16}

// maxRel returns max|g - w| / max|w| over all elements.
func maxRel(t *testing.T, got, want *tensor.Tensor) float64 {
	t.Helper()
	if fmt.Sprint(got.Shape()) != fmt.Sprint(want.Shape()) {
		t.Fatalf("shape %v, want %v", got.Shape(), want.Shape())
	}
	g, err := got.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	w, err := want.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	var e, m float64
	for i := range w {
		d := math.Abs(float64(g[i]) - float64(w[i]))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		e = math.Max(e, d)
		m = math.Max(m, math.Abs(float64(w[i])))
	}
	if m == 0 {
		return e
	}
	return e / m
}

// checkMixed fails when got differs from want by more than tol relative to the
// largest output, and logs the error.
func checkMixed(t *testing.T, name string, got, want *tensor.Tensor, tol float64) {
	t.Helper()
	r := maxRel(t, got, want)
	if r > tol {
		t.Errorf("%s: max error %.3g of the largest output, want ≤ %.3g", name, r, tol)
	} else {
		t.Logf("%s: max error %.3g of the largest output (≤ %.3g)", name, r, tol)
	}
}

// forModes runs f in each mixed mode (restoring FP32 afterwards); without
// cuBLAS the modes fall back to FP32 and the test still runs.
func forModes(t *testing.T, g *Backend, modes []Precision, f func(t *testing.T, p Precision)) {
	defer g.SetPrecision(FP32)
	if g.dev.blas == nil {
		t.Logf("cuBLAS not loaded (%s): the modes run as FP32", g.dev.BLAS())
	}
	for _, p := range modes {
		if err := g.SetPrecision(p); err != nil {
			t.Fatal(err)
		}
		t.Run(p.String(), func(t *testing.T) { f(t, p) })
	}
}

func TestGPUPrecisionMatMul(t *testing.T) {
	g := gpu(t)
	forModes(t, g, mixedModes, func(t *testing.T, p Precision) {
		m := mustT(t)
		tl := mixedTol(p, false)
		for i, c := range []struct{ a, b []int }{
			{[]int{1, 1}, []int{1, 1}},
			{[]int{3, 5}, []int{5, 7}},
			{[]int{65, 33}, []int{33, 129}},
			{[]int{2, 3, 100, 77}, []int{77, 64}},
			{[]int{4, 17, 300}, []int{4, 300, 9}},
			{[]int{2, 1, 5, 8}, []int{3, 8, 6}},
			{[]int{40, 5000}, []int{5000, 48}}, // K = 5000
		} {
			ca, da := randPair(t, g, uint64(320+i), c.a...)
			cb, db := randPair(t, g, uint64(330+i), c.b...)
			want := m(tensor.MatMul(ca, cb))
			checkMixed(t, fmt.Sprint("MatMul ", c.a, c.b), m(tensor.MatMul(da, db)), want, tl)
			// A transposed view of a.
			dat := m(m(m(da.Transpose(-1, -2)).Contiguous()).Transpose(-1, -2))
			checkMixed(t, fmt.Sprint("MatMul aᵀ ", c.a, c.b), m(tensor.MatMul(dat, db)), want, tl)
			// Weights stored as F16 and BF16: the reference uses the rounded weight.
			for _, dt := range []tensor.DType{tensor.F16, tensor.BF16} {
				cbh, dbh := to(t, dt, cb, db)
				wh := m(tensor.MatMul(ca, cbh))
				checkMixed(t, fmt.Sprint("MatMul b ", dt, c.a, c.b), m(tensor.MatMul(da, dbh)), wh, tl)
				cah, dah := to(t, dt, ca, da)
				checkMixed(t, fmt.Sprint("MatMul both ", dt, c.a, c.b), m(tensor.MatMul(dah, dbh)), m(tensor.MatMul(cah, cbh)), tl)
			}
		}
		// Linear: x·wᵀ + bias, weight and bias F32, F16, BF16.
		for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
			cx, dx := randPair(t, g, 340, 2, 77, 320)
			cw, dw := randPair(t, g, 341, 129, 320)
			cb, db := randPair(t, g, 342, 129)
			cw, dw = to(t, dt, cw, dw)
			cb, db = to(t, dt, cb, db)
			checkMixed(t, "Linear "+dt.String(), m(tensor.Linear(dx, dw, db)), m(tensor.Linear(cx, cw, cb)), tl)
		}
	})
}

func TestGPUPrecisionConv2d(t *testing.T) {
	g := gpu(t)
	defer func(v int) { convScratch = v }(convScratch)
	forModes(t, g, mixedModes, func(t *testing.T, p Precision) {
		m := mustT(t)
		tl := mixedTol(p, false)
		for i, c := range []struct {
			x, w    []int
			p       tensor.Conv2dParams
			scratch int // convScratch, to force chunks of images and of pixels
		}{
			{[]int{1, 1, 1, 1}, []int{1, 1, 1, 1}, tensor.Conv2dParams{}, 0},
			{[]int{1, 3, 5, 5}, []int{4, 3, 3, 3}, tensor.Conv2dParams{Padding: 1}, 0},
			{[]int{2, 5, 9, 7}, []int{7, 5, 3, 3}, tensor.Conv2dParams{Stride: 2, Padding: 1}, 0},
			{[]int{1, 4, 8, 8}, []int{3, 4, 3, 3}, tensor.Conv2dParams{Stride: 2, PadEnd: 1}, 0},
			{[]int{2, 70, 6, 5}, []int{65, 70, 1, 1}, tensor.Conv2dParams{}, 0},
			{[]int{1, 16, 17, 19}, []int{33, 16, 3, 3}, tensor.Conv2dParams{Padding: 1}, 0},
			{[]int{3, 8, 10, 10}, []int{16, 8, 3, 3}, tensor.Conv2dParams{Padding: 1}, 72 * 100 * 2}, // 2 images a step
			{[]int{2, 8, 13, 11}, []int{16, 8, 3, 3}, tensor.Conv2dParams{Padding: 1}, 72 * 40},      // 40 pixels a step
			{[]int{2, 64, 16, 16}, []int{64, 64, 3, 3}, tensor.Conv2dParams{Padding: 1}, 0},          // K = 576
		} {
			convScratch = 1 << 26
			if c.scratch > 0 {
				convScratch = c.scratch
			}
			cx, dx := randPair(t, g, uint64(350+i), c.x...)
			cw, dw := randPair(t, g, uint64(360+i), c.w...)
			cb, db := randPair(t, g, uint64(370+i), c.w[0])
			name := fmt.Sprint("Conv2d ", c.x, c.w, c.p)
			checkMixed(t, name, m(tensor.Conv2d(dx, dw, db, c.p)), m(tensor.Conv2d(cx, cw, cb, c.p)), tl)
			checkMixed(t, name+" no bias", m(tensor.Conv2d(dx, dw, nil, c.p)), m(tensor.Conv2d(cx, cw, nil, c.p)), tl)
			cwh, dwh := to(t, tensor.F16, cw, dw)
			cbh, dbh := to(t, tensor.BF16, cb, db)
			checkMixed(t, name+" F16 w", m(tensor.Conv2d(dx, dwh, dbh, c.p)), m(tensor.Conv2d(cx, cwh, cbh, c.p)), tl)
			cwb, dwb := to(t, tensor.BF16, cw, dw)
			checkMixed(t, name+" BF16 w", m(tensor.Conv2d(dx, dwb, nil, c.p)), m(tensor.Conv2d(cx, cwb, nil, c.p)), tl)
		}
	})
}

// TestGPUPrecisionAttention: FP16 and BF16 (TF32 changes only sliced mode's
// F32 GEMMs; TestGPUAttention covers the rest).
func TestGPUPrecisionAttention(t *testing.T) {
	g := gpu(t)
	forModes(t, g, []Precision{FP16, BF16}, func(t *testing.T, p Precision) {
		m := mustT(t)
		tl := mixedTol(p, true)
		for i, c := range []struct {
			b, h, lq, lk, d, dv int
			p                   tensor.AttentionParams
		}{
			{1, 1, 1, 1, 1, 1, tensor.AttentionParams{}},
			{2, 3, 17, 33, 40, 40, tensor.AttentionParams{}},
			{1, 2, 100, 77, 64, 64, tensor.AttentionParams{}},
			{1, 2, 70, 70, 64, 32, tensor.AttentionParams{Causal: true}},
			{2, 1, 33, 300, 160, 160, tensor.AttentionParams{Scale: 0.3}},
			{1, 2, 70, 70, 64, 64, tensor.AttentionParams{Mode: tensor.AttentionSliced, BlockQ: 16, Causal: true}},
			{2, 2, 50, 61, 40, 24, tensor.AttentionParams{Mode: tensor.AttentionSliced, BlockQ: 7}},
			{1, 1, 9, 13, 300, 5, tensor.AttentionParams{}},
			{2, 2, 1, 20, 8, 8, tensor.AttentionParams{}}, // one query
			{2, 8, 256, 256, 40, 40, tensor.AttentionParams{}},
		} {
			if c.lq == 256 && os.Getenv("SDGO_EMU_LIB") != "" {
				continue // minutes in the emulator
			}
			cq, dq := randPair(t, g, uint64(380+i), c.b, c.h, c.lq, c.d)
			ck, dk := randPair(t, g, uint64(390+i), c.b, c.h, c.lk, c.d)
			cv, dv := randPair(t, g, uint64(400+i), c.b, c.h, c.lk, c.dv)
			name := fmt.Sprintf("Attention %+v", c)
			want := m(tensor.Attention(cq, ck, cv, c.p))
			checkMixed(t, name, m(tensor.Attention(dq, dk, dv, c.p)), want, tl)
			// [B,L,H,D] operands, and the output into a [B,Lq,H,Dv] buffer (its batch
			// stride is not H times its head stride: one call per batch item).
			perm := func(x *tensor.Tensor) *tensor.Tensor {
				y := m(m(x.Permute(0, 2, 1, 3)).Contiguous())
				return m(y.Permute(0, 2, 1, 3))
			}
			checkMixed(t, name+" BLHD", m(tensor.Attention(perm(dq), perm(dk), perm(dv), c.p)), want, tl)
			buf := m(tensor.Zeros(g, tensor.F32, c.b, c.lq, c.h, c.dv))
			if err := tensor.AttentionInto(m(buf.Permute(0, 2, 1, 3)), dq, dk, dv, c.p); err != nil {
				t.Fatal(err)
			}
			checkMixed(t, name+" into BLHD", m(m(buf.Permute(0, 2, 1, 3)).Contiguous()), want, tl)
			// F16 operands.
			cqh, dqh := to(t, tensor.F16, cq, dq)
			ckh, dkh := to(t, tensor.F16, ck, dk)
			checkMixed(t, name+" F16", m(tensor.Attention(dqh, dkh, dv, c.p)), m(tensor.Attention(cqh, ckh, cv, c.p)), tl)
		}
	})
}

// TestGPUPrecisionFP32 checks that FP32 is the default and that coming back
// to it after a mixed mode gives the same bits as before.
func TestGPUPrecisionFP32(t *testing.T) {
	g := gpu(t)
	m := mustT(t)
	if p := g.Precision(); p != FP32 {
		t.Fatalf("default precision %v", p)
	}
	_, dx := randPair(t, g, 410, 2, 8, 16, 16)
	_, dw := randPair(t, g, 411, 8, 8, 3, 3)
	_, da := randPair(t, g, 412, 33, 65)
	_, db := randPair(t, g, 413, 65, 17)
	dbh := m(db.To(tensor.F16))
	_, dq := randPair(t, g, 414, 1, 2, 40, 40)
	run := func() [][]float32 {
		var out [][]float32
		for _, y := range []*tensor.Tensor{
			m(tensor.Conv2d(dx, dw, nil, tensor.Conv2dParams{Padding: 1})),
			m(tensor.MatMul(da, db)), m(tensor.MatMul(da, dbh)),
			m(tensor.Attention(dq, dq, dq, tensor.AttentionParams{})),
		} {
			v, err := y.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
		}
		return out
	}
	before := run()
	for _, p := range mixedModes {
		if err := g.SetPrecision(p); err != nil {
			t.Fatal(err)
		}
		run()
	}
	if err := g.SetPrecision(FP32); err != nil {
		t.Fatal(err)
	}
	after := run()
	for i := range before {
		for j := range before[i] {
			if math.Float32bits(before[i][j]) != math.Float32bits(after[i][j]) {
				t.Fatalf("result %d element %d: %v after the mixed modes, %v before", i, j, after[i][j], before[i][j])
			}
		}
	}
	if err := g.SetPrecision(Precision(9)); err == nil {
		t.Error("SetPrecision(9) accepted")
	}
}

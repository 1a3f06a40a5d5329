package asm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/x448/float16"
)

func randF32(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

func randHalf(rng *rand.Rand, n int, elem Elem) []uint16 {
	s := make([]uint16, n)
	for i := range s {
		v := float32(rng.NormFloat64())
		if elem == ElemBF16 {
			s[i] = uint16(math.Float32bits(v) >> 16)
		} else {
			s[i] = float16.Fromfloat32(v).Bits()
		}
	}
	return s
}

// refGemm is the direct formula in float64; it also returns, for each element,
// Σ|alpha·a·b| + |beta·c|, the scale that bounds float32 round-off.
func refGemm(m, n, k int, alpha float32, a, b Operand, beta float32, c []float32, ldc int) (want, scale []float64) {
	want = make([]float64, m*n)
	scale = make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sa float64
			for p := 0; p < k; p++ {
				v := float64(a.at(i, p)) * float64(b.at(p, j))
				s += v
				sa += math.Abs(v)
			}
			w := float64(alpha) * s
			sc := math.Abs(float64(alpha)) * sa
			if beta != 0 {
				w += float64(beta) * float64(c[i*ldc+j])
				sc += math.Abs(float64(beta) * float64(c[i*ldc+j]))
			}
			want[i*n+j], scale[i*n+j] = w, sc
		}
	}
	return want, scale
}

func makeOperand(rng *rand.Rand, rows, cols int, elem Elem, trans bool, pad int) Operand {
	r, c := rows, cols
	if trans {
		r, c = cols, rows
	}
	o := Operand{Elem: elem, Stride: c + pad, Trans: trans}
	n := max(0, (r-1)*o.Stride+c)
	if elem == ElemF32 {
		o.F32 = randF32(rng, n)
	} else {
		o.U16 = randHalf(rng, n, elem)
	}
	return o
}

// at returns the element (r, c) of the matrix the operand stands for.
func (o *Operand) at(r, c int) float32 {
	i := r*o.Stride + c
	if o.Trans {
		i = c*o.Stride + r
	}
	switch o.Elem {
	case ElemF16:
		return f16Scalar(o.U16[i])
	case ElemBF16:
		return bf16Scalar(o.U16[i])
	}
	return o.F32[i]
}

var awkward = []int{1, 3, 7, 17, 31, 33, 127, 129}

func TestGemmMatchesFormula(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	type tc struct {
		m, n, k       int
		ea, eb        Elem
		ta, tb        bool
		alpha, beta   float32
		threads, padA int
		padB, padC    int
	}
	var cases []tc
	for _, m := range awkward {
		for _, n := range awkward {
			k := awkward[(m+n)%len(awkward)]
			cases = append(cases, tc{m: m, n: n, k: k, ea: ElemF32, eb: ElemF32, alpha: 1, threads: 1})
		}
	}
	for _, k := range []int{1, 2, 3, 4, 5, 255, 256, 257, 600} {
		for _, eb := range []Elem{ElemF32, ElemF16, ElemBF16} {
			for _, ea := range []Elem{ElemF32, ElemF16, ElemBF16} {
				for tr := range 4 {
					cases = append(cases, tc{m: 13, n: 37, k: k, ea: ea, eb: eb, ta: tr&1 != 0, tb: tr&2 != 0,
						alpha: 0.75, beta: 0.5, threads: 1 + tr%2, padA: 3, padB: 1, padC: 5})
				}
			}
		}
	}
	// Sizes across the blocking boundaries (mc 120, nc 3072, kc 256) and thread bands.
	cases = append(cases,
		tc{m: 121, n: 3100, k: 33, ea: ElemF32, eb: ElemF16, tb: true, alpha: 1, threads: 3},
		tc{m: 250, n: 40, k: 520, ea: ElemF32, eb: ElemF32, alpha: -2, beta: 1, threads: 4},
		tc{m: 64, n: 64, k: 64, ea: ElemF32, eb: ElemF32, alpha: 1, threads: 0},
	)
	for _, c := range cases {
		name := fmt.Sprintf("%dx%dx%d/%v%v/t%v%v/a%v_b%v/th%d", c.m, c.n, c.k, c.ea, c.eb, c.ta, c.tb, c.alpha, c.beta, c.threads)
		a := makeOperand(rng, c.m, c.k, c.ea, c.ta, c.padA)
		b := makeOperand(rng, c.k, c.n, c.eb, c.tb, c.padB)
		ldc := c.n + c.padC
		cm := randF32(rng, (c.m-1)*ldc+c.n)
		if c.beta == 0 {
			for i := range cm {
				cm[i] = float32(math.NaN()) // beta 0 must overwrite, not propagate
			}
		}
		want, scale := refGemm(c.m, c.n, c.k, c.alpha, a, b, c.beta, cm, ldc)
		Gemm(c.m, c.n, c.k, c.alpha, a, b, c.beta, cm, ldc, c.threads)
		for i := 0; i < c.m; i++ {
			for j := 0; j < c.n; j++ {
				got := float64(cm[i*ldc+j])
				tol := 1e-6 * (scale[i*c.n+j] + 1) * math.Sqrt(float64(c.k)+1)
				if math.Abs(got-want[i*c.n+j]) > tol || math.IsNaN(got) {
					t.Fatalf("%s: C[%d,%d] = %g, want %g (tolerance %g)", name, i, j, got, want[i*c.n+j], tol)
				}
			}
			for j := c.n; j < ldc && i < c.m-1; j++ {
				// padding between rows is never written
				require.False(t, cm[i*ldc+j] != cm[i*ldc+j] && c.beta != 0, "%s: padding written", name)
			}
		}
	}
}

func TestGemmLeavesPaddingAlone(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m, n, k, ldc := 7, 9, 5, 12
	a := makeOperand(rng, m, k, ElemF32, false, 0)
	b := makeOperand(rng, k, n, ElemF32, false, 0)
	c := make([]float32, m*ldc)
	for i := range c {
		c[i] = 42
	}
	Gemm(m, n, k, 1, a, b, 0, c, ldc, 1)
	for i := 0; i < m; i++ {
		for j := n; j < ldc && i*ldc+j < len(c); j++ {
			require.Equal(t, float32(42), c[i*ldc+j], "C[%d,%d] is padding", i, j)
		}
	}
}

func TestGemmZeroSizes(t *testing.T) {
	c := []float32{1, 2, 3, 4}
	Gemm(2, 2, 0, 1, Operand{Stride: 0}, Operand{Stride: 2}, 0.5, c, 2, 1)
	require.Equal(t, []float32{0.5, 1, 1.5, 2}, c, "k = 0 scales C by beta")
	Gemm(0, 5, 5, 1, Operand{}, Operand{}, 0, nil, 5, 1) // nothing to do, no panic
}

func TestGemmPanicsOnShortOperands(t *testing.T) {
	a := Operand{F32: make([]float32, 5), Stride: 3}
	b := Operand{F32: make([]float32, 6), Stride: 3}
	c := make([]float32, 6)
	require.PanicsWithValue(t, "asm.Gemm: operand A (f32, 2x3, stride 3) needs 6 elements, has 5", func() {
		Gemm(2, 3, 3, 1, a, b, 0, c, 3, 1)
	})
	a.F32 = make([]float32, 6)
	require.Panics(t, func() { Gemm(2, 3, 2, 1, a, b, 0, c[:5], 3, 1) })
	require.Panics(t, func() { Gemm(2, 3, 3, 1, a, Operand{F32: b.F32, Stride: 2}, 0, c, 3, 1) })
}

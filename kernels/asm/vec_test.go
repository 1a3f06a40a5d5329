package asm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/x448/float16"
)

// The vector routines against their Go references. These tests run through the
// exported functions, so on an AVX2 machine they test the assembly and elsewhere
// (or with -tags noasm) the dispatch to the references; vec_amd64_test.go runs the
// same cases on the AVX2 kernels directly.
//
// Error bounds, in float32 ulps of the reference (distance between bit patterns, so
// subnormals count their own, smaller, ulps), and why:
//
//   - exp: 2 ulps. The polynomial is good to 1.1e-8 relative (0.2 ulp), the range
//     reduction and the final scaling add at most about 1 ulp; the reference is
//     math.Exp rounded to float32 (0.5 ulp).
//   - SiLU, QuickGELU: 4 ulps: exp (2), 1+e and the division (0.5 each), and the
//     reference's own two float32 roundings.
//   - GELU (erf): 8 ulps: the erfc fit is good to 1.7e-8 relative (0.3 ulp); exp
//     (1), t = 1/(1+0.3a) (0.5, times a sensitivity below 2), the degree-9 Horner
//     sum (up to 3), three products (1.5), the reference's rounding (0.5). The
//     largest error measured is 5 ulps against an exact erfc (at x = -12.6).
//   - GELU (tanh): 4 + 4|z| ulps with z = 2·√(2/π)(x + 0.044715x³), the argument of
//     exp: computing z in float32 costs up to about 2 ulps of z, an absolute error
//     of |z|·2^-22 in the exponent and so a relative one in the result, i.e. up to
//     4|z| ulps (the reference works in float64). It only matters where the
//     result is small (z = -8.6 at x = -3.5, where GELU is -6e-4); the largest
//     error measured on [-3.5, 16] is 17 ulps.
//   - softmax: 4 ulps: exp (2), the scaling (0.5), the reference's roundings.
//
// Results whose magnitude is below 1e-37 (subnormal territory, where the
// reference itself has few bits) may instead differ by at most 1e-37, and where
// a reference is known to lose accuracy (refAbs below) by that much.
//
// Affine steps (ScaleShift, Normalize, Axpy) use FMA where the reference rounds
// the product first; they differ by at most 2^-23·(|product| + |addend|).
// Reductions are compared with the exact (float64) value: the vector code keeps 32
// partial sums of at most n/32 terms each plus a 5-level tree, so its error is below
// (n/32 + 5)·2^-24·Σ|terms| < 1e-5·Σ|terms| for the sizes tested.

var vecSizes = []int{0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 127, 129, 1000, 4099}

const vecSentinel = float32(-12345.678)

// ulps is the distance between the bit patterns of a and b, both taken as ordered
// integers (0 for equal values, ±0 included; both NaN count as equal).
func ulps(a, b float32) int64 {
	if a == b || (a != a && b != b) {
		return 0
	}
	if a != a || b != b {
		return math.MaxInt64
	}
	ord := func(f float32) int64 {
		i := int64(int32(math.Float32bits(f)))
		if i < 0 {
			i = math.MinInt32 - i
		}
		return i
	}
	d := ord(a) - ord(b)
	if d < 0 {
		d = -d
	}
	return d
}

// within reports whether got is within maxUlps of want, or within 1e-37 when
// both are that small.
func within(got, want float32, maxUlps float64) bool {
	if u := ulps(got, want); u == 0 || float64(u) <= maxUlps {
		return true
	}
	return math.Abs(float64(want)) < 1e-37 && math.Abs(float64(got-want)) <= 1e-37
}

func uniform(rng *rand.Rand, n int, lo, hi float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = lo + (hi-lo)*rng.Float32()
	}
	return s
}

// vecUnary is one elementwise routine under test.
type vecUnary struct {
	name string
	api  func(dst, src []float32)
	ref  func(dst, src []float32)
	gen  func(rng *rand.Rand, n int) []float32
	// maxUlps is the bound for input x (see the comment at the top).
	maxUlps func(x float32) float64
	// refAbs, if not nil, is the absolute error of the reference itself at x.
	refAbs func(x float32) float64
}

func constUlps(u float64) func(float32) float64 { return func(float32) float64 { return u } }

func geluTanhUlps(x float32) float64 {
	v := float64(x)
	return 4 + 4*math.Abs(2*0.7978845608028654*(v+0.044715*v*v*v))
}

// geluRefAbs is the error of the GELU references for negative x: they compute
// 1 + erf or 1 + tanh in float64, which cancels to 0 below about 2^-53, so they
// are off by up to |x|·2^-53 where the true value is that small (the kernels,
// which use exp(-|·|), are not).
func geluRefAbs(x float32) float64 { return math.Abs(float64(x)) * 0x1p-51 }

// subnormalSigmoid covers x·sigmoid(z) for z < -87.3, where both the reference's
// float32 sigmoid and the kernel's exp(-|z|) are subnormal, each with an absolute
// error up to 2^-150: the results may differ by |x|·2^-149, plus the few ulps of
// the normal bound; |x|·2^-148 covers both.
func subnormalSigmoid(x float32) float64 { return math.Abs(float64(x)) * 0x1p-148 }

func vecUnaryCases() []vecUnary {
	act := func(lo, hi float32) func(rng *rand.Rand, n int) []float32 {
		return func(rng *rand.Rand, n int) []float32 {
			s := uniform(rng, n, lo, hi)
			for i := 0; i < n; i += 5 { // a denser sample of the interesting range
				s[i] = float32(rng.NormFloat64() * 2)
			}
			return s
		}
	}
	return []vecUnary{
		{"Exp", Exp, expGeneric, func(rng *rand.Rand, n int) []float32 {
			s := uniform(rng, n, -87, 88)
			for i := 0; i < n; i += 7 {
				s[i] = uniform(rng, 1, -104, -87)[0] // subnormal results
			}
			for i := 3; i < n; i += 7 {
				s[i] = uniform(rng, 1, -1, 1)[0]
			}
			return s
		}, constUlps(2), nil},
		{"SiLU", SiLU, siluGeneric, act(-90, 90), constUlps(4), subnormalSigmoid},
		{"QuickGELU", QuickGELU, quickGELUGeneric, act(-60, 60), constUlps(4), subnormalSigmoid},
		{"GELU", GELU, geluGeneric, act(-15, 15), constUlps(8), geluRefAbs},
		{"GELUTanh", GELUTanh, geluTanhGeneric, act(-10, 10), geluTanhUlps, geluRefAbs},
	}
}

// vecSpecials are inputs every elementwise routine must handle.
var vecSpecials = []float32{
	0, float32(math.Copysign(0, -1)), 1, -1, 0.5, -0.5, 1e-40, -1e-40, 1e-30, -1e-30,
	3, -3, 5.5, -5.5, 9, -9, 13.9, -13.9, 14.1, -14.1, 20, -20, 87, -87, 88.7, -88.7,
	88.8, -88.8, 100, -100, 104, -104, 1e30, -1e30, math.MaxFloat32, -math.MaxFloat32,
	float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
}

// checkUnary runs f against c.ref on random data of every size in vecSizes and on
// the special values, checking that nothing past len(src) is written and that
// dst may alias src. It returns the largest error seen, in ulps.
func checkUnary(t *testing.T, c vecUnary, f func(dst, src []float32)) int64 {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, uint64(len(c.name))))
	var worst int64
	check := func(src []float32, tag string) {
		n := len(src)
		want := make([]float32, n)
		c.ref(want, src)
		dst := make([]float32, n+9)
		for i := range dst {
			dst[i] = vecSentinel
		}
		f(dst[:n], src)
		for i := n; i < len(dst); i++ {
			require.Equal(t, vecSentinel, dst[i], "%s %s n=%d: wrote dst[%d] past the end", c.name, tag, n, i)
		}
		for i, x := range src {
			got, w := dst[i], want[i]
			if w != w && (math.IsInf(float64(x), 0)) {
				continue // the reference makes NaN of ±Inf·0; the limit is fine too
			}
			ref := 0.0 // the reference's own error at x
			if c.refAbs != nil {
				ref = c.refAbs(x)
			}
			spacing := float64(math.Nextafter32(float32(math.Abs(float64(w))), float32(math.Inf(1)))) - math.Abs(float64(w))
			if u := ulps(got, w); u > worst && math.Abs(float64(w)) >= 1e-37 && ref < spacing/4 {
				worst = u // measured where the reference is good to float32 precision
			}
			require.True(t, within(got, w, c.maxUlps(x)) || math.Abs(float64(got)-float64(w)) <= ref+c.maxUlps(x)*spacing,
				"%s %s n=%d: f(%g) = %g (%#08x), want %g (%#08x): %d ulps > %g",
				c.name, tag, n, x, got, math.Float32bits(got), w, math.Float32bits(w), ulps(got, w), c.maxUlps(x))
		}
		// in place
		buf := append([]float32(nil), src...)
		f(buf, buf)
		for i := range buf {
			require.Equal(t, math.Float32bits(dst[i]), math.Float32bits(buf[i]), "%s %s n=%d: in place differs at %d", c.name, tag, n, i)
		}
	}
	for _, n := range vecSizes {
		check(c.gen(rng, n), "random")
	}
	check(vecSpecials, "specials")
	// a dense sweep over [-16, 16]
	sweep := make([]float32, 32*1024+5)
	for i := range sweep {
		sweep[i] = -16 + 32*float32(i)/float32(len(sweep))
	}
	check(sweep, "sweep")
	return worst
}

func TestVecUnaryMatchesReference(t *testing.T) {
	for _, c := range vecUnaryCases() {
		t.Run(c.name, func(t *testing.T) {
			worst := checkUnary(t, c, c.api)
			t.Logf("%s (%s): largest error %d ulps", c.name, Features(), worst)
		})
	}
}

func TestVecExpSpecialValues(t *testing.T) {
	in := []float32{-100, 0, 88.7, 100, float32(math.NaN()), float32(math.Inf(-1)), float32(math.Inf(1)), -87.3, -103.9, -200, 88.72, 88.73}
	out := make([]float32, len(in))
	Exp(out, in)
	require.Equal(t, float32(1), out[1], "exp(0)")
	require.True(t, math.IsInf(float64(out[3]), 1), "exp(100) = %g", out[3])
	require.True(t, out[4] != out[4], "exp(NaN) = %g", out[4])
	require.Equal(t, float32(0), out[5], "exp(-Inf)")
	require.True(t, math.IsInf(float64(out[6]), 1), "exp(+Inf) = %g", out[6])
	require.Equal(t, float32(0), out[9], "exp(-200)")
	require.True(t, math.IsInf(float64(out[11]), 1), "exp(88.73) = %g", out[11])
	for _, i := range []int{0, 2, 7, 8, 10} {
		want := float32(math.Exp(float64(in[i])))
		require.LessOrEqual(t, ulps(out[i], want), int64(2), "exp(%g) = %g, want %g", in[i], out[i], want)
	}
	require.Greater(t, out[0], float32(0), "exp(-100) is a subnormal, not 0")
	require.False(t, math.IsInf(float64(out[10]), 0), "exp(88.72) is finite")
}

func TestVecF16ToF32AllPatterns(t *testing.T) {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	got, want := make([]float32, len(src)), make([]float32, len(src))
	F16ToF32(got, src)
	f16ToF32Generic(want, src)
	for i := range src {
		require.Equal(t, math.Float32bits(want[i]), math.Float32bits(got[i]), "F16ToF32(%#04x)", src[i])
	}
	// narrowing every widened value gives the pattern back (NaNs come back quiet)
	back := make([]uint16, len(src))
	F32ToF16(back, got)
	for i, h := range src {
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			require.Equal(t, h|0x200, back[i], "F32ToF16(F16ToF32(%#04x)) NaN", h)
			continue
		}
		require.Equal(t, h, back[i], "F32ToF16(F16ToF32(%#04x))", h)
	}
}

func TestVecF32ToF16Rounding(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 3))
	var src []float32
	// random bit patterns over every exponent
	for range 100000 {
		src = append(src, math.Float32frombits(rng.Uint32()))
	}
	// random values in and around the half range: normals, subnormals, overflow
	for range 100000 {
		e := rng.IntN(50) - 30 // 2^-30 .. 2^19
		v := float32(math.Ldexp(1+rng.Float64(), e))
		if rng.IntN(2) == 0 {
			v = -v
		}
		src = append(src, v)
	}
	// every tie between consecutive halves, and the values one float32 ulp either side
	for h := uint16(0); h < 0x7c00; h++ {
		lo := float16.Frombits(h).Float32()
		hi := float16.Frombits(h + 1).Float32()
		mid := float32((float64(lo) + float64(hi)) / 2)
		for _, v := range []float32{mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, 1e9)} {
			src = append(src, v, -v)
		}
	}
	src = append(src, 65504, 65519.99, 65520, 65536, 1e10, float32(math.Inf(1)), float32(math.Inf(-1)),
		5.96e-8, 2.98e-8, 2.99e-8, 1e-40, float32(math.NaN()), math.Float32frombits(0x7f800001), math.Float32frombits(0xffc12345))
	got, want := make([]uint16, len(src)), make([]uint16, len(src))
	F32ToF16(got, src)
	f32ToF16Generic(want, src)
	for i, v := range src {
		require.Equal(t, want[i], got[i], "F32ToF16(%g = %#08x)", v, math.Float32bits(v))
	}
}

func TestVecBF16ToF32AllPatterns(t *testing.T) {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	got := make([]float32, len(src))
	BF16ToF32(got, src)
	for i, h := range src {
		require.Equal(t, uint32(h)<<16, math.Float32bits(got[i]), "BF16ToF32(%#04x)", h)
	}
}

// checkConversions runs the three conversions on every size, with sentinels.
func checkConversions(t *testing.T, f16 func([]float32, []uint16), f32 func([]uint16, []float32), bf16 func([]float32, []uint16)) {
	rng := rand.New(rand.NewPCG(4, 5))
	for _, n := range vecSizes {
		h := make([]uint16, n)
		for i := range h {
			h[i] = uint16(rng.Uint32())
		}
		for _, c := range []struct {
			name string
			f    func([]float32, []uint16)
			ref  func([]float32, []uint16)
		}{{"F16ToF32", f16, f16ToF32Generic}, {"BF16ToF32", bf16, bf16ToF32Generic}} {
			got, want := make([]float32, n+9), make([]float32, n)
			for i := range got {
				got[i] = vecSentinel
			}
			c.f(got[:n], h)
			c.ref(want, h)
			for i := range want {
				require.Equal(t, math.Float32bits(want[i]), math.Float32bits(got[i]), "%s n=%d i=%d", c.name, n, i)
			}
			for i := n; i < len(got); i++ {
				require.Equal(t, vecSentinel, got[i], "%s n=%d wrote past the end", c.name, n)
			}
		}
		x := uniform(rng, n, -70000, 70000)
		got, want := make([]uint16, n+9), make([]uint16, n)
		for i := range got {
			got[i] = 0xbeef
		}
		f32(got[:n], x)
		f32ToF16Generic(want, x)
		require.Equal(t, want, got[:n], "F32ToF16 n=%d", n)
		for i := n; i < len(got); i++ {
			require.Equal(t, uint16(0xbeef), got[i], "F32ToF16 n=%d wrote past the end", n)
		}
	}
}

func TestVecConversionSizes(t *testing.T) {
	checkConversions(t, F16ToF32, F32ToF16, BF16ToF32)
}

func TestVecF32ToBF16(t *testing.T) {
	src := []float32{1, 1.00390625, 1.005859375, -3.25, float32(math.Inf(1)), float32(math.NaN()), 1e-40}
	got := make([]uint16, len(src))
	F32ToBF16(got, src)
	require.Equal(t, []uint16{0x3f80, 0x3f80, 0x3f81, 0xc050, 0x7f80}, got[:5])
	require.True(t, got[5]&0x7f80 == 0x7f80 && got[5]&0x7f != 0, "NaN stays NaN: %#04x", got[5])
}

// softmaxRows are the rows the softmax tests use: random, shifted far from 0,
// with a dominant element, constant, and with -Inf (masked) entries.
func softmaxRows(rng *rand.Rand) map[string][]float32 {
	rows := map[string][]float32{}
	for _, n := range vecSizes[1:] {
		rows[fmt.Sprintf("random/%d", n)] = uniform(rng, n, -20, 20)
		shifted := uniform(rng, n, 990, 1010)
		rows[fmt.Sprintf("shifted/%d", n)] = shifted
		masked := uniform(rng, n, -5, 5)
		for i := 0; i < n; i += 3 {
			masked[i] = float32(math.Inf(-1))
		}
		if n > 1 {
			rows[fmt.Sprintf("masked/%d", n)] = masked
		}
	}
	rows["constant"] = []float32{7, 7, 7, 7, 7, 7, 7, 7, 7}
	rows["dominant"] = []float32{0, 0, 200, 0, 0, 0, 0, 0, 0, 0, 0}
	return rows
}

// checkSoftmax compares f with the reference on softmaxRows; it returns the
// largest error in ulps.
func checkSoftmax(t *testing.T, f func([]float32)) int64 {
	rng := rand.New(rand.NewPCG(6, 7))
	var worst int64
	for name, row := range softmaxRows(rng) {
		want := append([]float32(nil), row...)
		softmaxGeneric(want)
		buf := make([]float32, len(row)+9)
		for i := range buf {
			buf[i] = vecSentinel
		}
		copy(buf, row)
		f(buf[:len(row)])
		var sum float64
		for i := range row {
			u := ulps(buf[i], want[i])
			require.True(t, within(buf[i], want[i], 4), "softmax %s [%d]: %g, want %g (%d ulps)", name, i, buf[i], want[i], u)
			if u > worst && want[i] >= 1e-37 {
				worst = u
			}
			sum += float64(buf[i])
		}
		require.InDelta(t, 1, sum, 1e-5, "softmax %s sums to %g", name, sum)
		for i := len(row); i < len(buf); i++ {
			require.Equal(t, vecSentinel, buf[i], "softmax %s wrote past the end", name)
		}
	}
	return worst
}

func TestVecSoftmax(t *testing.T) {
	t.Logf("softmax (%s): largest error %d ulps", Features(), checkSoftmax(t, Softmax))
	Softmax(nil)
}

func exactSums(x []float32) (sum, sq, abs float64) {
	for _, v := range x {
		sum += float64(v)
		sq += float64(v) * float64(v)
		abs += math.Abs(float64(v))
	}
	return
}

func checkSumSq(t *testing.T, f func([]float32) (float32, float32)) {
	rng := rand.New(rand.NewPCG(8, 9))
	for _, n := range vecSizes {
		for _, x := range [][]float32{uniform(rng, n, -1, 1), uniform(rng, n, 100, 101)} {
			s, q := f(x)
			es, eq, ea := exactSums(x)
			require.InDelta(t, es, float64(s), 1e-5*ea+1e-30, "sum n=%d", n)
			require.InDelta(t, eq, float64(q), 1e-5*eq+1e-30, "sum of squares n=%d", n)
		}
	}
	s, q := f(nil)
	require.Equal(t, float32(0), s)
	require.Equal(t, float32(0), q)
}

func TestVecSumSq(t *testing.T) { checkSumSq(t, SumSq) }

func checkDot(t *testing.T, f func(x, y []float32) float32) {
	rng := rand.New(rand.NewPCG(10, 11))
	for _, n := range vecSizes {
		x, y := uniform(rng, n, -1, 1), uniform(rng, n+3, -1, 1)
		var exact, abs float64
		for i := range x {
			exact += float64(x[i]) * float64(y[i])
			abs += math.Abs(float64(x[i]) * float64(y[i]))
		}
		require.InDelta(t, exact, float64(f(x, y[:n])), 1e-5*abs+1e-30, "dot n=%d", n)
	}
}

func TestVecDot(t *testing.T) { checkDot(t, Dot) }

func checkMax(t *testing.T, f func([]float32) float32) {
	rng := rand.New(rand.NewPCG(12, 13))
	for _, n := range vecSizes[1:] {
		for _, x := range [][]float32{uniform(rng, n, -1, 1), uniform(rng, n, -100, -50)} {
			require.Equal(t, maxGeneric(x), f(x), "max n=%d", n)
			// the maximum in each position, the tail included
			for _, i := range []int{0, n / 2, n - 1} {
				y := append([]float32(nil), x...)
				y[i] = 1000
				require.Equal(t, float32(1000), f(y), "max n=%d at %d", n, i)
			}
		}
	}
	require.Equal(t, float32(math.Inf(-1)), f([]float32{float32(math.Inf(-1))}))
	require.Equal(t, float32(-3), f([]float32{-3, -4, -5}))
}

func TestVecMax(t *testing.T) {
	checkMax(t, Max)
	require.True(t, math.IsInf(float64(Max(nil)), -1))
}

// affineBound is the FMA-versus-separate-rounding bound 2^-23·(|p| + |a|).
func affineBound(p, a float32) float64 {
	return math.Ldexp(math.Abs(float64(p))+math.Abs(float64(a)), -23)
}

type vecAffine struct {
	scaleShift     func(dst, src []float32, scale, shift float32)
	scaleShiftSiLU func(dst, src []float32, scale, shift float32)
	normalize      func(dst, src, gamma, beta []float32, mean, invStd float32)
	axpy           func(alpha float32, x, y []float32)
	add, mul       func(dst, a, b []float32)
}

func checkAffine(t *testing.T, k vecAffine) {
	rng := rand.New(rand.NewPCG(14, 15))
	sentinel := func(n int) []float32 {
		s := make([]float32, n+9)
		for i := range s {
			s[i] = vecSentinel
		}
		return s
	}
	past := func(name string, s []float32, n int) {
		for i := n; i < len(s); i++ {
			require.Equal(t, vecSentinel, s[i], "%s n=%d wrote past the end", name, n)
		}
	}
	for _, n := range vecSizes {
		x, g, b := uniform(rng, n, -3, 3), uniform(rng, n, 0.5, 1.5), uniform(rng, n, -1, 1)
		scale, shift := float32(1.37), float32(-0.61)

		got, want := sentinel(n), make([]float32, n)
		k.scaleShift(got[:n], x, scale, shift)
		scaleShiftGeneric(want, x, scale, shift)
		past("scaleShift", got, n)
		for i := range want {
			require.InDelta(t, want[i], got[i], affineBound(x[i]*scale, shift), "scaleShift n=%d i=%d", n, i)
		}

		got = sentinel(n)
		k.scaleShiftSiLU(got[:n], x, scale, shift)
		scaleShiftSiLUGeneric(want, x, scale, shift)
		past("scaleShiftSiLU", got, n)
		for i := range want {
			// the input differs by at most the affine bound; silu' < 1.1
			tol := 1.1 * affineBound(x[i]*scale, shift)
			require.True(t, within(got[i], want[i], 4) || math.Abs(float64(got[i]-want[i])) <= tol+math.Ldexp(math.Abs(float64(want[i])), -21),
				"scaleShiftSiLU n=%d i=%d: %g, want %g", n, i, got[i], want[i])
		}

		mean, inv := float32(0.25), float32(1.7)
		got = sentinel(n)
		k.normalize(got[:n], x, g, b, mean, inv)
		normalizeGeneric(want, x, g, b, mean, inv)
		past("normalize", got, n)
		for i := range want {
			require.InDelta(t, want[i], got[i], affineBound((x[i]-mean)*inv*g[i], b[i]), "normalize n=%d i=%d", n, i)
		}

		y := sentinel(n)
		copy(y, b)
		k.axpy(-0.7, x, y[:n])
		copy(want, b)
		axpyGeneric(-0.7, x, want)
		past("axpy", y, n)
		for i := range want {
			require.InDelta(t, want[i], y[i], affineBound(-0.7*x[i], b[i]), "axpy n=%d i=%d", n, i)
		}

		for _, op := range []struct {
			name   string
			f, ref func(dst, a, b []float32)
		}{{"add", k.add, addGeneric}, {"mul", k.mul, mulGeneric}} {
			got = sentinel(n)
			op.f(got[:n], x, g)
			op.ref(want, x, g)
			past(op.name, got, n)
			for i := range want {
				require.Equal(t, math.Float32bits(want[i]), math.Float32bits(got[i]), "%s n=%d i=%d", op.name, n, i)
			}
			a := append([]float32(nil), x...)
			op.f(a, a, g)
			for i := range want {
				require.Equal(t, math.Float32bits(want[i]), math.Float32bits(a[i]), "%s in place n=%d i=%d", op.name, n, i)
			}
		}
	}
}

func TestVecAffineAndBLAS1(t *testing.T) {
	checkAffine(t, vecAffine{ScaleShift, ScaleShiftSiLU, Normalize, Axpy, Add, Mul})
	// Scale is ScaleShift with a zero shift: exact products.
	x := []float32{1, 2.5, -3, 1e-3, 7, 8, 9, 10, 11}
	got := make([]float32, len(x))
	Scale(got, x, 0.1)
	for i := range x {
		require.Equal(t, x[i]*0.1, got[i])
	}
}

func TestVecPanicsOnShortDst(t *testing.T) {
	src := make([]float32, 9)
	short := make([]float32, 8)
	require.Panics(t, func() { Exp(short, src) })
	require.Panics(t, func() { SiLU(short, src) })
	require.Panics(t, func() { GELU(short, src) })
	require.Panics(t, func() { F16ToF32(short, make([]uint16, 9)) })
	require.Panics(t, func() { F32ToF16(make([]uint16, 8), src) })
	require.Panics(t, func() { Add(src, src, short) })
	require.Panics(t, func() { Normalize(src, src, short, src, 0, 1) })
	require.Panics(t, func() { Axpy(1, src, short) })
	require.Panics(t, func() { Dot(src, short) })
}

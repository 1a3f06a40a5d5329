package tensortest

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/x448/float16"
)

// The reference conversions agree with github.com/x448/float16 (half precision)
// and with the bit-level definition of bfloat16 rounding.

func TestF16ValuesAllPatterns(t *testing.T) {
	for h := range 1 << 16 {
		got := F16Values([]uint16{uint16(h)})[0]
		want := float16.Frombits(uint16(h)).Float32()
		if math.IsNaN(float64(want)) {
			if !math.IsNaN(float64(got)) {
				t.Fatalf("%#04x: got %g, want NaN", h, got)
			}
			continue
		}
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("%#04x: got %g, want %g", h, got, want)
		}
	}
}

func TestBF16ValuesAllPatterns(t *testing.T) {
	for h := range 1 << 16 {
		got := BF16Values([]uint16{uint16(h)})[0]
		want := math.Float32frombits(uint32(h) << 16)
		if math.IsNaN(float64(want)) {
			if !math.IsNaN(float64(got)) {
				t.Fatalf("%#04x: got %g, want NaN", h, got)
			}
			continue
		}
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("%#04x: got %g, want %g", h, got, want)
		}
	}
}

// specials are values at the edges of the 16-bit formats: ties, subnormals,
// overflow thresholds.
func specials() []float32 {
	return []float32{
		0, float32(math.Copysign(0, -1)), 1, -1, 0.1, 1.0 / 3,
		65504, 65519.99, 65520, 65536, -65520, 1e10,
		float32(math.Ldexp(1, -14)), float32(math.Ldexp(1, -24)), float32(math.Ldexp(1, -25)),
		float32(math.Ldexp(3, -26)), float32(math.Ldexp(1, -26)),
		1 + float32(math.Ldexp(1, -11)), 1 + float32(math.Ldexp(3, -11)),
		1 + float32(math.Ldexp(1, -8)), 1 + float32(math.Ldexp(3, -8)),
		math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32,
		float32(math.Inf(1)), float32(math.Inf(-1)),
		math.Float32frombits(0x7f7f8000), math.Float32frombits(0x7f7fffff),
		math.Float32frombits(0x00018000),
	}
}

func TestF16BitsMatchesFloat16Package(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	xs := specials()
	for range 200000 {
		xs = append(xs, math.Float32frombits(rng.Uint32()))
	}
	for _, x := range xs {
		got := F16Bits([]float32{x})[0]
		want := float16.Fromfloat32(x).Bits()
		if math.IsNaN(float64(x)) {
			if got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
				t.Fatalf("%g: got %#04x, want a NaN", x, got)
			}
			continue
		}
		if got != want {
			t.Fatalf("%g (%#08x): got %#04x, want %#04x", x, math.Float32bits(x), got, want)
		}
	}
}

func TestBF16BitsRoundsToNearestEven(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	xs := specials()
	for range 200000 {
		xs = append(xs, math.Float32frombits(rng.Uint32()))
	}
	for _, x := range xs {
		got := BF16Bits([]float32{x})[0]
		b := math.Float32bits(x)
		if math.IsNaN(float64(x)) {
			if got&0x7f80 != 0x7f80 || got&0x7f == 0 {
				t.Fatalf("%g: got %#04x, want a NaN", x, got)
			}
			continue
		}
		want := uint16((b + 0x7fff + (b>>16)&1) >> 16)
		if got != want {
			t.Fatalf("%g (%#08x): got %#04x, want %#04x", x, b, got, want)
		}
	}
}

func TestCloseReportsWorst(t *testing.T) {
	want := []float32{1, 2, 3, 4}
	if err := Close(want, []float32{1, 2, 3, 4}, 0, 0); err != nil {
		t.Fatal(err)
	}
	err := Close(want, []float32{1, 2.5, 3, 4.01}, 1e-3, 0)
	if err == nil {
		t.Fatal("no error")
	}
	const msg = "2 of 4 values differ (rtol 0.001, atol 0); worst at index 1: got 2.5, want 2"
	if got := err.Error(); len(got) < len(msg) || got[:len(msg)] != msg {
		t.Fatalf("message %q", got)
	}
	nan := float32(math.NaN())
	if err := Close([]float32{nan}, []float32{nan}, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := Close([]float32{nan}, []float32{0}, 0, 0); err == nil {
		t.Fatal("NaN matched 0")
	}
}

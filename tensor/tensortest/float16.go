package tensortest

import "math"

// Reference conversions between float32 and the 16-bit formats, written from the
// definition of the formats (sign, biased exponent, fraction) with float64
// arithmetic, independently of the bit tricks the kernels use.

// format describes a binary floating-point format narrower than float32.
type format struct {
	mant int // fraction bits
	bias int // exponent bias; the least normal exponent is 1−bias
	emax int // the greatest finite exponent
}

var (
	half     = format{mant: 10, bias: 15, emax: 15}
	bfloat16 = format{mant: 7, bias: 127, emax: 127}
)

// encode rounds f to the nearest value of the format (ties to even) and returns
// its bits; overflow gives ±Inf and NaN a quiet NaN.
func (ft format) encode(f float32) uint16 {
	x := float64(f)
	var sign uint16
	if math.Signbit(x) {
		sign = 1 << 15
		x = -x
	}
	expMask := uint16(2*ft.bias+1) << ft.mant
	switch {
	case math.IsNaN(x):
		return sign | expMask | 1<<(ft.mant-1)
	case math.IsInf(x, 0):
		return sign | expMask
	case x == 0:
		return sign
	}
	_, e := math.Frexp(x) // x = frac·2^e, frac in [0.5, 1): x's exponent is e−1
	e = max(e-1, 1-ft.bias)
	ulp := math.Ldexp(1, e-ft.mant)
	v := math.RoundToEven(x/ulp) * ulp
	if v >= math.Ldexp(1, ft.emax+1) {
		return sign | expMask
	}
	if v < math.Ldexp(1, 1-ft.bias) { // subnormal (or zero): the fraction is v/ulp
		return sign | uint16(v/math.Ldexp(1, 1-ft.bias-ft.mant))
	}
	_, e = math.Frexp(v)
	e--
	frac := uint16(math.Ldexp(v, -e)*math.Ldexp(1, ft.mant)) - 1<<ft.mant
	return sign | uint16(e+ft.bias)<<ft.mant | frac
}

// decode returns the value of the bits h.
func (ft format) decode(h uint16) float32 {
	sign := 1.0
	if h&(1<<15) != 0 {
		sign = -1
	}
	e := int(h>>ft.mant) & (2*ft.bias + 1)
	frac := float64(h & (1<<ft.mant - 1))
	switch e {
	case 2*ft.bias + 1:
		if frac != 0 {
			return float32(math.NaN())
		}
		return float32(math.Inf(int(sign)))
	case 0:
		return float32(sign * math.Ldexp(frac, 1-ft.bias-ft.mant))
	}
	return float32(sign * math.Ldexp(1+math.Ldexp(frac, -ft.mant), e-ft.bias))
}

// F16Bits rounds each value to IEEE half precision (nearest, ties to even;
// overflow to ±Inf) and returns the bit patterns.
func F16Bits(x []float32) []uint16 { return encodeAll(half, x) }

// F16Values returns the values of IEEE half-precision bit patterns.
func F16Values(h []uint16) []float32 { return decodeAll(half, h) }

// BF16Bits rounds each value to bfloat16 (nearest, ties to even; overflow to
// ±Inf) and returns the bit patterns.
func BF16Bits(x []float32) []uint16 { return encodeAll(bfloat16, x) }

// BF16Values returns the values of bfloat16 bit patterns.
func BF16Values(h []uint16) []float32 { return decodeAll(bfloat16, h) }

// RoundF16 returns each value rounded to the nearest half-precision value.
func RoundF16(x []float32) []float32 { return F16Values(F16Bits(x)) }

// RoundBF16 returns each value rounded to the nearest bfloat16 value.
func RoundBF16(x []float32) []float32 { return BF16Values(BF16Bits(x)) }

func encodeAll(ft format, x []float32) []uint16 {
	out := make([]uint16, len(x))
	for i, v := range x {
		out[i] = ft.encode(v)
	}
	return out
}

func decodeAll(ft format, h []uint16) []float32 {
	out := make([]float32, len(h))
	for i, v := range h {
		out[i] = ft.decode(v)
	}
	return out
}

package tensor

import (
	"math"
)

// ExponentTerms returns the float32 constants of the frequency exponents of an
// embedding of dim features: exponent i is c·float32(i)/d, a float32 product
// and then a float32 quotient, each rounded, with c = float32(−ln 10000) and
// d = float32(dim/2 − FreqShift). A backend that computes the frequencies
// itself starts from these so that its exponents are the CPU's bit for bit.
func (p TimestepEmbeddingParams) ExponentTerms(dim int) (c, d float32) {
	return float32(-math.Log(10000)), float32(float64(dim/2) - p.FreqShift)
}

// Frequencies returns the dim/2 frequencies of an embedding of dim features as
// the CPU backend computes them: float32(exp(float64(exponent i))), the
// exponents as ExponentTerms says.
func (p TimestepEmbeddingParams) Frequencies(dim int) []float32 {
	c, d := p.ExponentTerms(dim)
	f := make([]float32, max(dim/2, 0))
	for i := range f {
		e := c * float32(i) / d
		f[i] = float32(math.Exp(float64(e)))
	}
	return f
}

// TimestepEmbedding returns the sinusoidal embedding of the timesteps t [N]
// (any dtype, widened to F32) as an F32 tensor [N,dim], as diffusers'
// get_timestep_embedding computes it: with half = dim/2 and frequency
// f[i] = exp(−ln(10000)·i/(half − p.FreqShift)), row n is
// [sin(t[n]·f), cos(t[n]·f)], or [cos, sin] when p.FlipSinToCos, followed by a
// zero column when dim is odd. dim must be at least 2, and half − p.FreqShift
// must not be 0 (every frequency would be NaN).
func TimestepEmbedding(t *Tensor, dim int, p TimestepEmbeddingParams) (*Tensor, error) {
	const op = "TimestepEmbedding"
	checkLive(op, t)
	if t.Rank() != 1 {
		return nil, shapeErr(op, "timesteps %v (want [N])", t)
	}
	if dim < 2 {
		return nil, rangeErr(op, "an embedding of %d features (want at least 2)", dim)
	}
	if _, d := p.ExponentTerms(dim); d == 0 || d != d {
		return nil, rangeErr(op, "frequency shift %g for %d features: the exponents' divisor %d − %g is %g",
			p.FreqShift, dim, dim/2, p.FreqShift, d)
	}
	shape := []int{t.shape[0], dim}
	if err := checkShape(op, shape); err != nil {
		return nil, err
	}
	tc, err := asF32(t, true)
	if err != nil {
		return nil, err
	}
	defer tc.Release()
	out, err := New(t.Backend(), F32, shape...)
	if err != nil {
		return nil, err
	}
	if err := t.Backend().TimestepEmbedding(out, tc, p); err != nil {
		out.Release()
		return nil, backendFailed(op, err, t)
	}
	return out, nil
}

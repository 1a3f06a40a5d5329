package sched

import "math"

// betaInc is the regularized incomplete beta function I_x(a, b), evaluated with
// the continued fraction for I_x (modified Lentz), using the symmetry
// I_x(a, b) = 1 - I_{1-x}(b, a) where the fraction converges faster.
func betaInc(x, a, b float64) float64 {
	switch {
	case x <= 0:
		return 0
	case x >= 1:
		return 1
	}
	if x > (a+1)/(a+b+2) {
		return 1 - betaInc(1-x, b, a)
	}
	lbeta := lgamma(a+b) - lgamma(a) - lgamma(b)
	front := math.Exp(lbeta+a*math.Log(x)+b*math.Log1p(-x)) / a
	return front * betaContinuedFraction(x, a, b)
}

func lgamma(x float64) float64 {
	v, _ := math.Lgamma(x)
	return v
}

// betaContinuedFraction evaluates 1/(1+ d1/(1+ d2/(1+ ...))) with
// d_{2m+1} = -(a+m)(a+b+m)x / ((a+2m)(a+2m+1)) and d_{2m} = m(b-m)x / ((a+2m-1)(a+2m)).
func betaContinuedFraction(x, a, b float64) float64 {
	const tiny = 1e-300
	c, d := 1.0, 1-(a+b)*x/(a+1)
	if math.Abs(d) < tiny {
		d = tiny
	}
	d = 1 / d
	f := d
	for m := 1; m <= 10000; m++ {
		fm := float64(m)
		// even term
		num := fm * (b - fm) * x / ((a + 2*fm - 1) * (a + 2*fm))
		d = 1 + num*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + num/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		f *= d * c
		// odd term
		num = -(a + fm) * (a + b + fm) * x / ((a + 2*fm) * (a + 2*fm + 1))
		d = 1 + num*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + num/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		delta := d * c
		f *= delta
		if math.Abs(delta-1) < 1e-16 {
			break
		}
	}
	return f
}

// betaPPF is the quantile function of the Beta(a, b) distribution
// (scipy.stats.beta.ppf): the x in [0, 1] with I_x(a, b) = q. Bisection brackets
// the root and Newton steps on the density polish it to float64 precision.
func betaPPF(q, a, b float64) float64 {
	switch {
	case q <= 0:
		return 0
	case q >= 1:
		return 1
	}
	lbeta := lgamma(a+b) - lgamma(a) - lgamma(b)
	lo, hi := 0.0, 1.0
	x := 0.5
	for i := 0; i < 200; i++ {
		f := betaInc(x, a, b) - q
		if f == 0 {
			return x
		}
		if f < 0 {
			lo = x
		} else {
			hi = x
		}
		// Newton step from x; fall back to bisection when it leaves the bracket.
		pdf := math.Exp(lbeta + (a-1)*math.Log(x) + (b-1)*math.Log1p(-x))
		next := x - f/pdf
		if !(next > lo && next < hi) {
			next = (lo + hi) / 2
		}
		if math.Abs(next-x) <= 1e-17*math.Max(1, math.Abs(x)) || hi-lo <= 2e-16*math.Max(1e-300, x) {
			return next
		}
		x = next
	}
	return x
}

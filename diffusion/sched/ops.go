package sched

import (
	"fmt"
	"math"
	"slices"
)

// lerp32 is torch.lerp on float32: start + w*(end-start) for w < 0.5, else
// end - (end-start)*(1-w).
func lerp32(start, end, w float32) float32 {
	if w < 0.5 {
		return start + w*(end-start)
	}
	return end - (end-start)*(1-w)
}

// quantile32 is torch.quantile(v, q) with linear interpolation, on a copy.
func quantile32(v []float32, q float32) float32 {
	s := slices.Clone(v)
	slices.Sort(s)
	rank := q * float32(len(s)-1)
	below := int(rank)
	above := int(float32(math.Ceil(float64(rank))))
	w := rank - float32(below)
	return lerp32(s[below], s[above], w)
}

// thresholdSample is diffusers' dynamic thresholding (Imagen): per image, s is
// the ratio-quantile of |x| clamped to [1, maxValue], and x becomes
// clamp(x, -s, s) / s.
func thresholdSample(class string, x []float32, batch int, ratio, maxValue float64) ([]float32, error) {
	if batch < 1 || len(x)%batch != 0 {
		return nil, fmt.Errorf("sched: %s: %d values do not split into %d images for thresholding", class, len(x), batch)
	}
	out := make([]float32, len(x))
	per := len(x) / batch
	abs := make([]float32, per)
	for b := 0; b < batch; b++ {
		img := x[b*per : (b+1)*per]
		for i, v := range img {
			abs[i] = float32(math.Abs(float64(v)))
		}
		s := quantile32(abs, float32(ratio))
		s = min(max(s, 1), float32(maxValue))
		for i, v := range img {
			out[b*per+i] = min(max(v, -s), s) / s
		}
	}
	return out, nil
}

// threshold is dynamic thresholding of the expression x: it is not
// elementwise (a quantile per image), so it runs on the host. The result is a
// new Vec.
func (b *base) threshold(x Expr) (Vec, error) {
	v, err := b.eval(x)
	if err != nil {
		return nil, err
	}
	h, err := b.arith.ToHost(v)
	b.free(v)
	if err != nil {
		return nil, err
	}
	c := &b.cfg
	out, err := thresholdSample(b.class, h, b.batch, c.DynamicThresholdingRatio, c.SampleMaxValue)
	if err != nil {
		return nil, err
	}
	return b.arith.FromHost(out)
}

// alphaPredictions converts a model output at a training timestep with
// alpha_prod_t = a into (pred_original_sample, pred_epsilon), as DDIM, DDPM,
// LCM and TCD do.
func alphaPredictions(class, prediction string, a float32, sample, out Vec) (x0, eps Expr, err error) {
	b := 1 - a
	sa, sb := sqrt32(a), sqrt32(b)
	switch prediction {
	case "epsilon":
		x0 = V(sample).Sub(C(sb).Mul(V(out))).Div(C(sa))
		eps = V(out)
	case "sample":
		x0 = V(out)
		eps = V(sample).Sub(C(sa).Mul(V(out))).Div(C(sb))
	case "v_prediction":
		x0 = C(sa).Mul(V(sample)).Sub(C(sb).Mul(V(out)))
		eps = C(sa).Mul(V(out)).Add(C(sb).Mul(V(sample)))
	default:
		return Expr{}, Expr{}, fmt.Errorf("sched: %s: prediction_type %q is not one of epsilon, sample, v_prediction", class, prediction)
	}
	return x0, eps, nil
}

// clipOrThreshold applies the thresholding or clip_sample option to a
// predicted x0; a thresholded x0 is a Vec that tmp frees.
func (b *base) clipOrThreshold(x0 Expr, tmp *scratch) (Expr, error) {
	c := &b.cfg
	if c.Thresholding {
		v, err := b.threshold(x0)
		if err != nil {
			return Expr{}, err
		}
		return V(tmp.add(v)), nil
	}
	if c.ClipSample {
		return clampRange(x0, c.ClipSampleRange), nil
	}
	return x0, nil
}

// clampRange is x clamped to [-r, r].
func clampRange(x Expr, r float64) Expr { return x.Clamp(float32(-r), float32(r)) }

// alphaAddNoise is add_noise of the alpha-indexed classes:
// sqrt(alpha_prod) * x0 + sqrt(1 - alpha_prod) * noise at training timestep t.
func (b *base) alphaAddNoise(x0, noise Vec, t float64) (Vec, error) {
	if err := checkLen(b.class, x0, "noise", noise); err != nil {
		return nil, err
	}
	ti, err := b.trainIndex(t)
	if err != nil {
		return nil, err
	}
	a := b.train.alphasCumprod[ti]
	sa, sb := sqrt32(a), sqrt32(1-a)
	return b.eval(C(sa).Mul(V(x0)).Add(C(sb).Mul(V(noise))))
}

// sigmaAddNoise is add_noise of the Euler family: x0 + noise * sigma.
func (b *base) sigmaAddNoise(x0, noise Vec, t float64) (Vec, error) {
	if b.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := checkLen(b.class, x0, "noise", noise); err != nil {
		return nil, err
	}
	idx, err := b.addNoiseIndex(t, false)
	if err != nil {
		return nil, err
	}
	sigma, err := b.sigmaAt(idx)
	if err != nil {
		return nil, err
	}
	return b.eval(V(x0).Add(V(noise).Mul(C(sigma))))
}

// scaleBySigma returns sample / sqrt(sigma^2 + 1).
func (b *base) scaleBySigma(sample Vec, sigma float32) (Vec, error) {
	if err := checkLen(b.class, sample); err != nil {
		return nil, err
	}
	d := sqrt32(sigma*sigma + 1)
	return b.eval(V(sample).Div(C(d)))
}

// identityInput is the model input of the classes that do not scale it: a
// copy of the sample.
func (b *base) identityInput(sample Vec) (Vec, error) {
	if err := checkLen(b.class, sample); err != nil {
		return nil, err
	}
	return b.copyVec(sample)
}

// sigmaX0 is the Euler family's pred_original_sample at noise level sigma.
func sigmaX0(class, prediction string, sigma float32, sample, out Vec) (Expr, error) {
	switch prediction {
	case "epsilon":
		return V(sample).Sub(C(sigma).Mul(V(out))), nil
	case "v_prediction":
		s2 := sigma*sigma + 1
		c := -sigma / sqrt32(s2)
		return V(out).Mul(C(c)).Add(V(sample).Div(C(s2))), nil
	case "sample":
		return V(out), nil
	default:
		return Expr{}, fmt.Errorf("sched: %s: prediction_type %q is not one of epsilon, v_prediction, sample", class, prediction)
	}
}

// eulerUpdate is sample + (sample - x0)/sigma * dt, the Euler step from
// start with the derivative at sample.
func eulerUpdate(start, sample Vec, x0 Expr, sigma, dt float32) Expr {
	return V(start).Add(V(sample).Sub(x0).Div(C(sigma)).Mul(C(dt)))
}

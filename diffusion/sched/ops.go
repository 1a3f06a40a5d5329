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

// clamp32 clamps every element to [-r, r] in place.
func clamp32(x []float32, r float64) {
	lo, hi := float32(-r), float32(r)
	for i, v := range x {
		x[i] = min(max(v, lo), hi)
	}
}

// alphaPredictions converts a model output at a training timestep with
// alpha_prod_t = a into (pred_original_sample, pred_epsilon), as DDIM, DDPM,
// LCM and TCD do.
func alphaPredictions(class, prediction string, a float32, sample, out []float32) (x0, eps []float32, err error) {
	b := 1 - a
	sa, sb := sqrt32(a), sqrt32(b)
	x0 = make([]float32, len(sample))
	eps = make([]float32, len(sample))
	switch prediction {
	case "epsilon":
		for i := range x0 {
			x0[i] = (sample[i] - sb*out[i]) / sa
			eps[i] = out[i]
		}
	case "sample":
		for i := range x0 {
			x0[i] = out[i]
			eps[i] = (sample[i] - sa*out[i]) / sb
		}
	case "v_prediction":
		for i := range x0 {
			x0[i] = sa*sample[i] - sb*out[i]
			eps[i] = sa*out[i] + sb*sample[i]
		}
	default:
		return nil, nil, fmt.Errorf("sched: %s: prediction_type %q is not one of epsilon, sample, v_prediction", class, prediction)
	}
	return x0, eps, nil
}

// clipOrThreshold applies the thresholding or clip_sample option to a predicted x0.
func (b *base) clipOrThreshold(x0 []float32) ([]float32, error) {
	c := &b.cfg
	if c.Thresholding {
		return thresholdSample(b.class, x0, b.batch, c.DynamicThresholdingRatio, c.SampleMaxValue)
	}
	if c.ClipSample {
		clamp32(x0, c.ClipSampleRange)
	}
	return x0, nil
}

// alphaAddNoise is add_noise of the alpha-indexed classes:
// sqrt(alpha_prod) * x0 + sqrt(1 - alpha_prod) * noise at training timestep t.
func (b *base) alphaAddNoise(x0, noise []float32, t float64) ([]float32, error) {
	if err := checkLen(b.class, len(x0), "noise", noise); err != nil {
		return nil, err
	}
	ti, err := b.trainIndex(t)
	if err != nil {
		return nil, err
	}
	a := b.train.alphasCumprod[ti]
	sa, sb := sqrt32(a), sqrt32(1-a)
	out := make([]float32, len(x0))
	for i := range out {
		out[i] = sa*x0[i] + sb*noise[i]
	}
	return out, nil
}

// sigmaAddNoise is add_noise of the Euler family: x0 + noise * sigma.
func (b *base) sigmaAddNoise(x0, noise []float32, t float64) ([]float32, error) {
	if b.numSteps == 0 {
		return nil, ErrNotSet
	}
	if err := checkLen(b.class, len(x0), "noise", noise); err != nil {
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
	out := make([]float32, len(x0))
	for i := range out {
		out[i] = x0[i] + noise[i]*sigma
	}
	return out, nil
}

// scaleBySigma returns sample / sqrt(sigma^2 + 1).
func scaleBySigma(sample []float32, sigma float32) []float32 {
	d := sqrt32(sigma*sigma + 1)
	out := make([]float32, len(sample))
	for i, v := range sample {
		out[i] = v / d
	}
	return out
}

// sigmaX0 is the Euler family's pred_original_sample at noise level sigma.
func sigmaX0(class, prediction string, sigma float32, sample, out []float32) ([]float32, error) {
	x0 := make([]float32, len(sample))
	switch prediction {
	case "epsilon":
		for i := range x0 {
			x0[i] = sample[i] - sigma*out[i]
		}
	case "v_prediction":
		s2 := sigma*sigma + 1
		c := -sigma / sqrt32(s2)
		for i := range x0 {
			x0[i] = out[i]*c + sample[i]/s2
		}
	case "sample":
		copy(x0, out)
	default:
		return nil, fmt.Errorf("sched: %s: prediction_type %q is not one of epsilon, v_prediction, sample", class, prediction)
	}
	return x0, nil
}

package sched

import (
	"math"
)

// This file mirrors, operation by operation, the numpy and torch routines
// diffusers builds its schedules with, in the precision each one computes in:
// numpy in float64 (or float32 for float32 arrays), torch tensors in float32.
// Go rounds every float32 operation to float32, as torch does on the CPU.

// torchLinspace32 is torch.linspace(start, end, steps, dtype=torch.float32) on
// the CPU: the first half counts up from start, the second half down from end,
// each element one fused multiply-add of the float32 step (the compiled kernel
// contracts start + step*i). This reproduces torch's betas bit for bit.
func torchLinspace32(start, end float64, steps int) []float32 {
	out := make([]float32, steps)
	if steps == 0 {
		return out
	}
	s, e := float32(start), float32(end)
	if steps == 1 {
		out[0] = s
		return out
	}
	step := (e - s) / float32(steps-1)
	halfway := steps / 2
	for i := range out {
		if i < halfway {
			out[i] = fma32(step, float32(i), s)
		} else {
			out[i] = fma32(-step, float32(steps-i-1), e)
		}
	}
	return out
}

// npLinspace is numpy.linspace(start, stop, num) (endpoint included), float64.
func npLinspace(start, stop float64, num int) []float64 {
	out := make([]float64, num)
	if num == 0 {
		return out
	}
	div := num - 1
	delta := stop - start
	if div == 0 {
		out[0] = start
		return out
	}
	step := delta / float64(div)
	for i := range out {
		if step == 0 {
			out[i] = float64(i)/float64(div)*delta + start
		} else {
			out[i] = float64(i)*step + start
		}
	}
	out[num-1] = stop
	return out
}

// npLinspaceOpen is numpy.linspace(start, stop, num, endpoint=False), float64.
func npLinspaceOpen(start, stop float64, num int) []float64 {
	out := make([]float64, num)
	if num == 0 {
		return out
	}
	delta := stop - start
	step := delta / float64(num)
	for i := range out {
		if step == 0 {
			out[i] = float64(i)/float64(num)*delta + start
		} else {
			out[i] = float64(i)*step + start
		}
	}
	return out
}

// npArange is numpy.arange(start, stop, step) for float64 arguments: the length
// is ceil((stop-start)/step) and element i is start + i*((start+step)-start).
func npArange(start, stop, step float64) []float64 {
	n := math.Ceil((stop - start) / step)
	if !(n > 0) {
		return nil
	}
	out := make([]float64, int(n))
	out[0] = start
	if len(out) > 1 {
		out[1] = start + step
		delta := out[1] - start
		for i := 2; i < len(out); i++ {
			out[i] = start + float64(i)*delta
		}
	}
	return out
}

// npInterp is numpy.interp(x, xp, fp) for increasing xp, in float64.
func npInterp(x float64, xp, fp []float64) float64 {
	n := len(xp)
	switch {
	case math.IsNaN(x):
		return x
	case x < xp[0]:
		return fp[0]
	case x > xp[n-1]:
		return fp[n-1]
	}
	// j such that xp[j] <= x < xp[j+1], or j = n-1 when x == xp[n-1].
	lo, hi := 0, n
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if xp[mid] <= x {
			lo = mid
		} else {
			hi = mid
		}
	}
	j := lo
	if j == n-1 {
		return fp[j]
	}
	if x == xp[j] {
		return fp[j]
	}
	slope := (fp[j+1] - fp[j]) / (xp[j+1] - xp[j])
	r := slope*(x-xp[j]) + fp[j]
	if math.IsNaN(r) {
		r = slope*(x-xp[j+1]) + fp[j+1]
		if math.IsNaN(r) && fp[j] == fp[j+1] {
			r = fp[j]
		}
	}
	return r
}

// interpSigmas is np.interp(timesteps, np.arange(len(sigmas)), sigmas).
func interpSigmas(timesteps []float64, sigmas []float32) []float64 {
	xp := make([]float64, len(sigmas))
	fp := make([]float64, len(sigmas))
	for i, s := range sigmas {
		xp[i], fp[i] = float64(i), float64(s)
	}
	out := make([]float64, len(timesteps))
	for i, t := range timesteps {
		out[i] = npInterp(t, xp, fp)
	}
	return out
}

func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }
func log32(x float32) float32  { return float32(math.Log(float64(x))) }
func exp32(x float32) float32  { return float32(math.Exp(float64(x))) }

// expm132 is torch.expm1 on a float32.
func expm132(x float32) float32 { return float32(math.Expm1(float64(x))) }

// toF32 casts a float64 slice to float32 (numpy astype(np.float32)).
func toF32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// toF64 widens a float32 slice.
func toF64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// reversed returns a reversed copy.
func reversed[T any](v []T) []T {
	out := make([]T, len(v))
	for i, x := range v {
		out[len(v)-1-i] = x
	}
	return out
}

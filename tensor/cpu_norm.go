package tensor

import (
	"math"

	"github.com/sdgo/sdgo/kernels/asm"
)

// This file holds the CPU backend's normalisations and reductions: GroupNorm,
// LayerNorm and Moments.

// statBlock is the length of the blocks whose float32 sums are added in float64.
const statBlock = 4096

// stats returns the mean and the population variance of x (len(x) > 0). The sums
// are taken over blocks of statBlock elements with asm.SumSq and added in float64.
// When the mean is large against the spread, E[x²]−mean² would cancel away most of
// its digits, and a second pass sums the squares of x−mean instead; tmp
// (statBlock elements) holds the centred blocks.
func stats(x, tmp []float32) (mean, variance float64) {
	var s, q float64
	for i := 0; i < len(x); i += statBlock {
		a, b := asm.SumSq(x[i:min(i+statBlock, len(x))])
		s += float64(a)
		q += float64(b)
	}
	n := float64(len(x))
	mean = s / n
	variance = q/n - mean*mean
	if variance < mean*mean && !math.IsInf(mean, 0) && !math.IsNaN(mean) {
		m := float32(mean)
		s, q = 0, 0
		for i := 0; i < len(x); i += statBlock {
			blk := x[i:min(i+statBlock, len(x))]
			t := tmp[:len(blk)]
			asm.ScaleShift(t, blk, 1, -m)
			a, b := asm.SumSq(t)
			s += float64(a)
			q += float64(b)
		}
		d := s / n
		mean = float64(m) + d
		variance = q/n - d*d
	}
	return mean, max(variance, 0)
}

// paramF32 returns the elements of the parameter tensor p as float32: its own
// storage when p is contiguous F32, a widened copy otherwise. A nil p gives nil.
func paramF32(p *Tensor, s *CPUStorage) []float32 {
	if p == nil {
		return nil
	}
	n := p.Numel()
	if p.dtype == F32 && p.IsContiguous() {
		return s.F32[p.offset : p.offset+n]
	}
	out := make([]float32, n)
	d := &CPUStorage{cpu: s.cpu, dt: F32, F32: out}
	copyInto(d, 0, ContiguousStrides(p.shape), s, p.offset, p.strides, p.shape)
	return out
}

// GroupNorm normalises the contiguous F32 x [N,C,...] over groups of C/groups
// channels (statistics per sample and group), applies the per-channel gamma and
// beta ([C], any dtype), then SiLU if silu.
func (c *CPU) GroupNorm(dst, x, gamma, beta *Tensor, groups int, eps float32, silu bool) error {
	defer keepAlive(dst, x, gamma, beta)
	ss, err := c.storages("GroupNorm", dst, x, gamma, beta)
	if err != nil {
		return err
	}
	nb, ch := x.shape[0], x.shape[1]
	spatial := numel(x.shape[2:])
	if x.Numel() == 0 {
		return nil
	}
	cg := ch / groups
	blockLen := cg * spatial
	g, b := paramF32(gamma, ss[2]), paramF32(beta, ss[3])
	d, s := ss[0].F32[dst.offset:], ss[1].F32[x.offset:]
	kernel := asm.ScaleShift
	if silu {
		kernel = asm.ScaleShiftSiLU
	}
	asm.ParallelFor(nb*groups, rowGrain(2*blockLen), func(lo, hi int) {
		tmp := make([]float32, statBlock)
		for blk := lo; blk < hi; blk++ {
			o := blk * blockLen
			mean, variance := stats(s[o:o+blockLen], tmp)
			// torch's formula, in float32: y = x·sc + (β − sc·mean) with
			// sc = γ/√(var+ε). When the mean is large against the spread this
			// cancels digits (a group of one element gives β plus the rounding
			// of x·sc, not β), but then so does the reference, and computing it
			// the same way keeps the two within the same rounding.
			inv := float32(1 / math.Sqrt(variance+float64(eps)))
			m := float32(mean)
			c0 := (blk % groups) * cg
			for j := range cg {
				sc := inv
				if g != nil {
					sc *= g[c0+j]
				}
				var sh float32
				if b != nil {
					sh = b[c0+j]
				}
				sh = float32(float64(sh) - float64(sc)*float64(m))
				p := o + j*spatial
				kernel(d[p:p+spatial], s[p:p+spatial], sc, sh)
			}
		}
	})
	return nil
}

// LayerNorm normalises the contiguous F32 x over its last axis and applies gamma
// and beta (any dtype; nil means 1 and 0).
func (c *CPU) LayerNorm(dst, x, gamma, beta *Tensor, eps float32) error {
	defer keepAlive(dst, x, gamma, beta)
	ss, err := c.storages("LayerNorm", dst, x, gamma, beta)
	if err != nil {
		return err
	}
	n := x.Dim(-1)
	if x.Numel() == 0 {
		return nil
	}
	g, b := paramF32(gamma, ss[2]), paramF32(beta, ss[3])
	if g == nil {
		g = make([]float32, n)
		fillF32(g, 1)
	}
	if b == nil {
		b = make([]float32, n)
	}
	d, s := ss[0].F32[dst.offset:], ss[1].F32[x.offset:]
	asm.ParallelFor(x.Numel()/n, rowGrain(2*n), func(lo, hi int) {
		tmp := make([]float32, statBlock)
		for r := lo; r < hi; r++ {
			row := s[r*n : (r+1)*n]
			mean, variance := stats(row, tmp)
			inv := 1 / math.Sqrt(variance+float64(eps))
			asm.Normalize(d[r*n:(r+1)*n], row, g, b, float32(mean), float32(inv))
		}
	})
	return nil
}

// Moments sets mean and variance (population) of each row of the contiguous F32 x
// viewed as [rows, n], where rows is the number of elements of mean.
func (c *CPU) Moments(mean, variance, x *Tensor) error {
	defer keepAlive(mean, variance, x)
	ss, err := c.storages("Moments", mean, variance, x)
	if err != nil {
		return err
	}
	rows := mean.Numel()
	if rows == 0 {
		return nil
	}
	n := x.Numel() / rows
	m, v, s := ss[0].F32[mean.offset:], ss[1].F32[variance.offset:], ss[2].F32[x.offset:]
	if n == 0 {
		nan := float32(math.NaN())
		fillF32(m[:rows], nan)
		fillF32(v[:rows], nan)
		return nil
	}
	asm.ParallelFor(rows, rowGrain(n), func(lo, hi int) {
		tmp := make([]float32, statBlock)
		for r := lo; r < hi; r++ {
			mu, va := stats(s[r*n:(r+1)*n], tmp)
			m[r], v[r] = float32(mu), float32(va)
		}
	})
	return nil
}

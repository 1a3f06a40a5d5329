package tensortest

import "math"

// Attention returns softmax(q·kᵀ·scale)·v for every batch and head: q is
// [b,h,lq,d], k [b,h,lk,d], v [b,h,lk,dv], all contiguous; the result is
// [b,h,lq,dv]. Scores, softmax and sums are float64.
func Attention(q, k, v []float32, b, h, lq, lk, d, dv int, scale float64) []float32 {
	return attention(q, k, v, b, h, lq, lk, d, dv, scale, false)
}

// CausalAttention is Attention in which query i attends only to keys 0..i.
func CausalAttention(q, k, v []float32, b, h, lq, lk, d, dv int, scale float64) []float32 {
	return attention(q, k, v, b, h, lq, lk, d, dv, scale, true)
}

func attention(q, k, v []float32, b, h, lq, lk, d, dv int, scale float64, causal bool) []float32 {
	out := make([]float64, b*h*lq*dv)
	s := make([]float64, lk)
	for bh := range b * h {
		qh, kh, vh := q[bh*lq*d:], k[bh*lk*d:], v[bh*lk*dv:]
		oh := out[bh*lq*dv:]
		for i := range lq {
			n := lk
			if causal {
				n = min(lk, i+1)
			}
			m := math.Inf(-1)
			for j := range n {
				var dot float64
				for p := range d {
					dot += float64(qh[i*d+p]) * float64(kh[j*d+p])
				}
				s[j] = dot * scale
				m = max(m, s[j])
			}
			var sum float64
			for j := range n {
				s[j] = math.Exp(s[j] - m)
				sum += s[j]
			}
			for j := range n {
				p := s[j] / sum
				for c := range dv {
					oh[i*dv+c] += p * float64(vh[j*dv+c])
				}
			}
		}
	}
	return round(out)
}

package tensortest

// MatMul returns the product of a (m×k) and b (k×n), row-major, accumulated in
// float64.
func MatMul(a, b []float32, m, k, n int) []float32 {
	out := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				s += float64(a[i*k+p]) * float64(b[p*n+j])
			}
			out[i*n+j] = s
		}
	}
	return round(out)
}

// BatchMatMul returns batch products a[i] (m×k) · b[i] (k×n), one after another;
// with bShared, b is a single k×n matrix used by every product.
func BatchMatMul(a, b []float32, batch, m, k, n int, bShared bool) []float32 {
	out := make([]float32, 0, batch*m*n)
	for i := range batch {
		bi := b
		if !bShared {
			bi = b[i*k*n : (i+1)*k*n]
		}
		out = append(out, MatMul(a[i*m*k:(i+1)*m*k], bi, m, k, n)...)
	}
	return out
}

// Linear returns x·wᵀ + bias for x (rows×in) and w (out×in) as torch.nn.Linear
// stores it; bias ([out]) may be nil.
func Linear(x []float32, rows, in int, w []float32, out int, bias []float32) []float32 {
	res := make([]float64, rows*out)
	for r := range rows {
		for o := range out {
			var s float64
			if bias != nil {
				s = float64(bias[o])
			}
			for i := range in {
				s += float64(x[r*in+i]) * float64(w[o*in+i])
			}
			res[r*out+o] = s
		}
	}
	return round(res)
}

// Transpose returns the transpose of the rows×cols matrix x.
func Transpose(x []float32, rows, cols int) []float32 {
	out := make([]float32, len(x))
	for i := range rows {
		for j := range cols {
			out[j*rows+i] = x[i*cols+j]
		}
	}
	return out
}

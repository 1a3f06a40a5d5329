package tensortest

import (
	"math"
	"slices"
)

// The references of package tensor's element-wise operations, norms, reductions
// and data movement. Each takes values in row-major order with their shape and
// returns a fresh slice.

func mapF(x []float32, f func(float64) float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(f(float64(v)))
	}
	return out
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// SiLU returns x·sigmoid(x).
func SiLU(x []float32) []float32 { return mapF(x, func(v float64) float64 { return v * sigmoid(v) }) }

// GELU returns the exact GELU x/2·(1+erf(x/√2)).
func GELU(x []float32) []float32 { return mapF(x, gelu) }

func gelu(v float64) float64 { return 0.5 * v * (1 + math.Erf(v/math.Sqrt2)) }

// GELUTanh returns x/2·(1+tanh(√(2/π)·(x+0.044715x³))).
func GELUTanh(x []float32) []float32 {
	c := math.Sqrt(2 / math.Pi)
	return mapF(x, func(v float64) float64 { return 0.5 * v * (1 + math.Tanh(c*(v+0.044715*v*v*v))) })
}

// QuickGELU returns x·sigmoid(1.702x).
func QuickGELU(x []float32) []float32 {
	return mapF(x, func(v float64) float64 { return v * sigmoid(1.702*v) })
}

// Exp returns eˣ.
func Exp(x []float32) []float32 { return mapF(x, math.Exp) }

// Affine returns x·scale + shift.
func Affine(x []float32, scale, shift float64) []float32 {
	return mapF(x, func(v float64) float64 { return v*scale + shift })
}

// BroadcastShape returns the NumPy broadcast of a and b, or nil if they do not
// broadcast.
func BroadcastShape(a, b []int) []int {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := range n {
		da, db := 1, 1
		if k := i - n + len(a); k >= 0 {
			da = a[k]
		}
		if k := i - n + len(b); k >= 0 {
			db = b[k]
		}
		switch {
		case da == db || db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil
		}
	}
	return out
}

// Broadcast returns f(a, b) element-wise over the NumPy broadcast of the shapes,
// and that shape. It panics if the shapes do not broadcast.
func Broadcast(a []float32, aShape []int, b []float32, bShape []int, f func(x, y float64) float64) ([]float32, []int) {
	shape := BroadcastShape(aShape, bShape)
	if shape == nil {
		panic("tensortest.Broadcast: shapes do not broadcast")
	}
	at := func(x []float32, xs []int, idx []int) float32 {
		o, lead := 0, len(idx)-len(xs)
		for i, d := range xs {
			k := idx[lead+i]
			if d == 1 {
				k = 0
			}
			o = o*d + k
		}
		return x[o]
	}
	out := make([]float32, Numel(shape))
	idx := make([]int, len(shape))
	for i := range out {
		unravel(shape, i, idx)
		out[i] = float32(f(float64(at(a, aShape, idx)), float64(at(b, bShape, idx))))
	}
	return out, shape
}

// Add returns a+b with NumPy broadcasting.
func Add(a []float32, aShape []int, b []float32, bShape []int) ([]float32, []int) {
	return Broadcast(a, aShape, b, bShape, func(x, y float64) float64 { return x + y })
}

// Sub returns a−b with NumPy broadcasting.
func Sub(a []float32, aShape []int, b []float32, bShape []int) ([]float32, []int) {
	return Broadcast(a, aShape, b, bShape, func(x, y float64) float64 { return x - y })
}

// Mul returns a·b with NumPy broadcasting.
func Mul(a []float32, aShape []int, b []float32, bShape []int) ([]float32, []int) {
	return Broadcast(a, aShape, b, bShape, func(x, y float64) float64 { return x * y })
}

// Div returns a/b with NumPy broadcasting.
func Div(a []float32, aShape []int, b []float32, bShape []int) ([]float32, []int) {
	return Broadcast(a, aShape, b, bShape, func(x, y float64) float64 { return x / y })
}

// rows splits x into rows of the last dimension of shape.
func rows(x []float32, shape []int) (n, d int) {
	d = shape[len(shape)-1]
	if d == 0 {
		return 0, 0
	}
	return len(x) / d, d
}

// Softmax returns the softmax of x over its last axis.
func Softmax(x []float32, shape []int) []float32 {
	out := make([]float32, len(x))
	n, d := rows(x, shape)
	for r := range n {
		row := x[r*d : (r+1)*d]
		m := math.Inf(-1)
		for _, v := range row {
			m = max(m, float64(v))
		}
		s := 0.0
		for _, v := range row {
			s += math.Exp(float64(v) - m)
		}
		for i, v := range row {
			out[r*d+i] = float32(math.Exp(float64(v)-m) / s)
		}
	}
	return out
}

// meanVar returns the mean and the population variance of x, in two passes.
func meanVar(x []float32) (mean, variance float64) {
	for _, v := range x {
		mean += float64(v)
	}
	mean /= float64(len(x))
	for _, v := range x {
		d := float64(v) - mean
		variance += d * d
	}
	return mean, variance / float64(len(x))
}

// LayerNorm returns (x−mean)/√(var+eps)·gamma + beta over the last axis of x;
// nil gamma means 1 and nil beta 0.
func LayerNorm(x []float32, shape []int, gamma, beta []float32, eps float64) []float32 {
	out := make([]float32, len(x))
	n, d := rows(x, shape)
	for r := range n {
		row := x[r*d : (r+1)*d]
		mean, variance := meanVar(row)
		inv := 1 / math.Sqrt(variance+eps)
		for i, v := range row {
			y := (float64(v) - mean) * inv
			if gamma != nil {
				y *= float64(gamma[i])
			}
			if beta != nil {
				y += float64(beta[i])
			}
			out[r*d+i] = float32(y)
		}
	}
	return out
}

// GroupNorm returns torch.nn.GroupNorm of x [N,C,...]: statistics over each
// sample's groups of C/groups channels, then the per-channel gamma and beta (nil
// for 1 and 0), then SiLU if silu.
func GroupNorm(x []float32, shape []int, gamma, beta []float32, groups int, eps float64, silu bool) []float32 {
	out := make([]float32, len(x))
	c := shape[1]
	spatial := Numel(shape[2:])
	cg := c / groups
	for n := range shape[0] {
		for g := range groups {
			o := (n*c + g*cg) * spatial
			blk := x[o : o+cg*spatial]
			mean, variance := meanVar(blk)
			inv := 1 / math.Sqrt(variance+eps)
			for i, v := range blk {
				ch := g*cg + i/spatial
				y := (float64(v) - mean) * inv
				if gamma != nil {
					y *= float64(gamma[ch])
				}
				if beta != nil {
					y += float64(beta[ch])
				}
				if silu {
					y *= sigmoid(y)
				}
				out[o+i] = float32(y)
			}
		}
	}
	return out
}

// GEGLU returns h·gelu(g) for x [..., 2n] split into h = x[..., :n] and
// g = x[..., n:].
func GEGLU(x []float32, shape []int) []float32 {
	r, d := rows(x, shape)
	n := d / 2
	out := make([]float32, r*n)
	for i := range r {
		for j := range n {
			h, g := float64(x[i*d+j]), float64(x[i*d+n+j])
			out[i*n+j] = float32(h * gelu(g))
		}
	}
	return out
}

// Moments returns the mean and population variance of x over its trailing axes
// dimensions, one value per index of the leading dimensions.
func Moments(x []float32, shape []int, axes int) (mean, variance []float32) {
	n := Numel(shape[len(shape)-axes:])
	rowsN := len(x) / n
	mean, variance = make([]float32, rowsN), make([]float32, rowsN)
	for r := range rowsN {
		m, v := meanVar(x[r*n : (r+1)*n])
		mean[r], variance[r] = float32(m), float32(v)
	}
	return mean, variance
}

// Concat joins xs (with shapes) along axis and returns the values and shape.
func Concat(axis int, xs [][]float32, shapes [][]int) ([]float32, []int) {
	shape := slices.Clone(shapes[0])
	shape[axis] = 0
	for _, s := range shapes {
		shape[axis] += s[axis]
	}
	out := make([]float32, Numel(shape))
	idx := make([]int, len(shape))
	for i := range out {
		unravel(shape, i, idx)
		k := idx[axis]
		for j, s := range shapes {
			if k < s[axis] {
				src := slices.Clone(idx)
				src[axis] = k
				out[i] = xs[j][Index(s, src)]
				break
			}
			k -= s[axis]
		}
	}
	return out, shape
}

// Upsample2x returns the nearest-neighbour upsampling of x [N,C,H,W] to
// [N,C,2H,2W].
func Upsample2x(x []float32, shape []int) []float32 {
	n, c, h, w := shape[0], shape[1], shape[2], shape[3]
	out := make([]float32, 4*len(x))
	for i := range n * c {
		for y := range 2 * h {
			for z := range 2 * w {
				out[(i*2*h+y)*2*w+z] = x[(i*h+y/2)*w+z/2]
			}
		}
	}
	return out
}

// Embedding returns the rows ids of table [V,D].
func Embedding(table []float32, shape []int, ids []int) []float32 {
	d := shape[1]
	out := make([]float32, 0, len(ids)*d)
	for _, id := range ids {
		out = append(out, table[id*d:(id+1)*d]...)
	}
	return out
}

// Permute returns x [shape] with its dimensions reordered (dimension i of the
// result is dimension axes[i] of x), and the new shape.
func Permute(x []float32, shape []int, axes []int) ([]float32, []int) {
	ps := make([]int, len(axes))
	for i, a := range axes {
		ps[i] = shape[a]
	}
	st := Strides(shape)
	out := make([]float32, len(x))
	idx := make([]int, len(ps))
	for i := range out {
		unravel(ps, i, idx)
		o := 0
		for j, a := range axes {
			o += idx[j] * st[a]
		}
		out[i] = x[o]
	}
	return out, ps
}

// Strided returns the elements of a view over x (shape, strides in elements,
// possibly zero, and offset) in row-major order: what Tensor.Float32s of such a
// view must return.
func Strided(x []float32, shape, strides []int, offset int) []float32 {
	out := make([]float32, Numel(shape))
	idx := make([]int, len(shape))
	for i := range out {
		unravel(shape, i, idx)
		o := offset
		for j, k := range idx {
			o += k * strides[j]
		}
		out[i] = x[o]
	}
	return out
}

// ResizeNearest returns x [N,C,H,W] resampled to [N,C,oh,ow] as torch's nearest
// interpolation does: source index ⌊i·in/out⌋ with the ratio in float32.
func ResizeNearest(x []float32, shape []int, oh, ow int) []float32 {
	n, c, h, w := shape[0], shape[1], shape[2], shape[3]
	out := make([]float32, n*c*oh*ow)
	sy, sx := float32(h)/float32(oh), float32(w)/float32(ow)
	for i := range n * c {
		for y := range oh {
			yy := min(int(float32(y)*sy), h-1)
			for z := range ow {
				zz := min(int(float32(z)*sx), w-1)
				out[(i*oh+y)*ow+z] = x[(i*h+yy)*w+zz]
			}
		}
	}
	return out
}

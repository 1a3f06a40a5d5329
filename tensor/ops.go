package tensor

import (
	"fmt"
	"strings"
)

// This file holds the package-level operations other than the matrix products:
// each checks its operands' shapes, dtypes and backends, allocates the result on
// the operands' backend and calls the Backend method.
//
// Activations are computed in F32: an F16 or BF16 input to an element-wise
// operation, a normalisation, Softmax, GEGLU, a resize or Moments is widened to
// F32 first (a temporary copy), and the result is F32. Parameters (the gamma and
// beta of the norms, an Embedding table) keep their dtype and are widened inside
// the kernels. Concat keeps its inputs' common dtype.

// checkLive panics when an operand is nil or was released: both are mistakes in
// the calling code, not bad input.
func checkLive(op string, ts ...*Tensor) {
	for _, t := range ts {
		if t == nil {
			panic("tensor." + op + ": nil tensor")
		}
		if t.released.Load() {
			panic(fmt.Sprintf("tensor.%s: %v used after Release", op, t))
		}
	}
}

// sameBackend returns an error wrapping ErrBackend unless every non-nil operand
// lives on the first one's backend.
// sameDevice reports whether tensors of backends a and b can meet in one
// operation: the same backend, or two CPU backends (both hold host memory).
func sameDevice(a, b Backend) bool {
	if a == b {
		return true
	}
	_, ac := a.(*CPU)
	_, bc := b.(*CPU)
	return ac && bc
}

func sameBackend(op string, ts ...*Tensor) error {
	var first *Tensor
	for _, t := range ts {
		if t == nil {
			continue
		}
		if first == nil {
			first = t
			continue
		}
		if !sameDevice(t.Backend(), first.Backend()) {
			return fmt.Errorf("tensor.%s: %w: %v on %s and %v on %s", op, ErrBackend,
				first, first.Backend().Name(), t, t.Backend().Name())
		}
	}
	return nil
}

// describe lists the operands for an error message: "F32[2 3], F16[3]".
func describe(ts ...*Tensor) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		if t == nil {
			parts[i] = "nil"
		} else {
			parts[i] = t.String()
		}
	}
	return strings.Join(parts, ", ")
}

// backendFailed wraps an error returned by a Backend method with the operation and
// its operands.
func backendFailed(op string, err error, ts ...*Tensor) error {
	return fmt.Errorf("tensor.%s(%s): %w", op, describe(ts...), err)
}

// asF32 returns x when it is F32 (as a new view, to be released like a copy) and
// otherwise an F32 copy; the result is contiguous when contiguous is set.
func asF32(x *Tensor, contiguous bool) (*Tensor, error) {
	if x.dtype == F32 && (!contiguous || x.IsContiguous()) {
		return x.view(x.shape, x.strides, x.offset), nil
	}
	return x.To(F32)
}

// unary runs a Backend.Unary operation.
func unary(op string, u UnaryOp, x *Tensor) (*Tensor, error) {
	checkLive(op, x)
	return mapF32(op, x, func(out, xc *Tensor) error { return x.Backend().Unary(out, xc, u) })
}

// mapF32 runs a backend operation that maps x, widened to a contiguous F32
// tensor, to a new F32 tensor of the same shape.
func mapF32(op string, x *Tensor, run func(out, xc *Tensor) error) (*Tensor, error) {
	xc, err := asF32(x, true)
	if err != nil {
		return nil, err
	}
	defer xc.Release()
	out, err := New(x.Backend(), F32, x.shape...)
	if err != nil {
		return nil, err
	}
	if err := run(out, xc); err != nil {
		out.Release()
		return nil, backendFailed(op, err, x)
	}
	return out, nil
}

// SiLU returns x·sigmoid(x) element-wise.
func SiLU(x *Tensor) (*Tensor, error) { return unary("SiLU", OpSiLU, x) }

// GELU returns the exact (erf) GELU of x element-wise.
func GELU(x *Tensor) (*Tensor, error) { return unary("GELU", OpGELU, x) }

// GELUTanh returns the tanh approximation of GELU of x element-wise.
func GELUTanh(x *Tensor) (*Tensor, error) { return unary("GELUTanh", OpGELUTanh, x) }

// QuickGELU returns x·sigmoid(1.702x) element-wise.
func QuickGELU(x *Tensor) (*Tensor, error) { return unary("QuickGELU", OpQuickGELU, x) }

// Exp returns eˣ element-wise.
func Exp(x *Tensor) (*Tensor, error) { return unary("Exp", OpExp, x) }

// binary runs a Backend.Binary operation with NumPy broadcasting.
func binary(op string, bop BinaryOp, a, b *Tensor) (*Tensor, error) {
	checkLive(op, a, b)
	if err := sameBackend(op, a, b); err != nil {
		return nil, err
	}
	shape, ok := BroadcastShapes(a.shape, b.shape)
	if !ok {
		return nil, shapeErr(op, "%v and %v do not broadcast", a, b)
	}
	if err := checkShape(op, shape); err != nil {
		return nil, err
	}
	var views [2]*Tensor
	for i, t := range [2]*Tensor{a, b} {
		t32, err := asF32(t, false)
		if err != nil {
			views[0].Release()
			return nil, err
		}
		views[i], err = t32.Expand(shape...)
		t32.Release()
		if err != nil {
			views[0].Release()
			return nil, err
		}
	}
	defer views[0].Release()
	defer views[1].Release()
	out, err := New(a.Backend(), F32, shape...)
	if err != nil {
		return nil, err
	}
	if err := a.Backend().Binary(out, views[0], views[1], bop); err != nil {
		out.Release()
		return nil, backendFailed(op, err, a, b)
	}
	return out, nil
}

// Add returns a+b element-wise; the shapes broadcast as in NumPy.
func Add(a, b *Tensor) (*Tensor, error) { return binary("Add", OpAdd, a, b) }

// Sub returns a−b element-wise; the shapes broadcast as in NumPy.
func Sub(a, b *Tensor) (*Tensor, error) { return binary("Sub", OpSub, a, b) }

// Mul returns a·b element-wise; the shapes broadcast as in NumPy.
func Mul(a, b *Tensor) (*Tensor, error) { return binary("Mul", OpMul, a, b) }

// Div returns a/b element-wise; the shapes broadcast as in NumPy.
func Div(a, b *Tensor) (*Tensor, error) { return binary("Div", OpDiv, a, b) }

// Affine returns x·scale + shift element-wise.
func Affine(x *Tensor, scale, shift float32) (*Tensor, error) {
	return affine("Affine", x, scale, shift)
}

// Scale returns x·s element-wise.
func Scale(x *Tensor, s float32) (*Tensor, error) { return affine("Scale", x, s, 0) }

func affine(op string, x *Tensor, scale, shift float32) (*Tensor, error) {
	checkLive(op, x)
	return mapF32(op, x, func(out, xc *Tensor) error { return x.Backend().Affine(out, xc, scale, shift) })
}

// Clamp returns x with every element limited to [lo, hi] (NaN stays NaN), as
// torch.clamp.
func Clamp(x *Tensor, lo, hi float32) (*Tensor, error) {
	const op = "Clamp"
	checkLive(op, x)
	if !(lo <= hi) {
		return nil, rangeErr(op, "bounds [%g, %g]", lo, hi)
	}
	return mapF32(op, x, func(out, xc *Tensor) error { return x.Backend().Clamp(out, xc, lo, hi) })
}

// Softmax returns the softmax of x over its last axis.
func Softmax(x *Tensor) (*Tensor, error) {
	checkLive("Softmax", x)
	if x.Rank() == 0 {
		return nil, shapeErr("Softmax", "%v has no axis", x)
	}
	return mapF32("Softmax", x, func(out, xc *Tensor) error { return x.Backend().Softmax(out, xc) })
}

// checkParam checks that p (which may be nil when optional) is a vector of n
// elements on x's backend.
func checkParam(op, name string, p, x *Tensor, n int, optional bool) error {
	if p == nil {
		if optional {
			return nil
		}
		return shapeErr(op, "%s is nil for %v", name, x)
	}
	checkLive(op, p)
	if len(p.shape) != 1 || p.shape[0] != n {
		return shapeErr(op, "%s %v for %v (want [%d])", name, p, x, n)
	}
	return sameBackend(op, x, p)
}

// LayerNorm normalises x over its last axis (mean 0, variance 1, with eps added
// to the variance) and applies gamma and beta, vectors of the last axis's length
// of any dtype; either may be nil, meaning 1 and 0.
func LayerNorm(x, gamma, beta *Tensor, eps float32) (*Tensor, error) {
	const op = "LayerNorm"
	checkLive(op, x)
	if x.Rank() == 0 {
		return nil, shapeErr(op, "%v has no axis", x)
	}
	n := x.Dim(-1)
	if err := checkParam(op, "gamma", gamma, x, n, true); err != nil {
		return nil, err
	}
	if err := checkParam(op, "beta", beta, x, n, true); err != nil {
		return nil, err
	}
	xc, err := asF32(x, true)
	if err != nil {
		return nil, err
	}
	defer xc.Release()
	out, err := New(x.Backend(), F32, x.shape...)
	if err != nil {
		return nil, err
	}
	if err := x.Backend().LayerNorm(out, xc, gamma, beta, eps); err != nil {
		out.Release()
		return nil, backendFailed(op, err, x, gamma, beta)
	}
	return out, nil
}

// GroupNorm normalises x [N,C,...] over groups of C/groups channels (statistics
// per sample and group, eps added to the variance) and applies the per-channel
// gamma and beta ([C], any dtype), as torch.nn.GroupNorm does.
func GroupNorm(x, gamma, beta *Tensor, groups int, eps float32) (*Tensor, error) {
	return groupNorm("GroupNorm", x, gamma, beta, groups, eps, false)
}

// GroupNormSiLU returns SiLU(GroupNorm(x, gamma, beta, groups, eps)) in one pass.
func GroupNormSiLU(x, gamma, beta *Tensor, groups int, eps float32) (*Tensor, error) {
	return groupNorm("GroupNormSiLU", x, gamma, beta, groups, eps, true)
}

func groupNorm(op string, x, gamma, beta *Tensor, groups int, eps float32, silu bool) (*Tensor, error) {
	checkLive(op, x)
	if x.Rank() < 2 {
		return nil, shapeErr(op, "%v (want [N,C,...])", x)
	}
	c := x.shape[1]
	if groups <= 0 || c%groups != 0 {
		return nil, shapeErr(op, "%d groups for %v: %d channels are not a multiple", groups, x, c)
	}
	if err := checkParam(op, "gamma", gamma, x, c, false); err != nil {
		return nil, err
	}
	if err := checkParam(op, "beta", beta, x, c, false); err != nil {
		return nil, err
	}
	xc, err := asF32(x, true)
	if err != nil {
		return nil, err
	}
	defer xc.Release()
	out, err := New(x.Backend(), F32, x.shape...)
	if err != nil {
		return nil, err
	}
	if err := x.Backend().GroupNorm(out, xc, gamma, beta, groups, eps, silu); err != nil {
		out.Release()
		return nil, backendFailed(op, err, x, gamma, beta)
	}
	return out, nil
}

// GEGLU splits the last axis of x [..., 2n] into halves h and g and returns
// h·gelu(g) [..., n] (diffusers' GEGLU after its projection).
func GEGLU(x *Tensor) (*Tensor, error) {
	const op = "GEGLU"
	checkLive(op, x)
	if x.Rank() == 0 || x.Dim(-1)%2 != 0 {
		return nil, shapeErr(op, "%v: the last axis must have an even length", x)
	}
	xc, err := asF32(x, true)
	if err != nil {
		return nil, err
	}
	defer xc.Release()
	shape := x.Shape()
	shape[len(shape)-1] /= 2
	out, err := New(x.Backend(), F32, shape...)
	if err != nil {
		return nil, err
	}
	if err := x.Backend().GEGLU(out, xc); err != nil {
		out.Release()
		return nil, backendFailed(op, err, x)
	}
	return out, nil
}

// Concat joins xs along axis (negative counts from the end). The tensors must have
// the same rank, dtype and backend, and equal sizes in every other dimension; they
// may be strided views. The result has their dtype.
func Concat(axis int, xs ...*Tensor) (*Tensor, error) {
	const op = "Concat"
	if len(xs) == 0 {
		return nil, shapeErr(op, "no tensors")
	}
	checkLive(op, xs...)
	if err := sameBackend(op, xs...); err != nil {
		return nil, err
	}
	x0 := xs[0]
	axis, err := normAxis(op, axis, x0.Rank())
	if err != nil {
		return nil, err
	}
	shape := x0.Shape()
	shape[axis] = 0
	for _, x := range xs {
		if x.dtype != x0.dtype {
			return nil, dtypeErr(op, "%s: mixed dtypes", describe(xs...))
		}
		if x.Rank() != x0.Rank() {
			return nil, shapeErr(op, "%s along axis %d: ranks differ", describe(xs...), axis)
		}
		for i, d := range x.shape {
			if i != axis && d != x0.shape[i] {
				return nil, shapeErr(op, "%s along axis %d: dimension %d differs", describe(xs...), axis, i)
			}
		}
		shape[axis] += x.shape[axis]
	}
	if err := checkShape(op, shape); err != nil {
		return nil, err
	}
	out, err := New(x0.Backend(), x0.dtype, shape...)
	if err != nil {
		return nil, err
	}
	if err := x0.Backend().Concat(out, xs, axis); err != nil {
		out.Release()
		return nil, backendFailed(op, err, xs...)
	}
	return out, nil
}

// Upsample2x returns the nearest-neighbour upsampling of x [N,C,H,W] to
// [N,C,2H,2W].
func Upsample2x(x *Tensor) (*Tensor, error) {
	if x.Rank() != 4 {
		return nil, shapeErr("Upsample2x", "%v (want [N,C,H,W])", x)
	}
	return resizeNearest("Upsample2x", x, 2*x.shape[2], 2*x.shape[3])
}

// ResizeNearest returns x [N,C,H,W] resampled to [N,C,h,w] by nearest neighbour,
// as torch's interpolate(size=(h, w), mode="nearest") (the UNet upsamples to its
// skip connection's size this way when a latent side is not a multiple of 8).
func ResizeNearest(x *Tensor, h, w int) (*Tensor, error) {
	return resizeNearest("ResizeNearest", x, h, w)
}

func resizeNearest(op string, x *Tensor, h, w int) (*Tensor, error) {
	checkLive(op, x)
	if x.Rank() != 4 {
		return nil, shapeErr(op, "%v (want [N,C,H,W])", x)
	}
	if h < 0 || w < 0 || (h == 0) != (w == 0) || (x.shape[2] == 0 && h > 0) || (x.shape[3] == 0 && w > 0) {
		return nil, shapeErr(op, "%v to %dx%d", x, h, w)
	}
	shape := x.Shape()
	shape[2], shape[3] = h, w
	if err := checkShape(op, shape); err != nil {
		return nil, err
	}
	xc, err := asF32(x, true)
	if err != nil {
		return nil, err
	}
	defer xc.Release()
	out, err := New(x.Backend(), F32, shape...)
	if err != nil {
		return nil, err
	}
	if err := x.Backend().ResizeNearest(out, xc); err != nil {
		out.Release()
		return nil, backendFailed(op, err, x)
	}
	return out, nil
}

// Embedding returns the rows ids of table [V,D] (any dtype) as an F32 tensor
// [len(ids),D]. Every id must be in [0,V).
func Embedding(table *Tensor, ids []int) (*Tensor, error) {
	const op = "Embedding"
	checkLive(op, table)
	if table.Rank() != 2 {
		return nil, shapeErr(op, "table %v (want [V,D])", table)
	}
	for i, id := range ids {
		if id < 0 || id >= table.shape[0] {
			return nil, rangeErr(op, "ids[%d] = %d for table %v", i, id, table)
		}
	}
	out, err := New(table.Backend(), F32, len(ids), table.shape[1])
	if err != nil {
		return nil, err
	}
	if err := table.Backend().Embedding(out, table, ids); err != nil {
		out.Release()
		return nil, backendFailed(op, err, table)
	}
	return out, nil
}

// Moments returns the mean and the population variance (divided by n, not n−1)
// of x over its trailing axes dimensions; both have the shape of x's leading
// Rank−axes dimensions (a scalar, rank 0, when axes is Rank).
func Moments(x *Tensor, axes int) (mean, variance *Tensor, err error) {
	const op = "Moments"
	checkLive(op, x)
	r := x.Rank()
	if axes < 1 || axes > r {
		return nil, nil, rangeErr(op, "%d trailing axes of %v", axes, x)
	}
	if numel(x.shape[r-axes:]) == 0 {
		return nil, nil, shapeErr(op, "%v: no elements in the trailing %d axes", x, axes)
	}
	xc, err := asF32(x, true)
	if err != nil {
		return nil, nil, err
	}
	defer xc.Release()
	lead := x.shape[:r-axes]
	if mean, err = New(x.Backend(), F32, lead...); err != nil {
		return nil, nil, err
	}
	if variance, err = New(x.Backend(), F32, lead...); err != nil {
		mean.Release()
		return nil, nil, err
	}
	if err := x.Backend().Moments(mean, variance, xc); err != nil {
		mean.Release()
		variance.Release()
		return nil, nil, backendFailed(op, err, x)
	}
	return mean, variance, nil
}

// Mean returns the mean of x over its trailing axes dimensions (see Moments).
func Mean(x *Tensor, axes int) (*Tensor, error) {
	m, v, err := Moments(x, axes)
	if err != nil {
		return nil, err
	}
	v.Release()
	return m, nil
}

// Variance returns the population variance of x over its trailing axes
// dimensions (see Moments).
func Variance(x *Tensor, axes int) (*Tensor, error) {
	m, v, err := Moments(x, axes)
	if err != nil {
		return nil, err
	}
	m.Release()
	return v, nil
}

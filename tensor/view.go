package tensor

import "slices"

func normAxis(op string, axis, rank int) (int, error) {
	if axis < 0 {
		axis += rank
	}
	if axis < 0 || axis >= rank {
		return 0, rangeErr(op, "axis %d for rank %d", axis, rank)
	}
	return axis, nil
}

// Reshape returns a tensor with the same elements in row-major order and the given
// shape; one dimension may be -1 and is inferred. It is a view when t's strides
// allow one (always for a contiguous t) and a contiguous copy otherwise.
func (t *Tensor) Reshape(shape ...int) (*Tensor, error) {
	shape = slices.Clone(shape)
	infer, known := -1, 1
	for i, d := range shape {
		switch {
		case d == -1 && infer < 0:
			infer = i
		case d < 0:
			return nil, shapeErr("Reshape", "%v to %v: bad dimension %d", t.shape, shape, d)
		default:
			known *= d
		}
	}
	n := t.Numel()
	if infer >= 0 {
		if known == 0 || n%known != 0 {
			return nil, shapeErr("Reshape", "%v (%d elements) to %v", t.shape, n, shape)
		}
		shape[infer] = n / known
	}
	if numel(shape) != n {
		return nil, shapeErr("Reshape", "%v (%d elements) to %v (%d elements)", t.shape, n, shape, numel(shape))
	}
	if st, ok := reshapeStrides(t.shape, t.strides, shape); ok {
		return t.view(shape, st, t.offset), nil
	}
	c, err := t.Contiguous()
	if err != nil {
		return nil, err
	}
	defer c.Release()
	return c.view(shape, ContiguousStrides(shape), c.offset), nil
}

// reshapeStrides finds strides that view (shape, strides) as newShape without a
// copy, as torch's view does: each run of old dimensions that merges or splits
// into new ones must itself be contiguous.
func reshapeStrides(shape, strides, newShape []int) ([]int, bool) {
	// Drop size-1 dimensions of the source; they constrain nothing.
	var os, ost []int
	for i, d := range shape {
		if d != 1 {
			os = append(os, d)
			ost = append(ost, strides[i])
		}
	}
	out := make([]int, len(newShape))
	i, j := 0, 0
	for j < len(newShape) {
		if newShape[j] == 1 {
			out[j] = 1 // any stride serves a dimension of size 1
			j++
			continue
		}
		if i >= len(os) {
			return nil, false
		}
		// Take old dims [i, i2) and new dims [j, j2) with equal products.
		i2, j2 := i+1, j+1
		po, pn := os[i], newShape[j]
		for po != pn {
			if po < pn {
				if i2 >= len(os) {
					return nil, false
				}
				po *= os[i2]
				i2++
			} else {
				if j2 >= len(newShape) {
					return nil, false
				}
				pn *= newShape[j2]
				j2++
			}
		}
		for k := i; k < i2-1; k++ {
			if ost[k] != ost[k+1]*os[k+1] {
				return nil, false
			}
		}
		s := ost[i2-1]
		for k := j2 - 1; k >= j; k-- {
			out[k] = s
			s *= newShape[k]
		}
		i, j = i2, j2
	}
	if i != len(os) {
		return nil, false
	}
	return out, true
}

// Permute returns a view with the dimensions reordered: dimension i of the result is
// dimension axes[i] of t.
func (t *Tensor) Permute(axes ...int) (*Tensor, error) {
	if len(axes) != len(t.shape) {
		return nil, shapeErr("Permute", "%d axes %v for shape %v", len(axes), axes, t.shape)
	}
	seen := make([]bool, len(axes))
	shape := make([]int, len(axes))
	strides := make([]int, len(axes))
	for i, a := range axes {
		a, err := normAxis("Permute", a, len(axes))
		if err != nil {
			return nil, err
		}
		if seen[a] {
			return nil, shapeErr("Permute", "repeated axis in %v for shape %v", axes, t.shape)
		}
		seen[a] = true
		shape[i], strides[i] = t.shape[a], t.strides[a]
	}
	return t.view(shape, strides, t.offset), nil
}

// Transpose returns a view with dimensions a and b swapped.
func (t *Tensor) Transpose(a, b int) (*Tensor, error) {
	a, err := normAxis("Transpose", a, len(t.shape))
	if err != nil {
		return nil, err
	}
	if b, err = normAxis("Transpose", b, len(t.shape)); err != nil {
		return nil, err
	}
	axes := make([]int, len(t.shape))
	for i := range axes {
		axes[i] = i
	}
	axes[a], axes[b] = b, a
	return t.Permute(axes...)
}

// Narrow returns a view of length elements of dimension axis, starting at start.
func (t *Tensor) Narrow(axis, start, length int) (*Tensor, error) {
	axis, err := normAxis("Narrow", axis, len(t.shape))
	if err != nil {
		return nil, err
	}
	if start < 0 || length < 0 || start+length > t.shape[axis] {
		return nil, rangeErr("Narrow", "[%d, %d) of axis %d of %v", start, start+length, axis, t.shape)
	}
	shape := slices.Clone(t.shape)
	shape[axis] = length
	return t.view(shape, slices.Clone(t.strides), t.offset+start*t.strides[axis]), nil
}

// Slice returns a view of the elements start, start+step, ... below end of
// dimension axis (Python's x[start:end:step] with step > 0 and bounds in range).
func (t *Tensor) Slice(axis, start, end, step int) (*Tensor, error) {
	axis, err := normAxis("Slice", axis, len(t.shape))
	if err != nil {
		return nil, err
	}
	if step < 1 || start < 0 || end < start || end > t.shape[axis] {
		return nil, rangeErr("Slice", "[%d:%d:%d] of axis %d of %v", start, end, step, axis, t.shape)
	}
	shape := slices.Clone(t.shape)
	strides := slices.Clone(t.strides)
	shape[axis] = (end - start + step - 1) / step
	strides[axis] *= step
	return t.view(shape, strides, t.offset+start*t.strides[axis]), nil
}

// Unsqueeze returns a view with a dimension of size 1 inserted at axis (0..Rank).
func (t *Tensor) Unsqueeze(axis int) (*Tensor, error) {
	if axis < 0 {
		axis += len(t.shape) + 1
	}
	if axis < 0 || axis > len(t.shape) {
		return nil, rangeErr("Unsqueeze", "axis %d for shape %v", axis, t.shape)
	}
	shape := slices.Insert(slices.Clone(t.shape), axis, 1)
	st := 1
	if axis < len(t.shape) {
		st = t.strides[axis] * t.shape[axis]
	}
	strides := slices.Insert(slices.Clone(t.strides), axis, st)
	return t.view(shape, strides, t.offset), nil
}

// Expand returns a broadcast view of t with the given shape: t's dimensions are
// aligned to the right, and each must equal the target or be 1 (stride 0 in the view).
func (t *Tensor) Expand(shape ...int) (*Tensor, error) {
	if len(shape) < len(t.shape) {
		return nil, shapeErr("Expand", "%v to %v", t.shape, shape)
	}
	strides := make([]int, len(shape))
	lead := len(shape) - len(t.shape)
	for i := range shape {
		if i < lead {
			continue
		}
		d := t.shape[i-lead]
		switch {
		case d == shape[i]:
			strides[i] = t.strides[i-lead]
		case d == 1:
			strides[i] = 0
		default:
			return nil, shapeErr("Expand", "%v to %v", t.shape, shape)
		}
	}
	return t.view(slices.Clone(shape), strides, t.offset), nil
}

// BroadcastShapes returns the shape that a and b broadcast to, NumPy style.
func BroadcastShapes(a, b []int) ([]int, bool) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := range n {
		da, db := 1, 1
		if k := i - (n - len(a)); k >= 0 {
			da = a[k]
		}
		if k := i - (n - len(b)); k >= 0 {
			db = b[k]
		}
		switch {
		case da == db || db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, false
		}
	}
	return out, true
}

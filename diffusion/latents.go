package diffusion

import (
	"fmt"

	"github.com/sdgo/sdgo/diffusion/sched"
	"github.com/sdgo/sdgo/tensor"
)

// deviceArith is the scheduler arithmetic of a pipeline whose networks run on a
// device: the latents stay there between steps as flat F32 tensors, and each
// scheduler expression runs as the backend's element-wise operations. Only the
// per-step scalars are computed on the host; the host's noise draws go up.
//
// Every operation it uses rounds once, as the host's float32 arithmetic does
// (a·1+c and a·c+0 are exact in an FMA too), so on a backend whose element-wise
// operations are correctly rounded the device runs the same numbers as
// sched.HostArith.
type deviceArith struct{ b tensor.Backend }

// deviceVec is a Vec of deviceArith: a contiguous one-dimensional F32 tensor.
type deviceVec struct{ t *tensor.Tensor }

func (v *deviceVec) Len() int { return v.t.Numel() }

// arithFor returns the scheduler arithmetic for a pipeline on backend b: host
// slices on the CPU (bit for bit diffusers' arithmetic, and nothing to move),
// the device otherwise.
func arithFor(b tensor.Backend) sched.Arith {
	if _, ok := b.(*tensor.CPU); ok {
		return sched.HostArith{}
	}
	return deviceArith{b}
}

func (a deviceArith) vec(v sched.Vec) (*tensor.Tensor, error) {
	d, ok := v.(*deviceVec)
	if !ok || d == nil || d.t == nil {
		return nil, fmt.Errorf("diffusion: latents %T are not on %s", v, a.b.Name())
	}
	return d.t, nil
}

func (a deviceArith) FromHost(v []float32) (sched.Vec, error) {
	t, err := tensor.FromFloat32(a.b, v, len(v))
	if err != nil {
		return nil, err
	}
	return &deviceVec{t}, nil
}

func (a deviceArith) ToHost(v sched.Vec) ([]float32, error) {
	t, err := a.vec(v)
	if err != nil {
		return nil, err
	}
	return t.Float32s()
}

func (a deviceArith) Free(v sched.Vec) {
	if d, ok := v.(*deviceVec); ok && d != nil && d.t != nil {
		d.t.Release()
		d.t = nil
	}
}

// operand is one value on the evaluation stack: a tensor (owned when the
// evaluation made it) or a constant.
type operand struct {
	t       *tensor.Tensor
	owned   bool
	c       float32
	isConst bool
}

func (o operand) release() {
	if o.owned {
		o.t.Release()
	}
}

// Eval runs e operation by operation, the operands from a post-order walk.
func (a deviceArith) Eval(e sched.Expr) (sched.Vec, error) {
	if e.Len() == 0 {
		return nil, fmt.Errorf("diffusion: scheduler expression of constants only")
	}
	var stack []operand
	var err error
	defer func() {
		for _, o := range stack {
			o.release()
		}
	}()
	e.Walk(func(v sched.Vec, c float32, isConst bool) {
		if err != nil {
			return
		}
		if isConst {
			stack = append(stack, operand{c: c, isConst: true})
			return
		}
		var t *tensor.Tensor
		if t, err = a.vec(v); err == nil && t.Numel() != e.Len() {
			err = fmt.Errorf("diffusion: scheduler expression mixes %d and %d latents", e.Len(), t.Numel())
		}
		stack = append(stack, operand{t: t})
	}, func(op sched.ExprOp, lo, hi float32) {
		if err != nil {
			return
		}
		var r operand
		if op == sched.ExprClamp {
			x := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			r, err = a.clamp(x, lo, hi)
			x.release()
		} else {
			x, y := stack[len(stack)-2], stack[len(stack)-1]
			stack = stack[:len(stack)-2]
			r, err = a.binary(op, x, y, e.Len())
			x.release()
			y.release()
		}
		if err == nil {
			stack = append(stack, r)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("diffusion: scheduler step on %s: %w", a.b.Name(), err)
	}
	top := stack[0]
	stack = nil
	if !top.owned { // a bare V(x): a copy, as every other result is new
		t, err := tensor.Affine(top.t, 1, 0)
		if err != nil {
			return nil, err
		}
		return &deviceVec{t}, nil
	}
	return &deviceVec{top.t}, nil
}

func (a deviceArith) clamp(x operand, lo, hi float32) (operand, error) {
	if x.isConst {
		return operand{c: min(max(x.c, lo), hi), isConst: true}, nil
	}
	t, err := tensor.Clamp(x.t, lo, hi)
	return operand{t: t, owned: true}, err
}

// binary applies op to x and y. A constant side becomes an affine map when
// that is exact (x+c, x−c, c−x, x·c, c·x), else a filled tensor (x/c, c/x, so
// the division is the correctly rounded one).
func (a deviceArith) binary(op sched.ExprOp, x, y operand, n int) (operand, error) {
	owned := func(t *tensor.Tensor, err error) (operand, error) { return operand{t: t, owned: true}, err }
	switch {
	case x.isConst && y.isConst:
		return operand{c: fold(op, x.c, y.c), isConst: true}, nil
	case y.isConst && op == sched.ExprAdd:
		return owned(tensor.Affine(x.t, 1, y.c))
	case y.isConst && op == sched.ExprSub:
		return owned(tensor.Affine(x.t, 1, -y.c))
	case y.isConst && op == sched.ExprMul:
		return owned(tensor.Affine(x.t, y.c, 0))
	case x.isConst && op == sched.ExprAdd:
		return owned(tensor.Affine(y.t, 1, x.c))
	case x.isConst && op == sched.ExprSub:
		return owned(tensor.Affine(y.t, -1, x.c))
	case x.isConst && op == sched.ExprMul:
		return owned(tensor.Affine(y.t, x.c, 0))
	}
	tx, ty := x.t, y.t
	if x.isConst || y.isConst {
		c := x.c
		if y.isConst {
			c = y.c
		}
		full, err := tensor.Full(a.b, tensor.F32, c, n)
		if err != nil {
			return operand{}, err
		}
		defer full.Release()
		if x.isConst {
			tx = full
		} else {
			ty = full
		}
	}
	switch op {
	case sched.ExprAdd:
		return owned(tensor.Add(tx, ty))
	case sched.ExprSub:
		return owned(tensor.Sub(tx, ty))
	case sched.ExprMul:
		return owned(tensor.Mul(tx, ty))
	case sched.ExprDiv:
		return owned(tensor.Div(tx, ty))
	}
	return operand{}, fmt.Errorf("unknown operation %d", op)
}

// fold evaluates an operation of two constants on the host.
func fold(op sched.ExprOp, x, y float32) float32 {
	switch op {
	case sched.ExprAdd:
		return x + y
	case sched.ExprSub:
		return x - y
	case sched.ExprMul:
		return x * y
	}
	return x / y
}

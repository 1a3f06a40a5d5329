package sched

import (
	"errors"
	"fmt"
	"math"
)

// Vec is one latent-sized array of float32 values (the NCHW latents in
// row-major order, a model output, a noise draw) held where an Arith keeps it:
// in host memory for HostArith, on a device for a tensor-backed Arith.
type Vec interface {
	// Len is the number of elements.
	Len() int
}

// Arith is where a scheduler's latent arithmetic runs. Every operation of a
// step that touches latent-sized arrays goes through it as an Expr, so the same
// scheduler code runs on host slices (HostArith, which reproduces diffusers' float32
// arithmetic bit for bit) and on device tensors, where only the per-step
// scalars are computed on the host.
type Arith interface {
	// Eval computes the elementwise expression e into a new Vec of e's length.
	Eval(e Expr) (Vec, error)
	// FromHost returns a Vec holding a copy of v (noise draws, host results).
	FromHost(v []float32) (Vec, error)
	// ToHost returns a copy of v's elements on the host.
	ToHost(v Vec) ([]float32, error)
	// Free hands v back; it must not be used afterwards. Freeing a Vec the
	// caller still holds elsewhere is the caller's error; Free of nil is a no-op.
	Free(v Vec)
}

// HostArith is the Arith of host memory (the default of every scheduler): its
// Vecs are HostVec slices, and an expression is evaluated operation by
// operation in float32, each result rounded as Go (and torch on the CPU)
// rounds it.
type HostArith struct{}

// HostVec is a Vec in host memory.
type HostVec []float32

// Len is len(v).
func (v HostVec) Len() int { return len(v) }

// exprOp is the operation of one expression node.
type exprOp uint8

const (
	opVec exprOp = iota
	opConst
	opAdd
	opSub
	opMul
	opDiv
	opClamp
)

// Expr is an elementwise float32 expression over Vecs and scalars, built with
// V, C and the methods below and evaluated by an Arith. Every operation rounds
// to float32, in the order the expression is written: V(a).Sub(V(b)).Div(C(s))
// is (a[i] - b[i]) / s for every i.
type Expr struct{ n *exprNode }

type exprNode struct {
	op     exprOp
	v      Vec
	c, lo  float32 // the constant; the clamp bounds (lo, c = hi)
	a, b   *exprNode
	length int // elements; 0 for a constant
}

// V is the expression of a Vec's elements.
func V(v Vec) Expr { return Expr{&exprNode{op: opVec, v: v, length: v.Len()}} }

// C is a scalar constant, broadcast to every element.
func C(c float32) Expr { return Expr{&exprNode{op: opConst, c: c}} }

func (e Expr) binary(op exprOp, f Expr) Expr {
	return Expr{&exprNode{op: op, a: e.n, b: f.n, length: max(e.n.length, f.n.length)}}
}

// Add is e + f.
func (e Expr) Add(f Expr) Expr { return e.binary(opAdd, f) }

// Sub is e - f.
func (e Expr) Sub(f Expr) Expr { return e.binary(opSub, f) }

// Mul is e · f.
func (e Expr) Mul(f Expr) Expr { return e.binary(opMul, f) }

// Div is e / f.
func (e Expr) Div(f Expr) Expr { return e.binary(opDiv, f) }

// Clamp is min(max(e, lo), hi); NaN stays NaN.
func (e Expr) Clamp(lo, hi float32) Expr {
	return Expr{&exprNode{op: opClamp, a: e.n, lo: lo, c: hi, length: e.n.length}}
}

// Len is the number of elements of the expression's Vecs (0 for a constant).
func (e Expr) Len() int { return e.n.length }

// Walk calls leaf for every Vec and constant and node for every operation of
// e, operands before the operation (a post-order walk), so an Arith can compile
// e into its own operations. It is what a device Arith uses; HostArith does not.
func (e Expr) Walk(leaf func(v Vec, c float32, isConst bool), node func(op ExprOp, lo, hi float32)) {
	var walk func(n *exprNode)
	walk = func(n *exprNode) {
		switch n.op {
		case opVec:
			leaf(n.v, 0, false)
		case opConst:
			leaf(nil, n.c, true)
		case opClamp:
			walk(n.a)
			node(ExprClamp, n.lo, n.c)
		default:
			walk(n.a)
			walk(n.b)
			node(ExprOp(n.op), 0, 0)
		}
	}
	walk(e.n)
}

// ExprOp names an operation of an Expr for Walk.
type ExprOp uint8

// The operations Walk reports; ExprClamp's bounds come with it.
const (
	ExprAdd   = ExprOp(opAdd)
	ExprSub   = ExprOp(opSub)
	ExprMul   = ExprOp(opMul)
	ExprDiv   = ExprOp(opDiv)
	ExprClamp = ExprOp(opClamp)
)

// checkExpr reports an expression whose Vecs differ in length or that has none.
func checkExpr(e Expr) error {
	if e.n == nil {
		return errors.New("sched: empty expression")
	}
	n := e.n.length
	if n == 0 {
		return errors.New("sched: expression of constants only")
	}
	var bad error
	e.Walk(func(v Vec, _ float32, isConst bool) {
		if !isConst && v.Len() != n && bad == nil {
			bad = fmt.Errorf("sched: expression mixes arrays of %d and %d elements", n, v.Len())
		}
	}, func(ExprOp, float32, float32) {})
	return bad
}

func (HostArith) FromHost(v []float32) (Vec, error) {
	return HostVec(append([]float32(nil), v...)), nil
}

func (HostArith) ToHost(v Vec) ([]float32, error) {
	h, ok := v.(HostVec)
	if !ok {
		return nil, fmt.Errorf("sched: %T is not a host array", v)
	}
	return append([]float32(nil), h...), nil
}

func (HostArith) Free(Vec) {}

func (HostArith) Eval(e Expr) (Vec, error) {
	if err := checkExpr(e); err != nil {
		return nil, err
	}
	out, _, err := hostEval(e.n)
	if err != nil {
		return nil, err
	}
	if e.n.op == opVec { // a bare V(x): a copy, as every other result is new
		out = append([]float32(nil), out...)
	}
	return HostVec(out), nil
}

// hostEval evaluates n into a slice (a leaf's own slice, else a new one), or
// into a constant when n has no arrays (x is then nil).
func hostEval(n *exprNode) (x []float32, c float32, err error) {
	switch n.op {
	case opVec:
		h, ok := n.v.(HostVec)
		if !ok {
			return nil, 0, fmt.Errorf("sched: %T is not a host array", n.v)
		}
		return h, 0, nil
	case opConst:
		return nil, n.c, nil
	case opClamp:
		x, c, err := hostEval(n.a)
		if err != nil || x == nil {
			return nil, min(max(c, n.lo), n.c), err
		}
		out := make([]float32, len(x))
		for i, v := range x {
			out[i] = min(max(v, n.lo), n.c) // NaN stays NaN
		}
		return out, 0, nil
	}
	// A binary operation: each side is an array or a constant.
	xa, ca, err := hostEval(n.a)
	if err != nil {
		return nil, 0, err
	}
	xb, cb, err := hostEval(n.b)
	if err != nil {
		return nil, 0, err
	}
	if xa == nil && xb == nil {
		return nil, apply(n.op, ca, cb), nil
	}
	out := make([]float32, n.length)
	switch {
	case xa != nil && xb != nil:
		hostBinary(n.op, out, xa, xb)
	case xa != nil:
		hostBinaryConstB(n.op, out, xa, cb)
	default:
		hostBinaryConstA(n.op, out, ca, xb)
	}
	return out, 0, nil
}

// hostBinary applies op to two arrays; the loops are written out per
// operation because they run once per element per step.
func hostBinary(op exprOp, out, a, b []float32) {
	b = b[:len(a)]
	switch op {
	case opAdd:
		for i, v := range a {
			out[i] = v + b[i]
		}
	case opSub:
		for i, v := range a {
			out[i] = v - b[i]
		}
	case opMul:
		for i, v := range a {
			out[i] = v * b[i]
		}
	case opDiv:
		for i, v := range a {
			out[i] = v / b[i]
		}
	}
}

func hostBinaryConstB(op exprOp, out, a []float32, b float32) {
	switch op {
	case opAdd:
		for i, v := range a {
			out[i] = v + b
		}
	case opSub:
		for i, v := range a {
			out[i] = v - b
		}
	case opMul:
		for i, v := range a {
			out[i] = v * b
		}
	case opDiv:
		for i, v := range a {
			out[i] = v / b
		}
	}
}

func hostBinaryConstA(op exprOp, out []float32, a float32, b []float32) {
	for i, v := range b {
		out[i] = apply(op, a, v)
	}
}

func apply(op exprOp, a, b float32) float32 {
	switch op {
	case opAdd:
		return a + b
	case opSub:
		return a - b
	case opMul:
		return a * b
	case opDiv:
		return a / b
	}
	return float32(math.NaN())
}

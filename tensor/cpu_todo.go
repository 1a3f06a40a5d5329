package tensor

import "errors"

// TEMPORARY scaffolding while the CPU operations are written: each method moves
// to its own file as it is implemented, and this file is deleted.

var errTodo = errors.New("not implemented yet")

func (c *CPU) Fill(dst *Tensor, v float32) error                 { return errTodo }
func (c *CPU) Copy(dst, src *Tensor) error                       { return errTodo }
func (c *CPU) Unary(dst, x *Tensor, op UnaryOp) error            { return errTodo }
func (c *CPU) Binary(dst, a, b *Tensor, op BinaryOp) error       { return errTodo }
func (c *CPU) Affine(dst, x *Tensor, scale, shift float32) error { return errTodo }
func (c *CPU) GroupNorm(dst, x, gamma, beta *Tensor, groups int, eps float32, silu bool) error {
	return errTodo
}
func (c *CPU) LayerNorm(dst, x, gamma, beta *Tensor, eps float32) error { return errTodo }
func (c *CPU) Softmax(dst, x *Tensor) error                             { return errTodo }
func (c *CPU) GEGLU(dst, x *Tensor) error                               { return errTodo }
func (c *CPU) Concat(dst *Tensor, xs []*Tensor, axis int) error         { return errTodo }
func (c *CPU) Upsample2x(dst, x *Tensor) error                          { return errTodo }
func (c *CPU) Embedding(dst, table *Tensor, ids []int) error            { return errTodo }
func (c *CPU) Moments(mean, variance, x *Tensor) error                  { return errTodo }

func (c *CPU) MatMul(dst, a, b *Tensor, alpha float32) error           { return errTodo }
func (c *CPU) Conv2d(dst, x, w, bias *Tensor, p Conv2dParams) error    { return errTodo }
func (c *CPU) Attention(dst, q, k, v *Tensor, p AttentionParams) error { return errTodo }

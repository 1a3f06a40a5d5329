package tensor

import "fmt"

// DType is the element type of a tensor.
type DType uint8

// The element types. Weights keep the type they are stored in; activations on the
// CPU are F32.
const (
	F32  DType = iota + 1 // IEEE single precision
	F16                   // IEEE half precision
	BF16                  // bfloat16
)

// Size returns the size of one element in bytes.
func (d DType) Size() int {
	switch d {
	case F32:
		return 4
	case F16, BF16:
		return 2
	}
	return 0
}

// Valid reports whether d is one of the defined types.
func (d DType) Valid() bool { return d >= F32 && d <= BF16 }

func (d DType) String() string {
	switch d {
	case F32:
		return "F32"
	case F16:
		return "F16"
	case BF16:
		return "BF16"
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

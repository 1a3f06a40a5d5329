package tensor

import (
	"errors"
	"fmt"
)

// Sentinel errors; the errors returned by operations wrap one of them and name the
// operation and the shapes involved.
var (
	ErrShape   = errors.New("shape mismatch")
	ErrDType   = errors.New("unsupported dtype")
	ErrRange   = errors.New("out of range")
	ErrBackend = errors.New("backend mismatch")
)

func shapeErr(op, format string, args ...any) error {
	return fmt.Errorf("tensor.%s: %w: %s", op, ErrShape, fmt.Sprintf(format, args...))
}

func dtypeErr(op, format string, args ...any) error {
	return fmt.Errorf("tensor.%s: %w: %s", op, ErrDType, fmt.Sprintf(format, args...))
}

func rangeErr(op, format string, args ...any) error {
	return fmt.Errorf("tensor.%s: %w: %s", op, ErrRange, fmt.Sprintf(format, args...))
}

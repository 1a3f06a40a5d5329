package cuda

import (
	"errors"
	"fmt"
)

// ErrNoDriver is wrapped by the error Open returns when no usable NVIDIA driver
// is present: libcuda.so.1 cannot be loaded, lacks a required function, or the
// build targets a system CUDA does not run on. Callers test it with errors.Is to
// tell "no GPU here" from a failure of a GPU that is present.
var ErrNoDriver = errors.New("cuda: no NVIDIA driver")

// ErrUnsupported is wrapped by the errors of operations this backend cannot run
// with the given arguments (a head dimension above the flash kernel's limit, a
// rank above what a kernel indexes, ...).
var ErrUnsupported = errors.New("cuda: unsupported")

// Error is a failed CUDA driver or cuBLAS call: the function (Op), the status code
// and its name and description as the library gives them, e.g.
//
//	cuda: cuMemAlloc_v2: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory
type Error struct {
	Op   string // the library function, e.g. "cuMemAlloc_v2"
	Code int    // the CUresult or cublasStatus_t value
	Name string // e.g. "CUDA_ERROR_OUT_OF_MEMORY"
	Msg  string // the library's description, e.g. "out of memory"; may be empty
}

func (e *Error) Error() string {
	s := fmt.Sprintf("cuda: %s: %s (%d)", e.Op, e.Name, e.Code)
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

// Is reports whether target is an *Error with the same code (and, when target
// names one, the same function), so that errors.Is(err, &cuda.Error{Code: 2})
// matches any out-of-memory failure.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return t.Code == e.Code && (t.Op == "" || t.Op == e.Op)
}

// CUresult values this package tests for or names without the driver's help.
const (
	errInvalidValue       = 1
	errOutOfMemory        = 2
	errNotInitialized     = 3
	errStubLibrary        = 34
	errInsufficientDriver = 35
	errNoDevice           = 100
	errInvalidDevice      = 101
	errInvalidContext     = 201
	errNotFound           = 500
)

// resultNames names the common CUresult values, for errors raised when the
// driver's own cuGetErrorName is not available.
var resultNames = map[int]string{
	0:                     "CUDA_SUCCESS",
	errInvalidValue:       "CUDA_ERROR_INVALID_VALUE",
	errOutOfMemory:        "CUDA_ERROR_OUT_OF_MEMORY",
	errNotInitialized:     "CUDA_ERROR_NOT_INITIALIZED",
	4:                     "CUDA_ERROR_DEINITIALIZED",
	errStubLibrary:        "CUDA_ERROR_STUB_LIBRARY",
	errInsufficientDriver: "CUDA_ERROR_INSUFFICIENT_DRIVER",
	46:                    "CUDA_ERROR_DEVICE_UNAVAILABLE",
	errNoDevice:           "CUDA_ERROR_NO_DEVICE",
	errInvalidDevice:      "CUDA_ERROR_INVALID_DEVICE",
	200:                   "CUDA_ERROR_INVALID_IMAGE",
	errInvalidContext:     "CUDA_ERROR_INVALID_CONTEXT",
	209:                   "CUDA_ERROR_NO_BINARY_FOR_GPU",
	218:                   "CUDA_ERROR_INVALID_PTX",
	222:                   "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
	400:                   "CUDA_ERROR_INVALID_HANDLE",
	errNotFound:           "CUDA_ERROR_NOT_FOUND",
	700:                   "CUDA_ERROR_ILLEGAL_ADDRESS",
	701:                   "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
	702:                   "CUDA_ERROR_LAUNCH_TIMEOUT",
	719:                   "CUDA_ERROR_LAUNCH_FAILED",
	803:                   "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
	999:                   "CUDA_ERROR_UNKNOWN",
}

// cublasStatusNames names the cublasStatus_t values.
var cublasStatusNames = map[int]string{
	0:  "CUBLAS_STATUS_SUCCESS",
	1:  "CUBLAS_STATUS_NOT_INITIALIZED",
	3:  "CUBLAS_STATUS_ALLOC_FAILED",
	7:  "CUBLAS_STATUS_INVALID_VALUE",
	8:  "CUBLAS_STATUS_ARCH_MISMATCH",
	11: "CUBLAS_STATUS_MAPPING_ERROR",
	13: "CUBLAS_STATUS_EXECUTION_FAILED",
	14: "CUBLAS_STATUS_INTERNAL_ERROR",
	15: "CUBLAS_STATUS_NOT_SUPPORTED",
	16: "CUBLAS_STATUS_LICENSE_ERROR",
}

func nameOr(names map[int]string, code int, unknown string) string {
	if n, ok := names[code]; ok {
		return n
	}
	return fmt.Sprintf("%s_%d", unknown, code)
}

package cuda

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unsafe"

	"github.com/sdgo/sdgo/tensor"
)

// cublas is libcublas bound with purego, with one handle on the device's stream.
type cublas struct {
	path    string
	handle  uintptr
	version int

	cublasCreate               func(h *uintptr) int32
	cublasDestroy              func(h uintptr) int32
	cublasSetStream            func(h, s uintptr) int32
	cublasSetMathMode          func(h uintptr, mode int32) int32
	cublasGetVersion           func(h uintptr, v *int32) int32
	cublasGemmEx               func(h uintptr, ta, tb, m, n, k int32, alpha unsafe.Pointer, a uint64, at, lda int32, b uint64, bt, ldb int32, beta unsafe.Pointer, c uint64, ct, ldc, compute, algo int32) int32
	cublasGemmStridedBatchedEx func(h uintptr, ta, tb, m, n, k int32, alpha unsafe.Pointer, a uint64, at, lda int32, sa int64, b uint64, bt, ldb int32, sb int64, beta unsafe.Pointer, c uint64, ct, ldc int32, sc int64, batch, compute, algo int32) int32
}

func (c *cublas) symbols() []symbol {
	return []symbol{
		{names: []string{"cublasCreate_v2"}, fptr: &c.cublasCreate},
		{names: []string{"cublasDestroy_v2"}, fptr: &c.cublasDestroy},
		{names: []string{"cublasSetStream_v2"}, fptr: &c.cublasSetStream},
		{names: []string{"cublasSetMathMode"}, fptr: &c.cublasSetMathMode},
		{names: []string{"cublasGetVersion_v2"}, fptr: &c.cublasGetVersion},
		{names: []string{"cublasGemmEx"}, fptr: &c.cublasGemmEx},
		{names: []string{"cublasGemmStridedBatchedEx"}, fptr: &c.cublasGemmStridedBatchedEx},
	}
}

// cuBLAS constants (cublas_api.h, library_types.h).
const (
	cublasOpN         = 0
	cublasOpT         = 1
	cublasDefaultMath = 0
	cublasCompute32F  = 68
	// cublasCompute32FFastTF32 lets F32 products round their inputs to TF32.
	cublasCompute32FFastTF32 = 77
	cublasGemmDefault        = -1
	cudaR32F                 = 0
	cudaR16F                 = 2
	cudaR16BF                = 14
	cublasStatusSuccess      = 0
)

// cublasNames are the library names tried in each directory, newest first.
var cublasNames = []string{"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"}

// cublasCandidates lists the files tried for cuBLAS, in order: $SDGO_CUBLAS when
// it names a file; each name in $CUDA_HOME/lib64, /usr/local/cuda/lib64 and
// /usr/local/cuda-*/lib64 (newest version first); then each name on the dynamic
// loader's path.
func cublasCandidates(env func(string) string, glob func(string) ([]string, error)) []string {
	var dirs []string
	if p := env("SDGO_CUBLAS"); strings.Contains(p, "/") {
		return []string{p}
	}
	if h := env("CUDA_HOME"); h != "" {
		dirs = append(dirs, filepath.Join(h, "lib64"))
	}
	dirs = append(dirs, "/usr/local/cuda/lib64")
	if g, err := glob("/usr/local/cuda-*/lib64"); err == nil {
		sort.Sort(sort.Reverse(sort.StringSlice(g)))
		dirs = append(dirs, g...)
	}
	var c []string
	for _, d := range dirs {
		for _, n := range cublasNames {
			c = append(c, filepath.Join(d, n))
		}
	}
	return append(c, cublasNames...)
}

// fakeCublas, when set (by the emulator's tests), stands in for the library.
var fakeCublas func(d *Device) (*cublas, error)

// errNoCublas says cuBLAS was not found or was turned off.
var errNoCublas = errors.New("cuBLAS not found")

// loadCublas loads cuBLAS for the device, whose context is current on this
// locked thread. A missing cuBLAS is not an error for the caller: the PTX GEMM
// is used and the returned error says why.
func loadCublas(d *Device) (*cublas, error) {
	if v := strings.ToLower(os.Getenv("SDGO_CUBLAS")); v == "0" || v == "off" || v == "false" {
		return nil, fmt.Errorf("%w: SDGO_CUBLAS=%s", errNoCublas, v)
	}
	if fakeCublas != nil {
		return fakeCublas(d)
	}
	cands := cublasCandidates(os.Getenv, filepath.Glob)
	var errs []string
	for _, path := range cands {
		if strings.Contains(path, "/") {
			if _, err := os.Stat(path); err != nil {
				continue
			}
		}
		h, err := dlopen(path)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		c := &cublas{path: path}
		if err := bindSymbols(h, path, c.symbols()); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if err := c.init(d); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", path, err))
			continue
		}
		return c, nil
	}
	msg := fmt.Sprintf("tried %s", strings.Join(cands, ", "))
	if len(errs) > 0 {
		msg += ": " + strings.Join(errs, "; ")
	}
	return nil, fmt.Errorf("%w (%s)", errNoCublas, msg)
}

func (c *cublas) init(d *Device) error {
	if err := c.check("cublasCreate_v2", c.cublasCreate(&c.handle)); err != nil {
		return err
	}
	if err := c.check("cublasSetStream_v2", c.cublasSetStream(c.handle, d.stream)); err != nil {
		c.cublasDestroy(c.handle)
		return err
	}
	// Default math: FP32 products stay FP32 (no TF32), FP16/BF16 use tensor cores.
	if err := c.check("cublasSetMathMode", c.cublasSetMathMode(c.handle, cublasDefaultMath)); err != nil {
		c.cublasDestroy(c.handle)
		return err
	}
	var v int32
	if c.cublasGetVersion(c.handle, &v) == cublasStatusSuccess {
		c.version = int(v)
	}
	return nil
}

func (c *cublas) destroy() {
	if c.handle != 0 {
		c.cublasDestroy(c.handle)
		c.handle = 0
	}
}

func (c *cublas) check(op string, r int32) error {
	if r == cublasStatusSuccess {
		return nil
	}
	return &Error{Op: op, Code: int(r), Name: nameOr(cublasStatusNames, int(r), "CUBLAS_STATUS")}
}

// cudaDataType maps a tensor dtype to cuBLAS's cudaDataType.
func cudaDataType(dt tensor.DType) int32 {
	switch dt {
	case tensor.F16:
		return cudaR16F
	case tensor.BF16:
		return cudaR16BF
	}
	return cudaR32F
}

// matOperand is one operand of a row-major product as it lies in device memory:
// element (i, j) of a non-transposed operand is at ptr + (i·ld + j)·size, of a
// transposed one at ptr + (j·ld + i)·size; batch item b starts batch elements
// further on.
type matOperand struct {
	ptr   uint64
	dt    tensor.DType
	ld    int
	trans bool
	batch int
}

// cublasGemmArgs is a row-major C[b] = alpha·A[b]·B[b] + beta·C[b] (A m×k,
// B k×n, C m×n F32 with rows ldc apart) mapped onto column-major cuBLAS, which
// computes Cᵀ = Bᵀ·Aᵀ: a row-major matrix with leading dimension ld is its own
// transpose in column-major terms, so B comes first and the operation flags are
// the operands' trans flags.
type cublasGemmArgs struct {
	opA, opB int32 // cuBLAS's transa, transb
	m, n, k  int32 // cuBLAS's m (our n), n (our m), k
	lda, ldb int32 // for cuBLAS's A (our B) and B (our A)
	ldc      int32
}

// rowMajorGemm maps a row-major product onto cuBLAS's arguments; ok is false
// when a size does not fit cuBLAS's 32-bit integers or a leading dimension is
// below what cuBLAS accepts.
func rowMajorGemm(m, n, k int, a, b matOperand, ldc int) (g cublasGemmArgs, ok bool) {
	fits := func(v ...int) bool {
		for _, x := range v {
			if x < 0 || x > math.MaxInt32 {
				return false
			}
		}
		return true
	}
	if !fits(m, n, k, a.ld, b.ld, ldc) {
		return g, false
	}
	g = cublasGemmArgs{opA: cublasOpN, opB: cublasOpN, m: int32(n), n: int32(m), k: int32(k), lda: int32(b.ld), ldb: int32(a.ld), ldc: int32(ldc)}
	// cuBLAS's A is our Bᵀ (n×k): a non-transposed B, row-major k×n, is Bᵀ
	// stored column-major (ld ≥ n), read as is; a transposed B is B stored
	// column-major (ld ≥ k), read with op T. Likewise cuBLAS's B is our Aᵀ.
	rowsA, rowsB := n, k // rows of cuBLAS's A and B as stored, non-transposed
	if b.trans {
		g.opA = cublasOpT
		rowsA = k
	}
	if a.trans {
		g.opB = cublasOpT
		rowsB = m
	}
	if int(g.lda) < max(1, rowsA) || int(g.ldb) < max(1, rowsB) || ldc < max(1, n) {
		return g, false
	}
	return g, true
}

// gemm runs the row-major product on the stream: one cublasGemmEx, or
// cublasGemmStridedBatchedEx for batch > 1. a and b must share a dtype; C is F32;
// compute is cublasCompute32F or (F32 operands only) cublasCompute32FFastTF32.
// Caller holds the device.
func (c *cublas) gemm(batch, m, n, k int, alpha, beta float32, a, b matOperand, cPtr uint64, ldc, cBatch int, compute int32) error {
	g, ok := rowMajorGemm(m, n, k, a, b, ldc)
	if !ok || a.dt != b.dt || batch > math.MaxInt32 || (compute != cublasCompute32F && a.dt != tensor.F32) {
		return fmt.Errorf("%w: cuBLAS cannot take this product", ErrUnsupported)
	}
	t := cudaDataType(a.dt)
	al, be := alpha, beta
	if batch == 1 {
		r := c.cublasGemmEx(c.handle, g.opA, g.opB, g.m, g.n, g.k, unsafe.Pointer(&al),
			b.ptr, t, g.lda, a.ptr, t, g.ldb, unsafe.Pointer(&be), cPtr, cudaR32F, g.ldc, compute, cublasGemmDefault)
		return c.check("cublasGemmEx", r)
	}
	r := c.cublasGemmStridedBatchedEx(c.handle, g.opA, g.opB, g.m, g.n, g.k, unsafe.Pointer(&al),
		b.ptr, t, g.lda, int64(b.batch), a.ptr, t, g.ldb, int64(a.batch), unsafe.Pointer(&be),
		cPtr, cudaR32F, g.ldc, int64(cBatch), int32(batch), compute, cublasGemmDefault)
	return c.check("cublasGemmStridedBatchedEx", r)
}

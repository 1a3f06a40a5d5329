package cuda

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unsafe"

	"github.com/sdgo/sdgo/tensor"
)

// cuBLASLt runs the products of MatMul that have a bias in the TF32, FP16 and
// BF16 modes with the bias added in the GEMM's epilogue
// (CUBLASLT_EPILOGUE_BIAS), so that the F32 output is written once instead of
// being filled with the bias and then read back by cublasGemmEx with beta = 1.
// Every other product, and every product in FP32 mode, stays on cublasGemmEx.
//
// The row-major product D[b] = alpha·A[b]·B[b] + bias (A m×k, B k×n, D m×n,
// bias[j] added to column j of every row) maps onto column-major cuBLASLt as
// cublasGemmEx's does (rowMajorGemm): Dᵀ = alpha·Bᵀ·Aᵀ, Lt's A being our B and
// Lt's B our A, Lt's D (n rows × m columns, leading dimension ldc) our D. Our
// per-column bias is then one value per ROW of Lt's D, which is what
// CUBLASLT_EPILOGUE_BIAS adds: a vector whose length is D's number of rows (n),
// broadcast over D's columns (our rows) and over the batch
// (CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE left at 0), after the alpha scaling.
//
// The library is libcublasLt next to the libcublas that loadCublas found (see
// cublasLtCandidates), loaded at the first product that wants it. The
// descriptors, layouts and algorithm chosen by cublasLtMatmulAlgoGetHeuristic
// are kept per shape (ltKey) in a bounded map, since the heuristic costs tens
// of microseconds; one 32 MiB workspace is allocated at first use. Anything
// cuBLASLt cannot do (library missing, no algorithm, a status error) makes
// ltGemm return ErrUnsupported and the caller takes the old path. The
// environment variable SDGO_CUBLASLT=off (read on each product) turns it off.

// cublasLt is libcublasLt bound with purego, with one handle, the per-shape
// plans and the workspace. Its methods are called inside Device.do.
type cublasLt struct {
	path   string
	handle uintptr

	cublasLtCreate                       func(h *uintptr) int32
	cublasLtDestroy                      func(h uintptr) int32
	cublasLtMatmulDescCreate             func(d *uintptr, compute, scale int32) int32
	cublasLtMatmulDescDestroy            func(d uintptr) int32
	cublasLtMatmulDescSetAttribute       func(d uintptr, attr int32, buf unsafe.Pointer, size uintptr) int32
	cublasLtMatrixLayoutCreate           func(l *uintptr, t int32, rows, cols uint64, ld int64) int32
	cublasLtMatrixLayoutDestroy          func(l uintptr) int32
	cublasLtMatrixLayoutSetAttribute     func(l uintptr, attr int32, buf unsafe.Pointer, size uintptr) int32
	cublasLtMatmulPreferenceCreate       func(p *uintptr) int32
	cublasLtMatmulPreferenceDestroy      func(p uintptr) int32
	cublasLtMatmulPreferenceSetAttribute func(p uintptr, attr int32, buf unsafe.Pointer, size uintptr) int32
	cublasLtMatmulAlgoGetHeuristic       func(h, op, a, b, c, d, pref uintptr, requested int32, res *ltHeuristicResult, n *int32) int32
	cublasLtMatmul                       func(h, op uintptr, alpha unsafe.Pointer, a uint64, ad uintptr, b uint64, bd uintptr, beta unsafe.Pointer, c uint64, cd uintptr, d uint64, dd uintptr, algo *ltAlgo, ws uint64, wsSize uintptr, stream uintptr) int32

	plans      map[ltKey]*ltPlan
	ws         uint64 // the workspace (0: none)
	wsSize     uint64
	wsTried    bool
	heuristics int // calls of cublasLtMatmulAlgoGetHeuristic, for the tests
}

func (c *cublasLt) symbols() []symbol {
	return []symbol{
		{names: []string{"cublasLtCreate"}, fptr: &c.cublasLtCreate},
		{names: []string{"cublasLtDestroy"}, fptr: &c.cublasLtDestroy},
		{names: []string{"cublasLtMatmulDescCreate"}, fptr: &c.cublasLtMatmulDescCreate},
		{names: []string{"cublasLtMatmulDescDestroy"}, fptr: &c.cublasLtMatmulDescDestroy},
		{names: []string{"cublasLtMatmulDescSetAttribute"}, fptr: &c.cublasLtMatmulDescSetAttribute},
		{names: []string{"cublasLtMatrixLayoutCreate"}, fptr: &c.cublasLtMatrixLayoutCreate},
		{names: []string{"cublasLtMatrixLayoutDestroy"}, fptr: &c.cublasLtMatrixLayoutDestroy},
		{names: []string{"cublasLtMatrixLayoutSetAttribute"}, fptr: &c.cublasLtMatrixLayoutSetAttribute},
		{names: []string{"cublasLtMatmulPreferenceCreate"}, fptr: &c.cublasLtMatmulPreferenceCreate},
		{names: []string{"cublasLtMatmulPreferenceDestroy"}, fptr: &c.cublasLtMatmulPreferenceDestroy},
		{names: []string{"cublasLtMatmulPreferenceSetAttribute"}, fptr: &c.cublasLtMatmulPreferenceSetAttribute},
		{names: []string{"cublasLtMatmulAlgoGetHeuristic"}, fptr: &c.cublasLtMatmulAlgoGetHeuristic},
		{names: []string{"cublasLtMatmul"}, fptr: &c.cublasLtMatmul},
	}
}

// cuBLASLt constants (cublasLt.h; the same values in CUDA 11.8, 12 and 13).
// Attribute value types, which cuBLASLt checks against the size passed, are
// noted after each.
const (
	ltDescTransA       = 3  // CUBLASLT_MATMUL_DESC_TRANSA: int32 (cublasOperation_t)
	ltDescTransB       = 4  // CUBLASLT_MATMUL_DESC_TRANSB: int32
	ltDescEpilogue     = 7  // CUBLASLT_MATMUL_DESC_EPILOGUE: uint32 (cublasLtEpilogue_t)
	ltDescBiasPointer  = 8  // CUBLASLT_MATMUL_DESC_BIAS_POINTER: const void*
	ltDescBiasDataType = 26 // CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: int32 (cudaDataType)

	ltEpilogueBias = 4 // CUBLASLT_EPILOGUE_BIAS

	ltLayoutBatchCount  = 5 // CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: int32
	ltLayoutBatchStride = 6 // CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: int64

	ltPrefMaxWorkspace = 1 // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: uint64
	ltPrefAlignA       = 5 // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: uint32
	ltPrefAlignB       = 6 // ..._B_BYTES
	ltPrefAlignC       = 7 // ..._C_BYTES
	ltPrefAlignD       = 8 // ..._D_BYTES
)

// ltAlgo mirrors cublasLtMatmulAlgo_t: uint64_t data[8].
type ltAlgo struct{ data [8]uint64 }

// ltHeuristicResult mirrors cublasLtMatmulHeuristicResult_t (96 bytes).
type ltHeuristicResult struct {
	algo          ltAlgo  // offset 0
	workspaceSize uintptr // offset 64, size_t
	state         int32   // offset 72, cublasStatus_t
	wavesCount    float32 // offset 76
	reserved      [4]int32
}

const (
	// ltWorkspace is the workspace the device keeps for cuBLASLt (NVIDIA
	// recommends 32 MiB on Hopper).
	ltWorkspace = 32 << 20
	// ltMaxPlans bounds the shapes whose plans are kept.
	ltMaxPlans = 512
)

// ltKey is what a plan depends on, in cuBLASLt's (column-major) terms: Lt's A
// is our B, Lt's B our A (see rowMajorGemm). The alignments (of the addresses,
// capped at 256 bytes) go to the heuristic's preferences, so that the algorithm
// chosen can read operands that are not 256-byte aligned (views at an offset).
type ltKey struct {
	batch, m, n, k    int32
	opA, opB          int32
	lda, ldb, ldc     int32
	sa, sb, sc        int64 // batch strides of Lt's A, B and C/D, in elements
	dt, compute       int32 // the operands' cudaDataType, the compute type
	alA, alB, alC, al uint32
}

// ltPlan is a shape's descriptors and algorithm; ok is false when cuBLASLt
// offered no algorithm or failed, so that the shape falls back at once.
type ltPlan struct {
	ok             bool
	desc           uintptr
	la, lb, lc     uintptr // Lt's A, B and C/D layouts
	algo           ltAlgo
	workspaceBytes uint64
}

// ltLayout is one matrix layout as cublasLtMatrixLayoutCreate and the batch
// attributes receive it (column-major).
type ltLayout struct {
	dt         int32
	rows, cols uint64
	ld         int64
	batch      int32
	stride     int64
}

// layouts returns the layouts of Lt's A, B and C (= D) for k: A (our B) is n×k
// as op(A), stored k×n when transposed; B (our A) is k×m as op(B), stored m×k
// when transposed; C and D are F32 n×m.
func (k ltKey) layouts() (a, b, c ltLayout) {
	a = ltLayout{dt: k.dt, rows: uint64(k.m), cols: uint64(k.k), ld: int64(k.lda), batch: k.batch, stride: k.sa}
	if k.opA == cublasOpT {
		a.rows, a.cols = a.cols, a.rows
	}
	b = ltLayout{dt: k.dt, rows: uint64(k.k), cols: uint64(k.n), ld: int64(k.ldb), batch: k.batch, stride: k.sb}
	if k.opB == cublasOpT {
		b.rows, b.cols = b.cols, b.rows
	}
	c = ltLayout{dt: cudaR32F, rows: uint64(k.m), cols: uint64(k.n), ld: int64(k.ldc), batch: k.batch, stride: k.sc}
	return a, b, c
}

// ptrAlign is the alignment of device address p in bytes, at most 256.
func ptrAlign(p uint64) uint32 {
	if p == 0 {
		return 256
	}
	return uint32(min(p&-p, 256))
}

// ltKeyOf maps the row-major product (operands as cublas.gemm takes them, the
// bias at bias) onto a plan key; ok is false when cuBLASLt is not to be tried.
func ltKeyOf(batch, m, n, k int, a, b matOperand, c uint64, ldc, cBatch int, bias uint64, compute int32) (ltKey, bool) {
	g, ok := rowMajorGemm(m, n, k, a, b, ldc)
	if !ok || a.dt != b.dt || k == 0 || batch < 1 || batch > math.MaxInt32 ||
		(compute != cublasCompute32F && a.dt != tensor.F32) {
		return ltKey{}, false
	}
	key := ltKey{
		batch: int32(batch), m: g.m, n: g.n, k: g.k, opA: g.opA, opB: g.opB,
		lda: g.lda, ldb: g.ldb, ldc: g.ldc, dt: cudaDataType(a.dt), compute: compute,
		alA: ptrAlign(b.ptr), alB: ptrAlign(a.ptr), alC: ptrAlign(c), al: ptrAlign(bias),
	}
	if batch > 1 {
		key.sa, key.sb, key.sc = int64(b.batch), int64(a.batch), int64(cBatch)
	}
	return key, true
}

// errLtStatus is a cuBLASLt call that failed: the product falls back.
func (lt *cublasLt) check(op string, r int32) error {
	if r == cublasStatusSuccess {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrUnsupported, &Error{Op: op, Code: int(r), Name: nameOr(cublasStatusNames, int(r), "CUBLAS_STATUS")})
}

func (lt *cublasLt) descAttr(desc uintptr, attr int32, p unsafe.Pointer, size uintptr) error {
	return lt.check(fmt.Sprintf("cublasLtMatmulDescSetAttribute(%d)", attr), lt.cublasLtMatmulDescSetAttribute(desc, attr, p, size))
}

// workspace allocates the workspace at first use; without memory for it the
// products run without one.
func (lt *cublasLt) workspace(d *Device) {
	if lt.wsTried {
		return
	}
	lt.wsTried = true
	var p uint64
	if d.drv.cuMemAlloc(&p, ltWorkspace) == 0 {
		lt.ws, lt.wsSize = p, ltWorkspace
	}
}

// layout creates one matrix layout.
func (lt *cublasLt) layout(l ltLayout) (uintptr, error) {
	var h uintptr
	if err := lt.check("cublasLtMatrixLayoutCreate", lt.cublasLtMatrixLayoutCreate(&h, l.dt, l.rows, l.cols, l.ld)); err != nil {
		return 0, err
	}
	if l.batch > 1 {
		bc, st := l.batch, l.stride
		err := lt.check("cublasLtMatrixLayoutSetAttribute(BATCH_COUNT)", lt.cublasLtMatrixLayoutSetAttribute(h, ltLayoutBatchCount, unsafe.Pointer(&bc), 4))
		if err == nil {
			err = lt.check("cublasLtMatrixLayoutSetAttribute(STRIDED_BATCH_OFFSET)", lt.cublasLtMatrixLayoutSetAttribute(h, ltLayoutBatchStride, unsafe.Pointer(&st), 8))
		}
		if err != nil {
			lt.cublasLtMatrixLayoutDestroy(h)
			return 0, err
		}
	}
	return h, nil
}

// newPlan creates the descriptors of key and asks the heuristic for an
// algorithm, the bias at bias (whose alignment the heuristic reads).
func (lt *cublasLt) newPlan(key ltKey, bias uint64) (*ltPlan, error) {
	p := &ltPlan{}
	if err := lt.check("cublasLtMatmulDescCreate", lt.cublasLtMatmulDescCreate(&p.desc, key.compute, cudaR32F)); err != nil {
		return p, err
	}
	ta, tb, epi, bdt := key.opA, key.opB, uint32(ltEpilogueBias), int32(cudaR32F)
	for _, s := range []struct {
		attr int32
		p    unsafe.Pointer
		size uintptr
	}{
		{ltDescTransA, unsafe.Pointer(&ta), 4},
		{ltDescTransB, unsafe.Pointer(&tb), 4},
		{ltDescEpilogue, unsafe.Pointer(&epi), 4},
		{ltDescBiasDataType, unsafe.Pointer(&bdt), 4},
		{ltDescBiasPointer, unsafe.Pointer(&bias), 8},
	} {
		if err := lt.descAttr(p.desc, s.attr, s.p, s.size); err != nil {
			return p, err
		}
	}
	la, lb, lc := key.layouts()
	var err error
	if p.la, err = lt.layout(la); err != nil {
		return p, err
	}
	if p.lb, err = lt.layout(lb); err != nil {
		return p, err
	}
	if p.lc, err = lt.layout(lc); err != nil {
		return p, err
	}
	var pref uintptr
	if err := lt.check("cublasLtMatmulPreferenceCreate", lt.cublasLtMatmulPreferenceCreate(&pref)); err != nil {
		return p, err
	}
	defer lt.cublasLtMatmulPreferenceDestroy(pref)
	ws := lt.wsSize
	if err := lt.check("cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)", lt.cublasLtMatmulPreferenceSetAttribute(pref, ltPrefMaxWorkspace, unsafe.Pointer(&ws), 8)); err != nil {
		return p, err
	}
	for _, al := range []struct {
		attr int32
		v    uint32
	}{{ltPrefAlignA, key.alA}, {ltPrefAlignB, key.alB}, {ltPrefAlignC, key.alC}, {ltPrefAlignD, key.alC}} {
		v := al.v
		if err := lt.check("cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT)", lt.cublasLtMatmulPreferenceSetAttribute(pref, al.attr, unsafe.Pointer(&v), 4)); err != nil {
			return p, err
		}
	}
	var res ltHeuristicResult
	var n int32
	lt.heuristics++
	if err := lt.check("cublasLtMatmulAlgoGetHeuristic", lt.cublasLtMatmulAlgoGetHeuristic(lt.handle, p.desc, p.la, p.lb, p.lc, p.lc, pref, 1, &res, &n)); err != nil {
		return p, err
	}
	if n < 1 || res.state != cublasStatusSuccess || uint64(res.workspaceSize) > lt.wsSize {
		return p, fmt.Errorf("%w: cublasLtMatmulAlgoGetHeuristic found no algorithm", ErrUnsupported)
	}
	p.algo, p.workspaceBytes, p.ok = res.algo, uint64(res.workspaceSize), true
	return p, nil
}

// destroyPlan frees p's descriptors.
func (lt *cublasLt) destroyPlan(p *ltPlan) {
	for _, l := range []uintptr{p.la, p.lb, p.lc} {
		if l != 0 {
			lt.cublasLtMatrixLayoutDestroy(l)
		}
	}
	if p.desc != 0 {
		lt.cublasLtMatmulDescDestroy(p.desc)
	}
	*p = ltPlan{}
}

// plan returns key's plan, creating it (and evicting one, when the map is
// full) at the first use of the shape. A shape cuBLASLt failed on keeps a
// plan with ok false.
func (lt *cublasLt) plan(key ltKey, bias uint64) *ltPlan {
	if p, ok := lt.plans[key]; ok {
		return p
	}
	if lt.plans == nil {
		lt.plans = map[ltKey]*ltPlan{}
	}
	if len(lt.plans) >= ltMaxPlans {
		for k, p := range lt.plans {
			lt.destroyPlan(p)
			delete(lt.plans, k)
			break
		}
	}
	p, err := lt.newPlan(key, bias)
	if err != nil {
		lt.destroyPlan(p) // keeps ok false
	}
	lt.plans[key] = p
	return p
}

// gemmBias queues the row-major D[b] = alpha·A[b]·B[b] + bias on the device's
// stream (operands as cublas.gemm takes them; bias F32, contiguous, n
// elements; D F32 at c with rows ldc apart and batch stride cBatch). It returns
// an error wrapping ErrUnsupported, having queued nothing, when cuBLASLt cannot
// run it. Caller holds the device.
func (lt *cublasLt) gemmBias(d *Device, batch, m, n, k int, alpha float32, a, b matOperand, bias, c uint64, ldc, cBatch int, compute int32) error {
	key, ok := ltKeyOf(batch, m, n, k, a, b, c, ldc, cBatch, bias, compute)
	if !ok {
		return fmt.Errorf("%w: cuBLASLt cannot take this product", ErrUnsupported)
	}
	lt.workspace(d)
	p := lt.plan(key, bias)
	if !p.ok {
		return fmt.Errorf("%w: no cuBLASLt algorithm for this product", ErrUnsupported)
	}
	if err := lt.descAttr(p.desc, ltDescBiasPointer, unsafe.Pointer(&bias), 8); err != nil {
		return err
	}
	al, be := alpha, float32(0)
	r := lt.cublasLtMatmul(lt.handle, p.desc, unsafe.Pointer(&al), b.ptr, p.la, a.ptr, p.lb, unsafe.Pointer(&be),
		c, p.lc, c, p.lc, &p.algo, lt.ws, uintptr(p.workspaceBytes), d.stream)
	if err := lt.check("cublasLtMatmul", r); err != nil {
		p.ok = false // do not try this shape again
		return err
	}
	return nil
}

// destroy frees the plans, the workspace and the handle. Caller holds the
// device, whose stream is idle.
func (lt *cublasLt) destroy(d *Device) error {
	for k, p := range lt.plans {
		lt.destroyPlan(p)
		delete(lt.plans, k)
	}
	var err error
	if lt.ws != 0 {
		err = d.drv.check("cuMemFree_v2", d.drv.cuMemFree(lt.ws))
		lt.ws, lt.wsSize = 0, 0
	}
	if lt.handle != 0 {
		lt.cublasLtDestroy(lt.handle)
		lt.handle = 0
	}
	return err
}

// ltOff says whether SDGO_CUBLASLT turns cuBLASLt off.
func ltOff(env func(string) string) bool {
	v := strings.ToLower(env("SDGO_CUBLASLT"))
	return v == "0" || v == "off" || v == "false"
}

// cublasLtCandidates lists the files tried for cuBLASLt, given the libcublas
// that was loaded: $SDGO_CUBLASLT when it names a file; then in libcublas's
// directory the libcublasLt of the same version (libcublas.so.12 →
// libcublasLt.so.12, which libcublas itself links to), then libcublasLt.so.13,
// .12, .11 and .so there; then those names on the dynamic loader's path.
func cublasLtCandidates(env func(string) string, blasPath string) []string {
	if p := env("SDGO_CUBLASLT"); strings.Contains(p, "/") {
		return []string{p}
	}
	var names []string
	if base := filepath.Base(blasPath); strings.HasPrefix(base, "libcublas.so") {
		names = append(names, "libcublasLt"+strings.TrimPrefix(base, "libcublas"))
	}
	for _, n := range cublasNames {
		if n = "libcublasLt" + strings.TrimPrefix(n, "libcublas"); !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	var c []string
	if strings.Contains(blasPath, "/") {
		dir := filepath.Dir(blasPath)
		for _, n := range names {
			c = append(c, filepath.Join(dir, n))
		}
	}
	return append(c, names...)
}

// fakeCublasLt, when set (by the tests), stands in for the library.
var fakeCublasLt func(d *Device) (*cublasLt, error)

// errNoCublasLt says cuBLASLt was not found.
var errNoCublasLt = errors.New("cuBLASLt not found")

// loadCublasLt loads cuBLASLt next to the device's cuBLAS and creates its
// handle. Caller holds the device.
func loadCublasLt(d *Device) (*cublasLt, error) {
	if fakeCublasLt != nil {
		return fakeCublasLt(d)
	}
	if d.blas == nil || fakeCublas != nil {
		return nil, fmt.Errorf("%w: no cuBLAS library", errNoCublasLt)
	}
	cands := cublasLtCandidates(os.Getenv, d.blas.path)
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
		lt := &cublasLt{path: path}
		if err := bindSymbols(h, path, lt.symbols()); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if r := lt.cublasLtCreate(&lt.handle); r != cublasStatusSuccess {
			errs = append(errs, fmt.Sprintf("%s: cublasLtCreate: %s", path, nameOr(cublasStatusNames, int(r), "CUBLAS_STATUS")))
			continue
		}
		return lt, nil
	}
	msg := fmt.Sprintf("tried %s", strings.Join(cands, ", "))
	if len(errs) > 0 {
		msg += ": " + strings.Join(errs, "; ")
	}
	return nil, fmt.Errorf("%w (%s)", errNoCublasLt, msg)
}

// cublasLt returns the device's cuBLASLt, loading it at the first call, or
// an error wrapping ErrUnsupported saying why there is none. Caller holds the
// device.
func (d *Device) cublasLt() (*cublasLt, error) {
	if !d.ltTried {
		d.ltTried = true
		d.lt, d.ltErr = loadCublasLt(d)
	}
	if d.lt == nil {
		return nil, fmt.Errorf("%w: %w", ErrUnsupported, d.ltErr)
	}
	return d.lt, nil
}

// ltGemm tries the product g (a MatMul product with its bias at pbias, dtype
// bdt, stride bs) on cuBLASLt with operands a and b as blasGemm prepared them.
// It returns an error wrapping ErrUnsupported, having queued nothing but
// perhaps the bias's conversion, when cuBLASLt is off, missing or cannot run
// it.
func (r *run) ltGemm(g gemmCall, a, b matOperand, pbias uint64, bdt tensor.DType, bs int, compute int32) error {
	if ltOff(os.Getenv) {
		return fmt.Errorf("%w: SDGO_CUBLASLT=off", ErrUnsupported)
	}
	lt, err := r.d.cublasLt()
	if err != nil {
		return err
	}
	if _, ok := ltKeyOf(g.nb, g.m, g.n, g.k, a, b, g.c, g.ldc, g.scb, 0, compute); !ok {
		return fmt.Errorf("%w: cuBLASLt cannot take this product", ErrUnsupported)
	}
	if bdt != tensor.F32 || (bs != 1 && g.n > 1) {
		// A contiguous F32 copy of the bias (n elements).
		q, err := r.temp(tensor.F32, g.n)
		if err != nil {
			return err
		}
		if err := r.copy(q, tensor.F32, []int{1}, pbias, bdt, []int{bs}, []int{g.n}); err != nil {
			return err
		}
		pbias = q
	}
	return lt.gemmBias(r.d, g.nb, g.m, g.n, g.k, g.alpha, a, b, pbias, g.c, g.ldc, g.scb, compute)
}

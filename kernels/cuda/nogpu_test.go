package cuda

import (
	"errors"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/sdgo/sdgo/tensor"
)

func TestLoadDriverMissing(t *testing.T) {
	_, err := loadDriver([]string{"/nonexistent/libcuda.so.1", "/also/missing/libcuda.so.1"})
	if err == nil {
		t.Fatal("loading a missing library succeeded")
	}
	if !errors.Is(err, ErrNoDriver) {
		t.Errorf("error %v does not wrap ErrNoDriver", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "cuda: no NVIDIA driver: ") {
		t.Errorf("message %q", msg)
	}
	if supported && !strings.Contains(msg, "libcuda.so.1 not found (tried /nonexistent/libcuda.so.1, /also/missing/libcuda.so.1") {
		t.Errorf("message %q does not say what was tried", msg)
	}
	t.Log(msg)
}

// TestOpenWithoutGPU checks that Open either works or fails with a clear error:
// on a machine without a GPU (with or without the driver library) it wraps
// ErrNoDriver.
func TestOpenWithoutGPU(t *testing.T) {
	d, err := Open(0)
	if err == nil {
		t.Logf("a GPU is present: %v", d)
		if err := d.Close(); err != nil {
			t.Error(err)
		}
		if err := d.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := d.StartTimer(); !errors.Is(err, errClosed) {
			t.Errorf("use after Close: %v", err)
		}
		return
	}
	t.Logf("Open(0): %v", err)
	if !strings.HasPrefix(err.Error(), "cuda: ") {
		t.Errorf("message %q does not start with cuda:", err)
	}
	var ce *Error
	if !errors.Is(err, ErrNoDriver) && !errors.Is(err, ErrUnsupported) && !errors.As(err, &ce) {
		t.Errorf("Open error %v wraps neither ErrNoDriver, ErrUnsupported nor *Error", err)
	}
	if _, err2 := Open(0); err2 == nil || err2.Error() != err.Error() {
		t.Errorf("second Open: %v, want the same error", err2)
	}
}

func TestErrorMessage(t *testing.T) {
	var d *driver // no library: names come from the built-in table
	err := d.check("cuMemAlloc_v2", errOutOfMemory)
	if got, want := err.Error(), "cuda: cuMemAlloc_v2: CUDA_ERROR_OUT_OF_MEMORY (2)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	full := &Error{Op: "cuMemAlloc_v2", Code: 2, Name: "CUDA_ERROR_OUT_OF_MEMORY", Msg: "out of memory"}
	if got, want := full.Error(), "cuda: cuMemAlloc_v2: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if !errors.Is(err, &Error{Code: errOutOfMemory}) || errors.Is(err, &Error{Code: errInvalidValue}) {
		t.Error("errors.Is by code")
	}
	if !errors.Is(err, &Error{Op: "cuMemAlloc_v2", Code: 2}) || errors.Is(err, &Error{Op: "cuMemFree_v2", Code: 2}) {
		t.Error("errors.Is by op and code")
	}
	if d.check("x", 0) != nil {
		t.Error("CUDA_SUCCESS is an error")
	}
	if got := d.check("cuInit", 12345).Error(); got != "cuda: cuInit: CUDA_ERROR_12345 (12345)" {
		t.Errorf("unknown code: %q", got)
	}
	wrapped := &noDriverError{msg: "x", err: err}
	if !errors.Is(wrapped, ErrNoDriver) || !errors.Is(wrapped, &Error{Code: 2}) {
		t.Error("noDriverError unwrapping")
	}
}

// TestBindSignatures registers every driver and cuBLAS binding with purego at a
// dummy address (nothing is called): purego rejects unsupported signatures when
// a function is registered, so this catches them without a GPU.
func TestBindSignatures(t *testing.T) {
	if !supported {
		t.Skip("no dynamic loading on " + runtime.GOOS + "/" + runtime.GOARCH)
	}
	d := &driver{}
	for _, s := range d.symbols() {
		bindFunc(s.fptr, 1)
		if reflect.ValueOf(s.fptr).Elem().IsNil() {
			t.Errorf("%s not bound", s.names[0])
		}
	}
	c := &cublas{}
	for _, s := range c.symbols() {
		bindFunc(s.fptr, 1)
	}
}

func TestKernelArgs(t *testing.T) {
	d := &dims{Rank: 3, Shape: [maxRank]int64{2, 3, 4}}
	d.Strides[1] = [maxRank]int64{12, 4, 1}
	d.Strides[2] = [maxRank]int64{0, -1, 0}
	a := newArgs().Ptr(0xdeadbeef00).I32(-7).F32(1.5).I64(-3).Dims(d).I32(9)
	p := a.pointers()
	if len(p) != 6 {
		t.Fatalf("%d pointers", len(p))
	}
	if v := *(*uint64)(p[0]); v != 0xdeadbeef00 {
		t.Errorf("ptr %#x", v)
	}
	if v := *(*int32)(p[1]); v != -7 {
		t.Errorf("int %d", v)
	}
	if v := *(*float32)(p[2]); v != 1.5 {
		t.Errorf("float %v", v)
	}
	if v := *(*int64)(p[3]); v != -3 {
		t.Errorf("long long %d", v)
	}
	got := *(*[1 + maxRank + 3*maxRank]int64)(p[4])
	want := [1 + maxRank + 3*maxRank]int64{3, 2, 3, 4}
	copy(want[1+maxRank+maxRank:], []int64{12, 4, 1, 0, 0, 0, 0, -1})
	if got != want {
		t.Errorf("dims %v, want %v", got, want)
	}
	if v := *(*int32)(p[5]); v != 9 {
		t.Errorf("after dims: %d", v)
	}
	// Every parameter is 8-byte aligned.
	for i, q := range p {
		if uintptr(q)%8 != 0 {
			t.Errorf("param %d misaligned", i)
		}
	}
	if unsafe.Sizeof(dims{}) != 200 {
		t.Errorf("dims is %d bytes", unsafe.Sizeof(dims{}))
	}
	if v := math.Float32frombits(uint32(newArgs().F32(-2.25).slots[0])); v != -2.25 {
		t.Errorf("F32 slot %v", v)
	}
}

func TestRoundBytes(t *testing.T) {
	for _, c := range []struct{ n, want uint64 }{
		{0, 512}, {1, 512}, {512, 512}, {513, 1024}, {1024, 1024}, {1025, 1536}, {2048, 2048},
		{2049, 2560}, {4096, 4096}, {4097, 5120}, {1 << 20, 1 << 20}, {1<<20 + 1, 1<<20 + 1<<18},
		{3<<20 + 5, 3<<20 + 1<<19},
	} {
		got := roundBytes(c.n)
		if got != c.want {
			t.Errorf("roundBytes(%d) = %d, want %d", c.n, got, c.want)
		}
	}
	for n := uint64(1); n < 1<<22; n = n*3/2 + 7 {
		r := roundBytes(n)
		if r < n || r%minBlock != 0 || (n > 2048 && float64(r-n) > 0.25*float64(n)) {
			t.Errorf("roundBytes(%d) = %d", n, r)
		}
	}
}

func TestMemCache(t *testing.T) {
	c := newMemCache(4096)
	c.used(0x1000, 1024)
	c.used(0x2000, 2048)
	c.used(0x3000, 8192)
	if c.stats.InUse != 11264 || c.stats.PeakInUse != 11264 {
		t.Fatalf("stats %+v", c.stats)
	}
	if ev, ok := c.put(0x1000); !ok || len(ev) != 0 {
		t.Errorf("put: %v %v", ev, ok)
	}
	if _, ok := c.put(0x1000); ok {
		t.Error("double free accepted")
	}
	if _, ok := c.put(0x9999); ok {
		t.Error("foreign pointer accepted")
	}
	// Larger than the limit: straight back to the driver.
	if ev, _ := c.put(0x3000); len(ev) != 1 || ev[0] != (block{0x3000, 8192}) {
		t.Errorf("oversized put evicts %v", ev)
	}
	if ev, _ := c.put(0x2000); len(ev) != 0 || c.stats.Cached != 3072 {
		t.Errorf("put 2048: %v, cached %d", ev, c.stats.Cached)
	}
	if p, ok := c.take(1024); !ok || p != 0x1000 || c.stats.Reused != 1 {
		t.Errorf("take 1024: %#x %v", p, ok)
	}
	if _, ok := c.take(1024); ok {
		t.Error("took from an empty list")
	}
	// Filling past the limit evicts the largest cached blocks first.
	c.used(0x4000, 2048)
	c.used(0x5000, 512)
	c.put(0x1000) // 1024 + 2048 cached
	ev, _ := c.put(0x4000)
	if len(ev) != 1 || ev[0].size != 2048 || c.stats.Cached != 3072 {
		t.Errorf("evicted %v, cached %d", ev, c.stats.Cached)
	}
	if ev := c.setLimit(1024); len(ev) != 1 || c.stats.Cached != 1024 {
		t.Errorf("setLimit evicted %v, cached %d", ev, c.stats.Cached)
	}
	if all := c.drain(); len(all) != 1 || c.stats.Cached != 0 {
		t.Errorf("drain %v", all)
	}
	if c.stats.InUse != 512 {
		t.Errorf("in use %d", c.stats.InUse)
	}
}

func TestCublasCandidates(t *testing.T) {
	env := map[string]string{"CUDA_HOME": "/opt/cuda"}
	glob := func(string) ([]string, error) {
		return []string{"/usr/local/cuda-11.8/lib64", "/usr/local/cuda-12.4/lib64"}, nil
	}
	c := cublasCandidates(func(k string) string { return env[k] }, glob)
	want := []string{
		"/opt/cuda/lib64/libcublas.so.13", "/opt/cuda/lib64/libcublas.so.12",
	}
	if !reflect.DeepEqual(c[:2], want) {
		t.Errorf("first candidates %v", c[:2])
	}
	idx := func(s string) int {
		for i, x := range c {
			if x == s {
				return i
			}
		}
		return -1
	}
	if !(idx("/usr/local/cuda/lib64/libcublas.so.12") < idx("/usr/local/cuda-12.4/lib64/libcublas.so.12") &&
		idx("/usr/local/cuda-12.4/lib64/libcublas.so.12") < idx("/usr/local/cuda-11.8/lib64/libcublas.so.11") &&
		idx("/usr/local/cuda-11.8/lib64/libcublas.so.11") < idx("libcublas.so.12")) {
		t.Errorf("order: %v", c)
	}
	if c[len(c)-1] != "libcublas.so" {
		t.Errorf("last %s", c[len(c)-1])
	}
	env["SDGO_CUBLAS"] = "/x/libcublas.so.12"
	if c := cublasCandidates(func(k string) string { return env[k] }, glob); !reflect.DeepEqual(c, []string{"/x/libcublas.so.12"}) {
		t.Errorf("SDGO_CUBLAS: %v", c)
	}
}

// TestRowMajorGemm checks the mapping of row-major products onto column-major
// cuBLAS by evaluating both on small matrices in Go.
func TestRowMajorGemm(t *testing.T) {
	const m, n, k = 3, 5, 4
	aMem := make([]float32, 64)
	bMem := make([]float32, 64)
	for i := range aMem {
		aMem[i] = float32(i%7) - 3
		bMem[i] = float32(i%5) - 2
	}
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			lda, ldb := k+1, n+2
			if ta {
				lda = m + 1
			}
			if tb {
				ldb = k + 3
			}
			at := func(i, p int) float32 {
				if ta {
					return aMem[p*lda+i]
				}
				return aMem[i*lda+p]
			}
			bt := func(p, j int) float32 {
				if tb {
					return bMem[j*ldb+p]
				}
				return bMem[p*ldb+j]
			}
			g, ok := rowMajorGemm(m, n, k, matOperand{ld: lda, trans: ta}, matOperand{ld: ldb, trans: tb}, n)
			if !ok {
				t.Fatalf("ta=%v tb=%v rejected", ta, tb)
			}
			// Column-major evaluation of C' = op(X)·op(Y), X = B's memory, Y = A's.
			colX := func(r, c int) float32 { // op(X) is g.m×g.k
				if g.opA == cublasOpT {
					return bMem[r*int(g.lda)+c]
				}
				return bMem[c*int(g.lda)+r]
			}
			colY := func(r, c int) float32 { // op(Y) is g.k×g.n
				if g.opB == cublasOpT {
					return aMem[r*int(g.ldb)+c]
				}
				return aMem[c*int(g.ldb)+r]
			}
			cMem := make([]float32, m*n)
			for r := 0; r < int(g.m); r++ {
				for c := 0; c < int(g.n); c++ {
					var s float32
					for p := 0; p < int(g.k); p++ {
						s += colX(r, p) * colY(p, c)
					}
					cMem[c*int(g.ldc)+r] = s
				}
			}
			for i := range m {
				for j := range n {
					var s float32
					for p := range k {
						s += at(i, p) * bt(p, j)
					}
					if cMem[i*n+j] != s {
						t.Fatalf("ta=%v tb=%v: C[%d,%d] = %v, want %v", ta, tb, i, j, cMem[i*n+j], s)
					}
				}
			}
		}
	}
	if _, ok := rowMajorGemm(4, 4, 4, matOperand{ld: 2}, matOperand{ld: 4}, 4); ok {
		t.Error("lda below k accepted")
	}
	if big := math.MaxInt; big > math.MaxInt32 {
		if _, ok := rowMajorGemm(big, 4, 4, matOperand{ld: 4}, matOperand{ld: 4}, 4); ok {
			t.Error("m beyond int32 accepted")
		}
	}
}

func TestGemmLayout(t *testing.T) {
	for _, c := range []struct {
		rows, cols, sr, sc int
		ld                 int
		trans, ok          bool
	}{
		{3, 4, 4, 1, 4, false, true},
		{3, 4, 1, 3, 3, true, true},
		{3, 4, 8, 1, 8, false, true},
		{3, 4, 2, 2, 0, false, false},
		{1, 4, 0, 1, 4, false, true},
		{4, 1, 5, 0, 5, false, true},
		{3, 4, 2, 1, 0, false, false}, // overlapping rows
	} {
		ld, tr, ok := tensor.GemmLayout(c.rows, c.cols, c.sr, c.sc)
		if ok != c.ok || (ok && (ld != c.ld || tr != c.trans)) {
			t.Errorf("gemmLayout%v = %d %v %v", c, ld, tr, ok)
		}
	}
}

func TestCoalesceAndSplit(t *testing.T) {
	// A transposed [2,3,4] view and a contiguous destination.
	sh, st := tensor.Coalesce([]int{2, 3, 4}, []int{12, 4, 1}, []int{1, 8, 2})
	if !reflect.DeepEqual(sh, []int{2, 12}) || !reflect.DeepEqual(st[0], []int{12, 1}) || !reflect.DeepEqual(st[1], []int{1, 2}) {
		t.Errorf("coalesce %v %v", sh, st)
	}
	sh, st = tensor.Coalesce([]int{2, 1, 3, 4}, []int{12, 12, 4, 1}, []int{12, 0, 4, 1})
	if !reflect.DeepEqual(sh, []int{24}) || st[0][0] != 1 || st[1][0] != 1 {
		t.Errorf("contiguous coalesce %v %v", sh, st)
	}
	// Rank 8 splits into launches of rank 6 whose offsets cover every element once.
	shape := []int{2, 3, 2, 2, 2, 2, 2, 3}
	strides := tensor.ContiguousStrides(shape)
	rev := make([]int, len(shape)) // a reversed-order view: no dimension merges
	s := 1
	for i := range shape {
		rev[i] = s
		s *= shape[i]
	}
	seen := map[[2]int]bool{}
	calls := 0
	err := forDims(shape, [][]int{strides, rev}, []int{0, 0}, func(off []int, d *dims) error {
		calls++
		if d.Rank != maxRank {
			t.Errorf("rank %d", d.Rank)
		}
		var walk func(r int, o0, o1 int)
		walk = func(r int, o0, o1 int) {
			if r == int(d.Rank) {
				seen[[2]int{o0, o1}] = true
				return
			}
			for i := range int(d.Shape[r]) {
				walk(r+1, o0+i*int(d.Strides[0][r]), o1+i*int(d.Strides[1][r]))
			}
		}
		walk(0, off[0], off[1])
		return nil
	})
	if err != nil || calls != 6 || len(seen) != numel(shape) {
		t.Errorf("forDims: %v, %d calls, %d offsets", err, calls, len(seen))
	}
}

// TestStorageOfOtherBackend checks the error for storage that is not the
// backend's own, without a device.
func TestStorageOfOtherBackend(t *testing.T) {
	b := &Backend{dev: &Device{name: "test"}}
	cpu := tensor.NewCPU()
	s, _ := cpu.Alloc(tensor.F32, 4)
	_, err := b.storage("Read", s)
	if !errors.Is(err, tensor.ErrBackend) {
		t.Errorf("storage of the CPU: %v", err)
	}
	b.Free(s) // ignored, no panic
}

// The group norm's grid: enough blocks to fill the GPU, chunks of at least 8192
// elements, and the apply kernel's blocks within the grid's limits.
func TestGroupNormGrid(t *testing.T) {
	for _, c := range []struct {
		ngroups, length, rows, spatial, sms int
		splits, rowBlocks                   int
	}{
		{32, 4 << 20, 128, 1 << 20, 132, 9, 1024}, // VAE 1024x1024, 128 channels
		{32, 4 << 18, 128, 1 << 18, 132, 9, 256},  // VAE 512x512
		{64, 40960, 640, 4096, 132, 5, 4},         // UNet 64x64 at batch 2
		{64, 2560, 2560, 64, 132, 1, 1},           // UNet 8x8: chunks would be too short
		{1, 3, 1, 3, 0, 1, 1},                     // tiny, and a device that reports no SMs
	} {
		s, rb := groupNormGrid(c.ngroups, c.length, c.rows, c.spatial, c.sms)
		if s != c.splits || rb != c.rowBlocks {
			t.Errorf("groupNormGrid(%d, %d, %d, %d, %d) = %d, %d; want %d, %d", c.ngroups, c.length, c.rows, c.spatial, c.sms, s, rb, c.splits, c.rowBlocks)
		}
	}
}

func TestLayerNormWarpKernel(t *testing.T) {
	for n, want := range map[int]string{1: "layer_norm_warp32_f32", 1024: "layer_norm_warp32_f32", 1025: "layer_norm_warp64_f32", 2048: "layer_norm_warp64_f32", 2049: ""} {
		if got := layerNormWarpKernel(n); got != want {
			t.Errorf("layerNormWarpKernel(%d) = %q, want %q", n, got, want)
		}
	}
}

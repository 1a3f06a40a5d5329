package cuda

import (
	"errors"
	"math"
	"reflect"
	"runtime"
	"slices"
	"testing"
	"unsafe"

	"github.com/sdgo/sdgo/tensor"
)

// fakeLt is a host model of the cuBLASLt functions this package calls: it
// keeps the descriptors' attributes as cuBLASLt would (checking each
// attribute's size as the library does), and cublasLtMatmul interprets the
// layouts, the transposes and the bias epilogue over host memory at the raw
// addresses, with refGemm for the product. The tests of the call mapping and
// the emulator (emu_test.go) use it.
type fakeLt struct {
	next    uintptr
	descs   map[uintptr]*fakeLtDesc
	layouts map[uintptr]*ltLayout
	prefs   map[uintptr]*fakeLtPref

	noAlgo     bool  // the heuristic finds nothing
	failMatmul int32 // cublasLtMatmul returns this status when non-zero
	lastPref   fakeLtPref
	matmuls    int
}

type fakeLtDesc struct {
	compute, scale int32
	ta, tb         int32
	epilogue       uint32
	bias           uint64
	biasType       int32
}

type fakeLtPref struct {
	ws    uint64
	align [4]uint32 // A, B, C, D
}

// live counts the descriptors and layouts not destroyed.
func (f *fakeLt) live() int { return len(f.descs) + len(f.layouts) + len(f.prefs) }

// ltHostPtr turns an address of host memory into a pointer.
func ltHostPtr(p uint64) unsafe.Pointer {
	u := uintptr(p)
	return *(*unsafe.Pointer)(unsafe.Pointer(&u))
}

// newFakeLt returns a cublasLt bound to a new fakeLt.
func newFakeLt() (*cublasLt, *fakeLt) {
	f := &fakeLt{next: 100, descs: map[uintptr]*fakeLtDesc{}, layouts: map[uintptr]*ltLayout{}, prefs: map[uintptr]*fakeLtPref{}}
	const handle = 7
	lt := &cublasLt{path: "fake cuBLASLt (host GEMM)", handle: handle}
	id := func() uintptr { f.next++; return f.next }
	i32 := func(p unsafe.Pointer) int32 { return *(*int32)(p) }
	lt.cublasLtCreate = func(h *uintptr) int32 { *h = handle; return 0 }
	lt.cublasLtDestroy = func(h uintptr) int32 { return 0 }
	lt.cublasLtMatmulDescCreate = func(d *uintptr, compute, scale int32) int32 {
		*d = id()
		f.descs[*d] = &fakeLtDesc{compute: compute, scale: scale, epilogue: 1, biasType: -1}
		return 0
	}
	lt.cublasLtMatmulDescDestroy = func(d uintptr) int32 {
		if f.descs[d] == nil {
			return cublasInvalidValue
		}
		delete(f.descs, d)
		return 0
	}
	lt.cublasLtMatmulDescSetAttribute = func(d uintptr, attr int32, buf unsafe.Pointer, size uintptr) int32 {
		desc := f.descs[d]
		want := map[int32]uintptr{ltDescTransA: 4, ltDescTransB: 4, ltDescEpilogue: 4, ltDescBiasPointer: 8, ltDescBiasDataType: 4}
		if desc == nil || buf == nil || want[attr] == 0 || want[attr] != size {
			return cublasInvalidValue
		}
		switch attr {
		case ltDescTransA:
			desc.ta = i32(buf)
		case ltDescTransB:
			desc.tb = i32(buf)
		case ltDescEpilogue:
			desc.epilogue = *(*uint32)(buf)
		case ltDescBiasPointer:
			desc.bias = *(*uint64)(buf)
		case ltDescBiasDataType:
			desc.biasType = i32(buf)
		}
		return 0
	}
	lt.cublasLtMatrixLayoutCreate = func(l *uintptr, t int32, rows, cols uint64, ld int64) int32 {
		*l = id()
		f.layouts[*l] = &ltLayout{dt: t, rows: rows, cols: cols, ld: ld, batch: 1}
		return 0
	}
	lt.cublasLtMatrixLayoutDestroy = func(l uintptr) int32 {
		if f.layouts[l] == nil {
			return cublasInvalidValue
		}
		delete(f.layouts, l)
		return 0
	}
	lt.cublasLtMatrixLayoutSetAttribute = func(l uintptr, attr int32, buf unsafe.Pointer, size uintptr) int32 {
		lay := f.layouts[l]
		switch {
		case lay == nil || buf == nil:
			return cublasInvalidValue
		case attr == ltLayoutBatchCount && size == 4:
			lay.batch = i32(buf)
		case attr == ltLayoutBatchStride && size == 8:
			lay.stride = *(*int64)(buf)
		default:
			return cublasInvalidValue
		}
		return 0
	}
	lt.cublasLtMatmulPreferenceCreate = func(p *uintptr) int32 {
		*p = id()
		f.prefs[*p] = &fakeLtPref{align: [4]uint32{256, 256, 256, 256}}
		return 0
	}
	lt.cublasLtMatmulPreferenceDestroy = func(p uintptr) int32 {
		if f.prefs[p] == nil {
			return cublasInvalidValue
		}
		delete(f.prefs, p)
		return 0
	}
	lt.cublasLtMatmulPreferenceSetAttribute = func(p uintptr, attr int32, buf unsafe.Pointer, size uintptr) int32 {
		pr := f.prefs[p]
		switch {
		case pr == nil || buf == nil:
			return cublasInvalidValue
		case attr == ltPrefMaxWorkspace && size == 8:
			pr.ws = *(*uint64)(buf)
		case attr >= ltPrefAlignA && attr <= ltPrefAlignD && size == 4:
			pr.align[attr-ltPrefAlignA] = *(*uint32)(buf)
		default:
			return cublasInvalidValue
		}
		return 0
	}
	lt.cublasLtMatmulAlgoGetHeuristic = func(h, op, a, b, c, d, pref uintptr, requested int32, res *ltHeuristicResult, n *int32) int32 {
		pr := f.prefs[pref]
		if h != handle || f.descs[op] == nil || f.layouts[a] == nil || f.layouts[b] == nil || f.layouts[c] == nil || f.layouts[d] == nil || pr == nil || requested < 1 {
			return cublasInvalidValue
		}
		f.lastPref = *pr
		*n = 0
		if f.noAlgo {
			return 0
		}
		*res = ltHeuristicResult{workspaceSize: uintptr(min(pr.ws, 1<<20)), wavesCount: 1}
		res.algo.data[0] = 42
		*n = 1
		return 0
	}
	lt.cublasLtMatmul = func(h, op uintptr, alpha unsafe.Pointer, a uint64, ad uintptr, b uint64, bd uintptr, beta unsafe.Pointer, c uint64, cd uintptr, d uint64, dd uintptr, algo *ltAlgo, ws uint64, wsSize uintptr, stream uintptr) int32 {
		f.matmuls++
		if f.failMatmul != 0 {
			return f.failMatmul
		}
		desc, la, lb, lc, ld := f.descs[op], f.layouts[ad], f.layouts[bd], f.layouts[cd], f.layouts[dd]
		if h != handle || desc == nil || la == nil || lb == nil || lc == nil || ld == nil || algo == nil || algo.data[0] != 42 {
			return cublasInvalidValue
		}
		if *lc != *ld || la.dt != lb.dt || ld.dt != cudaR32F || desc.scale != cudaR32F || c != d {
			return cublasInvalidValue
		}
		if la.batch != ld.batch || lb.batch != ld.batch || (wsSize > 0 && ws == 0) {
			return cublasInvalidValue
		}
		m, k := la.rows, la.cols
		if desc.ta == cublasOpT {
			m, k = k, m
		}
		k2, n := lb.rows, lb.cols
		if desc.tb == cublasOpT {
			k2, n = n, k2
		}
		if k != k2 || ld.rows != m || ld.cols != n {
			return cublasInvalidValue
		}
		for _, l := range []*ltLayout{la, lb, ld} {
			if l.ld < int64(max(1, l.rows)) {
				return cublasInvalidValue
			}
		}
		st := refGemm{ta: desc.ta, tb: desc.tb, m: int32(m), n: int32(n), k: int32(k),
			alpha: *(*float32)(alpha), beta: *(*float32)(beta),
			a: ltHostPtr(a), at: la.dt, lda: int32(la.ld), sa: la.stride,
			b: ltHostPtr(b), bt: lb.dt, ldb: int32(lb.ld), sb: lb.stride,
			c: ltHostPtr(d), ct: ld.dt, ldc: int32(ld.ld), sc: ld.stride,
			batch: ld.batch, compute: desc.compute, algo: cublasGemmDefault}.run()
		if st != 0 {
			return st
		}
		switch desc.epilogue {
		case 1:
		case ltEpilogueBias:
			if desc.bias == 0 || (desc.biasType != -1 && desc.biasType != cudaR32F) {
				return cublasInvalidValue
			}
			// One bias value per row of D, broadcast over its columns and batch.
			for bi := int64(0); bi < int64(ld.batch); bi++ {
				for j := uint64(0); j < n; j++ {
					for i := uint64(0); i < m; i++ {
						v := (*float32)(unsafe.Add(ltHostPtr(d), (bi*ld.stride+int64(i)+int64(j)*ld.ld)*4))
						*v += *(*float32)(unsafe.Add(ltHostPtr(desc.bias), i*4))
					}
				}
			}
		default:
			return cublasInvalidValue
		}
		return 0
	}
	return lt, f
}

// fakeLtDevice is a Device with just what cublasLt's methods use: a driver
// whose allocations return fake addresses, counted.
func fakeLtDevice(allocs *int) *Device {
	drv := &driver{}
	drv.cuMemAlloc = func(p *uint64, n uint64) int32 { *allocs++; *p = 1 << 40; return 0 }
	drv.cuMemFree = func(p uint64) int32 { *allocs--; return 0 }
	return &Device{drv: drv, stream: 3}
}

func TestLtHeuristicResultLayout(t *testing.T) {
	var r ltHeuristicResult
	if s := unsafe.Sizeof(r); s != 96 {
		t.Errorf("cublasLtMatmulHeuristicResult_t is %d bytes, want 96", s)
	}
	if s := unsafe.Sizeof(ltAlgo{}); s != 64 {
		t.Errorf("cublasLtMatmulAlgo_t is %d bytes, want 64", s)
	}
	for _, c := range []struct {
		name     string
		got, off uintptr
	}{
		{"algo", unsafe.Offsetof(r.algo), 0},
		{"workspaceSize", unsafe.Offsetof(r.workspaceSize), 64},
		{"state", unsafe.Offsetof(r.state), 72},
		{"wavesCount", unsafe.Offsetof(r.wavesCount), 76},
		{"reserved", unsafe.Offsetof(r.reserved), 80},
	} {
		if c.got != c.off {
			t.Errorf("%s at offset %d, want %d", c.name, c.got, c.off)
		}
	}
}

// TestLtBindSignatures registers every cuBLASLt binding with purego at a dummy
// address (nothing is called), as TestBindSignatures does for the others.
func TestLtBindSignatures(t *testing.T) {
	if !supported {
		t.Skip("no dynamic loading on " + runtime.GOOS + "/" + runtime.GOARCH)
	}
	lt := &cublasLt{}
	for _, s := range lt.symbols() {
		bindFunc(s.fptr, 1)
		if reflect.ValueOf(s.fptr).Elem().IsNil() {
			t.Errorf("%s not bound", s.names[0])
		}
	}
	if len(lt.symbols()) != 13 {
		t.Errorf("%d symbols", len(lt.symbols()))
	}
}

func TestCublasLtCandidates(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "SDGO_CUBLASLT" {
				return v
			}
			return ""
		}
	}
	got := cublasLtCandidates(env(""), "/usr/local/cuda-12.4/lib64/libcublas.so.12")
	want := []string{
		"/usr/local/cuda-12.4/lib64/libcublasLt.so.12", "/usr/local/cuda-12.4/lib64/libcublasLt.so.13",
		"/usr/local/cuda-12.4/lib64/libcublasLt.so.11", "/usr/local/cuda-12.4/lib64/libcublasLt.so",
		"libcublasLt.so.12", "libcublasLt.so.13", "libcublasLt.so.11", "libcublasLt.so",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q,\nwant %q", got, want)
	}
	got = cublasLtCandidates(env(""), "libcublas.so.13")
	if want := []string{"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11", "libcublasLt.so"}; !slices.Equal(got, want) {
		t.Errorf("loader path: got %q, want %q", got, want)
	}
	got = cublasLtCandidates(env("off"), "/opt/x/libcublas.so")
	if want := []string{"/opt/x/libcublasLt.so", "/opt/x/libcublasLt.so.13", "/opt/x/libcublasLt.so.12", "/opt/x/libcublasLt.so.11"}; !slices.Equal(got[:4], want) {
		t.Errorf("unversioned: got %q", got)
	}
	if got := cublasLtCandidates(env("/x/libcublasLt.so.12"), "/y/libcublas.so.12"); !slices.Equal(got, []string{"/x/libcublasLt.so.12"}) {
		t.Errorf("SDGO_CUBLASLT path: %q", got)
	}
	for v, off := range map[string]bool{"": false, "on": false, "off": true, "OFF": true, "0": true, "false": true, "/a/b.so": false} {
		if ltOff(env(v)) != off {
			t.Errorf("ltOff(%q) = %v", v, !off)
		}
	}
}

func TestPtrAlign(t *testing.T) {
	for p, want := range map[uint64]uint32{0: 256, 1 << 40: 256, 512: 256, 256 + 128: 128, 1000: 8, 6: 2, 4098: 2} {
		if got := ptrAlign(p); got != want {
			t.Errorf("ptrAlign(%d) = %d, want %d", p, got, want)
		}
	}
}

// heapF32 and heapU16 allocate on the heap, where addresses do not move.
func heapF32(n int) []float32 { return make([]float32, n) }
func heapU16(n int) []uint16  { return make([]uint16, n) }

func addr[T any](s []T) uint64 { return uint64(uintptr(unsafe.Pointer(&s[0]))) }

// TestLtGemmMapping runs row-major products with a bias as ltGemm hands them to
// cuBLASLt, through the host model of cuBLASLt: F16 operands with F32 output,
// transposed operands (a Linear's weight [out,in] is B transposed), a shared A or
// B over the batch (batch stride 0), an output whose rows are wider than n,
// alpha, the bias per output column. It also checks the per-shape cache.
func TestLtGemmMapping(t *testing.T) {
	const nb, m, n, k = 3, 5, 6, 7
	f16 := func(v float32) uint16 { // small integers and halves are exact in F16
		if v == 0 {
			return 0
		}
		b := math.Float32bits(v)
		return uint16(b>>16&0x8000 | ((b>>23&0xff)-112)<<10 | b>>13&0x3ff)
	}
	var allocs int
	dev := fakeLtDevice(&allocs)
	lt, f := newFakeLt()
	heur := 0
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			for _, shared := range []int{0, 1, 2} { // 1: A shared, 2: B shared
				aMem, bMem := heapU16(512), heapU16(512)
				av := func(bi, i, p int) float32 { return float32((bi*7+i*3+p*5)%9) - 4 }
				bv := func(bi, p, j int) float32 { return float32((bi*2+p*5+j*7)%11)/2 - 2.5 }
				lda, ldb := k+2, n+1
				if ta {
					lda = m + 3
				}
				if tb {
					ldb = k + 1
				}
				sa, sb := 100, 120
				if shared == 1 {
					sa = 0
				}
				if shared == 2 {
					sb = 0
				}
				for bi := range nb {
					for i := range m {
						for p := range k {
							idx := i*lda + p
							if ta {
								idx = p*lda + i
							}
							aMem[bi*sa+idx] = f16(av(bi*min(sa, 1), i, p))
						}
					}
					for p := range k {
						for j := range n {
							idx := p*ldb + j
							if tb {
								idx = j*ldb + p
							}
							bMem[bi*sb+idx] = f16(bv(bi*min(sb, 1), p, j))
						}
					}
				}
				const ldc, sc = n + 4, 80
				cMem := heapF32(nb * sc)
				for i := range cMem {
					cMem[i] = 7
				}
				bias := heapF32(n + 1)
				for j := range n {
					bias[j] = float32(j) - 2.5
				}
				a := matOperand{ptr: addr(aMem), dt: tensor.F16, ld: lda, trans: ta, batch: sa}
				b := matOperand{ptr: addr(bMem), dt: tensor.F16, ld: ldb, trans: tb, batch: sb}
				for rep := range 2 {
					if err := lt.gemmBias(dev, nb, m, n, k, 0.5, a, b, addr(bias), addr(cMem), ldc, sc, cublasCompute32F); err != nil {
						t.Fatalf("ta=%v tb=%v shared=%d: %v", ta, tb, shared, err)
					}
					if rep == 0 {
						heur++
					}
					if lt.heuristics != heur {
						t.Fatalf("%d heuristic calls, want %d (one per shape)", lt.heuristics, heur)
					}
				}
				for bi := range nb {
					for i := range m {
						for j := range ldc {
							want := float32(7)
							if j < n {
								var s float32
								for p := range k {
									s += av(bi*min(sa, 1), i, p) * bv(bi*min(sb, 1), p, j)
								}
								want = 0.5*s + bias[j]
							}
							if got := cMem[bi*sc+i*ldc+j]; got != want {
								t.Fatalf("ta=%v tb=%v shared=%d: D[%d][%d,%d] = %v, want %v", ta, tb, shared, bi, i, j, got, want)
							}
						}
					}
				}
				runtime.KeepAlive(aMem)
				runtime.KeepAlive(bMem)
				runtime.KeepAlive(cMem)
				runtime.KeepAlive(bias)
			}
		}
	}
	if f.lastPref.ws != ltWorkspace || allocs != 1 {
		t.Errorf("workspace: preference %d, %d allocations", f.lastPref.ws, allocs)
	}
	// A bias at an offset of 4 bytes is another plan, whose heuristic is told.
	key0, _ := ltKeyOf(1, 2, 3, 4, matOperand{ptr: 512, dt: tensor.F16, ld: 4}, matOperand{ptr: 1024, dt: tensor.F16, ld: 3}, 2048, 3, 0, 4096, cublasCompute32F)
	key1, _ := ltKeyOf(1, 2, 3, 4, matOperand{ptr: 512, dt: tensor.F16, ld: 4}, matOperand{ptr: 1024, dt: tensor.F16, ld: 3}, 2048, 3, 0, 4100, cublasCompute32F)
	if key0 == key1 || key1.al != 4 {
		t.Errorf("keys %+v and %+v", key0, key1)
	}
	if n := len(lt.plans); n != heur || f.live() != 4*n {
		t.Errorf("%d plans, %d live objects", n, f.live())
	}
	if err := lt.destroy(dev); err != nil {
		t.Fatal(err)
	}
	if f.live() != 0 || allocs != 0 || lt.handle != 0 {
		t.Errorf("after destroy: %d live objects, %d allocations, handle %d", f.live(), allocs, lt.handle)
	}
}

// TestLtKey checks what the shape key holds: everything cuBLASLt's plan
// depends on, and not the addresses themselves.
func TestLtKey(t *testing.T) {
	a := matOperand{ptr: 1 << 20, dt: tensor.F16, ld: 640, batch: 0}
	b := matOperand{ptr: 2 << 20, dt: tensor.F16, ld: 640, trans: true} // a Linear weight [out,in]
	k, ok := ltKeyOf(1, 8192, 5120, 640, a, b, 3<<20, 5120, 0, 4<<20, cublasCompute32F)
	want := ltKey{batch: 1, m: 5120, n: 8192, k: 640, opA: cublasOpT, opB: cublasOpN, lda: 640, ldb: 640, ldc: 5120,
		dt: cudaR16F, compute: cublasCompute32F, alA: 256, alB: 256, alC: 256, al: 256}
	if !ok || k != want {
		t.Fatalf("got %+v, %v\nwant %+v", k, ok, want)
	}
	la, lb, lc := k.layouts()
	if la != (ltLayout{dt: cudaR16F, rows: 640, cols: 5120, ld: 640, batch: 1}) ||
		lb != (ltLayout{dt: cudaR16F, rows: 640, cols: 8192, ld: 640, batch: 1}) ||
		lc != (ltLayout{dt: cudaR32F, rows: 5120, cols: 8192, ld: 5120, batch: 1}) {
		t.Errorf("layouts %+v %+v %+v", la, lb, lc)
	}
	// Other addresses of the same alignment: the same key.
	a2, b2 := a, b
	a2.ptr, b2.ptr = 7<<20, 9<<20
	if k2, _ := ltKeyOf(1, 8192, 5120, 640, a2, b2, 5<<20, 5120, 0, 6<<20, cublasCompute32F); k2 != k {
		t.Errorf("key depends on addresses: %+v", k2)
	}
	// Batch strides count only for batch > 1.
	bf := matOperand{ptr: 512, dt: tensor.F32, ld: 640, trans: true}
	kb, _ := ltKeyOf(2, 77, 320, 640, matOperand{ptr: 512, dt: tensor.F32, ld: 640, batch: 77 * 640}, bf, 512, 320, 77*320, 512, cublasCompute32FFastTF32)
	if kb.batch != 2 || kb.sa != 0 || kb.sb != 77*640 || kb.sc != 77*320 || kb.dt != cudaR32F {
		t.Errorf("batched key %+v", kb)
	}
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"k 0", func() bool { _, ok := ltKeyOf(1, 4, 4, 0, a, b, 0, 4, 0, 0, cublasCompute32F); return ok }()},
		{"mixed dtypes", func() bool {
			_, ok := ltKeyOf(1, 4, 4, 640, matOperand{dt: tensor.F32, ld: 640}, b, 0, 4, 0, 0, cublasCompute32F)
			return ok
		}()},
		{"TF32 on F16", func() bool { _, ok := ltKeyOf(1, 4, 4, 640, a, b, 0, 4, 0, 0, cublasCompute32FFastTF32); return ok }()},
		{"ldc below n", func() bool { _, ok := ltKeyOf(1, 4, 8, 640, a, b, 0, 4, 0, 0, cublasCompute32F); return ok }()},
	} {
		if c.ok {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

// TestLtFallback checks that whatever keeps cuBLASLt from a product is an
// error wrapping ErrUnsupported (so MatMul takes cublasGemmEx), and that a
// shape cuBLASLt failed on is not retried.
func TestLtFallback(t *testing.T) {
	// No cuBLAS, hence no cuBLASLt.
	d := &Device{}
	if _, err := d.cublasLt(); !errors.Is(err, ErrUnsupported) || !errors.Is(err, errNoCublasLt) {
		t.Errorf("without cuBLAS: %v", err)
	}
	// cuBLASLt missing next to cuBLAS.
	t.Setenv("SDGO_CUBLASLT", "/nonexistent/libcublasLt.so.12")
	d = &Device{blas: &cublas{path: "/nonexistent/libcublas.so.12"}}
	_, err := d.cublasLt()
	if !errors.Is(err, ErrUnsupported) || !errors.Is(err, errNoCublasLt) {
		t.Errorf("missing library: %v", err)
	}
	t.Log(err)
	r := &run{d: d}
	g := gemmCall{nb: 1, m: 4, n: 4, k: 4, ldc: 4}
	op := matOperand{dt: tensor.F16, ld: 4}
	if err := r.ltGemm(g, op, op, 512, tensor.F32, 1, cublasCompute32F); !errors.Is(err, ErrUnsupported) {
		t.Errorf("ltGemm without cuBLASLt: %v", err)
	}
	// Turned off: not even loaded.
	t.Setenv("SDGO_CUBLASLT", "off")
	d = &Device{}
	r = &run{d: d}
	if err := r.ltGemm(g, op, op, 512, tensor.F32, 1, cublasCompute32F); !errors.Is(err, ErrUnsupported) || d.ltTried {
		t.Errorf("SDGO_CUBLASLT=off: %v (loaded: %v)", err, d.ltTried)
	}

	var allocs int
	dev := fakeLtDevice(&allocs)
	aMem, bMem, cMem, bias := heapU16(16), heapU16(16), heapF32(16), heapF32(4)
	a := matOperand{ptr: addr(aMem), dt: tensor.F16, ld: 4}
	b := matOperand{ptr: addr(bMem), dt: tensor.F16, ld: 4}
	call := func(lt *cublasLt) error {
		return lt.gemmBias(dev, 1, 4, 4, 4, 1, a, b, addr(bias), addr(cMem), 4, 0, cublasCompute32F)
	}
	// The heuristic finds no algorithm: unsupported, and not asked again.
	lt, f := newFakeLt()
	f.noAlgo = true
	for range 2 {
		if err := call(lt); !errors.Is(err, ErrUnsupported) {
			t.Errorf("no algorithm: %v", err)
		}
	}
	if lt.heuristics != 1 || f.matmuls != 0 || f.live() != 0 {
		t.Errorf("no algorithm: %d heuristic calls, %d matmuls, %d live objects", lt.heuristics, f.matmuls, f.live())
	}
	// cublasLtMatmul fails: unsupported, and the shape is not tried again.
	lt, f = newFakeLt()
	f.failMatmul = 15 // CUBLAS_STATUS_NOT_SUPPORTED
	for i := range 2 {
		err := call(lt)
		if !errors.Is(err, ErrUnsupported) || (i == 0 && !errors.Is(err, &Error{Op: "cublasLtMatmul", Code: 15})) {
			t.Errorf("failing matmul, call %d: %v", i, err)
		}
	}
	if f.matmuls != 1 {
		t.Errorf("failing matmul tried %d times", f.matmuls)
	}
	// The plan cache stays bounded, destroying what it evicts.
	lt, f = newFakeLt()
	big := heapF32(ltMaxPlans + 8)
	for i := range ltMaxPlans + 5 {
		err := lt.gemmBias(dev, 1, 1, 1, 1, 1, a, b, addr(bias), addr(big), i+1, 0, cublasCompute32F)
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(lt.plans) != ltMaxPlans || f.live() != 4*ltMaxPlans {
		t.Errorf("%d plans, %d live objects", len(lt.plans), f.live())
	}
	runtime.KeepAlive(aMem)
	runtime.KeepAlive(bMem)
	runtime.KeepAlive(cMem)
	runtime.KeepAlive(bias)
	runtime.KeepAlive(big)
}

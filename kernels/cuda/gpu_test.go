package cuda

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/sdgo/sdgo/tensor"
)

// The tests in this file need a CUDA GPU: they compare every backend operation
// with the CPU backend. Without a GPU they skip (SDGO_CUDA_REQUIRE=1 makes that
// a failure, so a GPU run cannot pass by skipping).

var (
	gpuOnce sync.Once
	gpuB    *Backend
	gpuErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if gpuB != nil {
		if err := gpuB.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "closing the device:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// gpuBackend opens the shared backend on device 0 once.
func gpuBackend() (*Backend, error) {
	gpuOnce.Do(func() {
		gpuB, gpuErr = OpenBackend(0)
		if gpuErr == nil {
			d := gpuB.Device()
			fmt.Printf("cuda: %v, driver %d (%s), %s\n", d, d.DriverVersion(), d.DriverPath(), d.BLAS())
		}
	})
	return gpuB, gpuErr
}

// gpu returns the shared backend on device 0, or skips the test.
func gpu(t *testing.T) *Backend {
	t.Helper()
	if _, err := gpuBackend(); err != nil {
		if os.Getenv("SDGO_CUDA_REQUIRE") != "" {
			t.Fatalf("SDGO_CUDA_REQUIRE is set but no GPU could be opened: %v", err)
		}
		t.Skipf("no CUDA GPU: %v", err)
	}
	return gpuB
}

var cpu = tensor.NewCPU()

func randData(n int, seed uint64, lo, hi float32) []float32 {
	r := rand.New(rand.NewPCG(seed, 99))
	d := make([]float32, n)
	for i := range d {
		d[i] = lo + (hi-lo)*r.Float32()
	}
	return d
}

// pair makes the same F32 tensor on the CPU and on the GPU.
func pair(t *testing.T, g *Backend, data []float32, shape ...int) (c, d *tensor.Tensor) {
	t.Helper()
	c, err := tensor.FromFloat32(cpu, data, shape...)
	if err != nil {
		t.Fatal(err)
	}
	d, err = tensor.FromFloat32(g, data, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return c, d
}

func randPair(t *testing.T, g *Backend, seed uint64, shape ...int) (c, d *tensor.Tensor) {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return pair(t, g, randData(n, seed, -2, 2), shape...)
}

// to converts both tensors of a pair to dt.
func to(t *testing.T, dt tensor.DType, c, d *tensor.Tensor) (*tensor.Tensor, *tensor.Tensor) {
	t.Helper()
	c2, err := c.To(dt)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := d.To(dt)
	if err != nil {
		t.Fatal(err)
	}
	return c2, d2
}

// compare checks got (GPU) against want (CPU) element-wise:
// |g - w| ≤ tol·(|w| + floor), floor being max|w| when scaled (results of sums:
// products, norms, attention) and 1e-2 otherwise.
func compare(t *testing.T, name string, got, want *tensor.Tensor, tol float64, scaled bool) {
	t.Helper()
	if fmt.Sprint(got.Shape()) != fmt.Sprint(want.Shape()) || got.DType() != want.DType() {
		t.Errorf("%s: got %v, want %v", name, got, want)
		return
	}
	g, err := got.Float32s()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	w, err := want.Float32s()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	floor := 1e-2
	if scaled {
		floor = 0
		for _, v := range w {
			floor = math.Max(floor, math.Abs(float64(v)))
		}
	}
	bad := 0
	for i := range w {
		gv, wv := float64(g[i]), float64(w[i])
		if math.IsNaN(wv) && math.IsNaN(gv) || gv == wv {
			continue
		}
		if math.Abs(gv-wv) > tol*(math.Abs(wv)+floor) || math.IsNaN(gv) {
			if bad < 5 {
				t.Errorf("%s %v: element %d = %v, want %v", name, want.Shape(), i, gv, wv)
			}
			bad++
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d of %d elements differ", name, bad, len(w))
	}
}

// mustT returns a function that unwraps (tensor, error) results for test t.
func mustT(t *testing.T) func(*tensor.Tensor, error) *tensor.Tensor {
	return func(x *tensor.Tensor, err error) *tensor.Tensor {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
}

// bits reads the F16/BF16 bit patterns of a contiguous tensor.
func halfBits(t *testing.T, x *tensor.Tensor) []uint16 {
	t.Helper()
	out := make([]uint16, x.Numel())
	if err := x.Backend().Read(x.Storage(), x.Offset(), out); err != nil {
		t.Fatal(err)
	}
	return out
}

const tol = 1e-4

var awkward = [][]int{{1}, {7}, {3, 1, 5}, {1000}, {2, 3, 257}, {65537}}

func TestGPUWriteReadFill(t *testing.T) {
	g := gpu(t)
	m := mustT(t)
	for _, shape := range awkward {
		c, d := randPair(t, g, 1, shape...)
		compare(t, "write/read", d, c, 0, false)
		for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
			fc := m(tensor.Full(cpu, dt, -1.2345, shape...))
			fd := m(tensor.Full(g, dt, -1.2345, shape...))
			compare(t, "Full "+dt.String(), fd, fc, 0, false)
		}
	}
	bitsIn := []uint16{0x3c00, 0x7bff, 0x0001, 0xfc00, 0x7e01}
	d := m(tensor.FromBits(g, tensor.F16, bitsIn, 5))
	if got := halfBits(t, d); fmt.Sprint(got) != fmt.Sprint(bitsIn) {
		t.Errorf("F16 bits %x, want %x", got, bitsIn)
	}
	if err := g.Write(d.Storage(), make([]float32, 5)); !errors.Is(err, tensor.ErrDType) {
		t.Errorf("float32 into F16 storage: %v", err)
	}
	if err := g.Read(d.Storage(), 3, make([]uint16, 5)); err == nil {
		t.Error("read past the end succeeded")
	}
}

func TestGPUCopyConvert(t *testing.T) {
	g := gpu(t)
	m := mustT(t)
	data := randData(2*3*257, 2, -70000, 70000)
	data[0], data[1], data[2] = float32(math.NaN()), float32(math.Inf(-1)), 1e-8
	c, d := pair(t, g, data, 2, 3, 257)
	for _, dt := range []tensor.DType{tensor.F16, tensor.BF16} {
		c16, d16 := to(t, dt, c, d)
		if a, b := halfBits(t, d16), halfBits(t, c16); fmt.Sprint(a[3:]) != fmt.Sprint(b[3:]) {
			t.Errorf("F32 -> %v rounding differs from the CPU", dt)
		}
		for _, dt2 := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
			cc, dd := to(t, dt2, c16, d16)
			compare(t, dt.String()+"->"+dt2.String(), dd, cc, 0, false)
		}
	}
	// Strided views: transpose, narrow, broadcast, rank 8.
	ct := m(c.Transpose(0, 2))
	dt := m(d.Transpose(0, 2))
	compare(t, "transpose", m(dt.Contiguous()), m(ct.Contiguous()), 0, false)
	cn := m(c.Narrow(2, 5, 100))
	dn := m(d.Narrow(2, 5, 100))
	compare(t, "narrow", m(dn.To(tensor.F16)), m(cn.To(tensor.F16)), 0, false)
	c1, d1 := randPair(t, g, 3, 1, 3, 1)
	compare(t, "expand", m(m(d1.Expand(4, 3, 5)).Contiguous()), m(m(c1.Expand(4, 3, 5)).Contiguous()), 0, false)
	c8, d8 := randPair(t, g, 4, 2, 3, 2, 3, 2, 3, 2, 3)
	perm := []int{7, 6, 5, 4, 3, 2, 1, 0}
	compare(t, "rank 8", m(m(d8.Permute(perm...)).Contiguous()), m(m(c8.Permute(perm...)).Contiguous()), 0, false)
}

func TestGPUUnary(t *testing.T) {
	g := gpu(t)
	m := mustT(t)
	ops := map[string]func(*tensor.Tensor) (*tensor.Tensor, error){
		"SiLU": tensor.SiLU, "GELU": tensor.GELU, "GELUTanh": tensor.GELUTanh, "QuickGELU": tensor.QuickGELU, "Exp": tensor.Exp,
	}
	for _, shape := range awkward {
		c, d := randPair(t, g, 5, shape...)
		for name, f := range ops {
			compare(t, name, m(f(d)), m(f(c)), tol, false)
		}
		compare(t, "Affine", m(tensor.Affine(d, 1.5, -0.25)), m(tensor.Affine(c, 1.5, -0.25)), tol, false)
		compare(t, "Clamp", m(tensor.Clamp(d, -0.5, 0.75)), m(tensor.Clamp(c, -0.5, 0.75)), 0, false)
	}
	c, d := pair(t, g, []float32{float32(math.NaN()), -3, 3, 0.1}, 4)
	compare(t, "Clamp NaN", m(tensor.Clamp(d, -1, 1)), m(tensor.Clamp(c, -1, 1)), 0, false)
	// F16 input is widened first.
	c16, d16 := to(t, tensor.F16, c, d)
	compare(t, "SiLU F16", m(tensor.SiLU(d16)), m(tensor.SiLU(c16)), tol, false)
	if err := g.Unary(d, d, 99); !errors.Is(err, tensor.ErrRange) {
		t.Errorf("unknown op: %v", err)
	}
}

func TestGPUBinary(t *testing.T) {
	g := gpu(t)
	m := mustT(t)
	ops := map[string]func(a, b *tensor.Tensor) (*tensor.Tensor, error){
		"Add": tensor.Add, "Sub": tensor.Sub, "Mul": tensor.Mul, "Div": tensor.Div,
	}
	for i, c := range []struct{ a, b []int }{
		{[]int{1}, []int{1}},
		{[]int{1000}, []int{1000}},
		{[]int{3, 1, 5}, []int{1, 4, 5}},
		{[]int{2, 3, 257}, []int{257}},
		{[]int{2, 3, 257}, []int{1}},
		{[]int{2, 1, 3, 1, 2, 1, 3, 2}, []int{1, 2, 1, 3, 1, 2, 3, 1}}, // rank 8
	} {
		ca, da := randPair(t, g, uint64(10+i), c.a...)
		n := 1
		for _, s := range c.b {
			n *= s
		}
		den := randData(n, uint64(20+i), 0.5, 2)
		cb, db := pair(t, g, den, c.b...)
		for name, f := range ops {
			compare(t, fmt.Sprintf("%s %v %v", name, c.a, c.b), m(f(da, db)), m(f(ca, cb)), tol, false)
		}
	}
	// Transposed operands.
	ca, da := randPair(t, g, 30, 33, 17)
	cb, db := randPair(t, g, 31, 17, 33)
	cbt, dbt := m(cb.Transpose(0, 1)), m(db.Transpose(0, 1))
	compare(t, "Add transposed", m(tensor.Add(da, dbt)), m(tensor.Add(ca, cbt)), tol, false)
	// Mixed dtypes are widened.
	ch, dh := to(t, tensor.F16, ca, da)
	compare(t, "Mul F16", m(tensor.Mul(dh, dbt)), m(tensor.Mul(ch, cbt)), tol, false)
}

func TestGPUSoftmax(t *testing.T) {
	g := gpu(t)
	m := mustT(t)
	for _, shape := range [][]int{{1}, {3, 1}, {5, 1000}, {2, 3, 4097}, {7, 33}} {
		c, d := randPair(t, g, 40, shape...)
		c = m(tensor.Scale(c, 8))
		d = m(tensor.Scale(d, 8))
		compare(t, "Softmax", m(tensor.Softmax(d)), m(tensor.Softmax(c)), tol, false)
	}
}

func TestGPULayerNorm(t *testing.T) {
	g := gpu(t)
	m := mustT(t)
	// Rows for each layer norm kernel: one warp with 32 or 64 values per lane, and
	// one block per row beyond 2048; row counts that leave a block partly empty.
	for _, shape := range [][]int{{1, 1}, {3, 7}, {2, 77, 768}, {5, 1025}, {9, 1024}, {3, 2048}, {4, 2049}, {2, 4096 + 3, 640}} {
		n := shape[len(shape)-1]
		c, d := randPair(t, g, 50, shape...)
		cg, dg := randPair(t, g, 51, n)
		cb, db := randPair(t, g, 52, n)
		compare(t, "LayerNorm", m(tensor.LayerNorm(d, dg, db, 1e-5)), m(tensor.LayerNorm(c, cg, cb, 1e-5)), tol, true)
		compare(t, "LayerNorm nil", m(tensor.LayerNorm(d, nil, nil, 1e-5)), m(tensor.LayerNorm(c, nil, nil, 1e-5)), tol, true)
		cgh, dgh := to(t, tensor.F16, cg, dg)
		compare(t, "LayerNorm F16 gamma", m(tensor.LayerNorm(d, dgh, nil, 1e-5)), m(tensor.LayerNorm(c, cgh, nil, 1e-5)), tol, true)
	}
}

func TestGPUGroupNorm(t *testing.T) {
	g := gpu(t)
	m := mustT(t)
	for _, c := range []struct {
		shape  []int
		groups int
	}{
		{[]int{1, 4, 1, 1}, 2}, {[]int{2, 6, 5, 7}, 3}, {[]int{2, 64, 9, 9}, 32}, {[]int{1, 32, 3}, 32}, {[]int{1, 320, 33, 31}, 32},
		// Long groups, split into chunks with a short last one (groupNormGrid);
		// odd rows that are not 16-byte aligned.
		{[]int{1, 64, 97, 131}, 32}, {[]int{2, 6, 300, 301}, 3}, {[]int{1, 128, 256, 256}, 32},
	} {
		ch := c.shape[1]
		cx, dx := randPair(t, g, 60, c.shape...)
		cg, dg := randPair(t, g, 61, ch)
		cb, db := randPair(t, g, 62, ch)
		compare(t, "GroupNorm", m(tensor.GroupNorm(dx, dg, db, c.groups, 1e-5)), m(tensor.GroupNorm(cx, cg, cb, c.groups, 1e-5)), tol, true)
		cgh, dgh := to(t, tensor.F16, cg, dg)
		compare(t, "GroupNormSiLU", m(tensor.GroupNormSiLU(dx, dgh, db, c.groups, 1e-6)), m(tensor.GroupNormSiLU(cx, cgh, cb, c.groups, 1e-6)), tol, true)
	}
}

func TestGPUGEGLU(t *testing.T) {
	g := gpu(t)
	m := mustT(t)
	for _, shape := range [][]int{{1, 2}, {3, 10}, {2, 7, 66}, {2, 4096 + 1, 2 * 33}} {
		c, d := randPair(t, g, 70, shape...)
		compare(t, "GEGLU", m(tensor.GEGLU(d)), m(tensor.GEGLU(c)), tol, false)
	}
}

func TestGPUConcat(t *testing.T) {
	g := gpu(t)
	m := mustT(t)
	ca, da := randPair(t, g, 80, 2, 3, 5)
	cb, db := randPair(t, g, 81, 2, 3, 7)
	compare(t, "Concat -1", m(tensor.Concat(-1, da, db)), m(tensor.Concat(-1, ca, cb)), 0, false)
	cbt, dbt := m(cb.Narrow(2, 1, 5)), m(db.Narrow(2, 1, 5))
	compare(t, "Concat 1 strided", m(tensor.Concat(1, da, dbt, da)), m(tensor.Concat(1, ca, cbt, ca)), 0, false)
	compare(t, "Concat 0", m(tensor.Concat(0, da, dbt)), m(tensor.Concat(0, ca, cbt)), 0, false)
	ch, dh := to(t, tensor.F16, ca, da)
	ch2, dh2 := to(t, tensor.F16, cbt, dbt)
	got, want := m(tensor.Concat(2, dh, dh2)), m(tensor.Concat(2, ch, ch2))
	if fmt.Sprint(halfBits(t, got)) != fmt.Sprint(halfBits(t, want)) {
		t.Error("Concat F16 differs")
	}
}

func TestGPUResize(t *testing.T) {
	g := gpu(t)
	m := mustT(t)
	c, d := randPair(t, g, 90, 2, 3, 5, 7)
	compare(t, "Upsample2x", m(tensor.Upsample2x(d)), m(tensor.Upsample2x(c)), 0, false)
	for _, hw := range [][2]int{{7, 11}, {3, 2}, {1, 1}, {10, 14}, {13, 29}} {
		compare(t, fmt.Sprint("ResizeNearest ", hw), m(tensor.ResizeNearest(d, hw[0], hw[1])), m(tensor.ResizeNearest(c, hw[0], hw[1])), 0, false)
	}
}

func TestGPUEmbedding(t *testing.T) {
	g := gpu(t)
	m := mustT(t)
	c, d := randPair(t, g, 100, 10, 7)
	ids := []int{0, 9, 3, 3, 1}
	compare(t, "Embedding", m(tensor.Embedding(d, ids)), m(tensor.Embedding(c, ids)), 0, false)
	ch, dh := to(t, tensor.BF16, c, d)
	compare(t, "Embedding BF16", m(tensor.Embedding(dh, ids)), m(tensor.Embedding(ch, ids)), 0, false)
	ct, dt := m(c.Transpose(0, 1)), m(d.Transpose(0, 1)) // [7,10]: a strided table
	compare(t, "Embedding strided", m(tensor.Embedding(dt, []int{6, 0})), m(tensor.Embedding(ct, []int{6, 0})), 0, false)
	if _, err := tensor.Embedding(d, []int{10}); err == nil {
		t.Error("id out of range accepted")
	}
}

func TestGPUMoments(t *testing.T) {
	g := gpu(t)
	m := mustT(t)
	for _, c := range []struct {
		shape []int
		axes  int
	}{{[]int{1}, 1}, {[]int{3, 7}, 1}, {[]int{2, 4, 33, 31}, 2}, {[]int{2, 5000}, 1}} {
		cx, dx := randPair(t, g, 110, c.shape...)
		cx = m(tensor.Affine(cx, 1, 3))
		dx = m(tensor.Affine(dx, 1, 3))
		cm, cv, err := tensor.Moments(cx, c.axes)
		if err != nil {
			t.Fatal(err)
		}
		dm, dv, err := tensor.Moments(dx, c.axes)
		if err != nil {
			t.Fatal(err)
		}
		compare(t, "mean", dm, cm, tol, true)
		compare(t, "variance", dv, cv, tol, true)
	}
}

// forBLAS runs f with cuBLAS (when loaded) and with the PTX GEMM.
func forBLAS(t *testing.T, g *Backend, f func(t *testing.T)) {
	defer g.UseCUBLAS(true)
	if g.dev.blas != nil {
		g.UseCUBLAS(true)
		t.Run("cublas", f)
	} else {
		t.Logf("cuBLAS not loaded: %s", g.dev.BLAS())
	}
	g.UseCUBLAS(false)
	t.Run("ptx", f)
}

func TestGPUMatMul(t *testing.T) {
	g := gpu(t)
	forBLAS(t, g, func(t *testing.T) {
		m := mustT(t)
		for i, c := range []struct{ a, b []int }{
			{[]int{1, 1}, []int{1, 1}},
			{[]int{3, 5}, []int{5, 7}},
			{[]int{65, 33}, []int{33, 129}},
			{[]int{2, 3, 100, 77}, []int{77, 64}},
			{[]int{4, 17, 300}, []int{4, 300, 9}},
			{[]int{2, 1, 5, 8}, []int{3, 8, 6}},
		} {
			ca, da := randPair(t, g, uint64(120+i), c.a...)
			cb, db := randPair(t, g, uint64(130+i), c.b...)
			compare(t, fmt.Sprint("MatMul ", c.a, c.b), m(tensor.MatMul(da, db)), m(tensor.MatMul(ca, cb)), tol, true)
			// Transposed views read in place.
			cat, dat := m(m(ca.Transpose(-1, -2)).Contiguous()), m(m(da.Transpose(-1, -2)).Contiguous())
			cat, dat = m(cat.Transpose(-1, -2)), m(dat.Transpose(-1, -2))
			compare(t, fmt.Sprint("MatMul aᵀ ", c.a, c.b), m(tensor.MatMul(dat, db)), m(tensor.MatMul(cat, cb)), tol, true)
			// F16 and BF16 operands.
			for _, dt := range []tensor.DType{tensor.F16, tensor.BF16} {
				cbh, dbh := to(t, dt, cb, db)
				compare(t, fmt.Sprint("MatMul b ", dt, c.a, c.b), m(tensor.MatMul(da, dbh)), m(tensor.MatMul(ca, cbh)), tol, true)
				cah, dah := to(t, dt, ca, da)
				compare(t, fmt.Sprint("MatMul both ", dt, c.a, c.b), m(tensor.MatMul(dah, dbh)), m(tensor.MatMul(cah, cbh)), tol, true)
			}
		}
		// Linear: x·wᵀ + bias with an F16 weight and bias, and an F32 one.
		for _, dt := range []tensor.DType{tensor.F32, tensor.F16} {
			cx, dx := randPair(t, g, 140, 2, 77, 320)
			cw, dw := randPair(t, g, 141, 129, 320)
			cb, db := randPair(t, g, 142, 129)
			cw, dw = to(t, dt, cw, dw)
			cb, db = to(t, dt, cb, db)
			compare(t, "Linear "+dt.String(), m(tensor.Linear(dx, dw, db)), m(tensor.Linear(cx, cw, cb)), tol, true)
		}
	})
}

func TestGPUConv2d(t *testing.T) {
	g := gpu(t)
	m := mustT(t)
	for i, c := range []struct {
		x, w []int
		p    tensor.Conv2dParams
	}{
		{[]int{1, 1, 1, 1}, []int{1, 1, 1, 1}, tensor.Conv2dParams{}},
		{[]int{1, 3, 5, 5}, []int{4, 3, 3, 3}, tensor.Conv2dParams{Padding: 1}},
		{[]int{2, 5, 9, 7}, []int{7, 5, 3, 3}, tensor.Conv2dParams{Stride: 2, Padding: 1}},
		{[]int{1, 4, 8, 8}, []int{3, 4, 3, 3}, tensor.Conv2dParams{Stride: 2, PadEnd: 1}},
		{[]int{2, 70, 6, 5}, []int{65, 70, 1, 1}, tensor.Conv2dParams{}},
		{[]int{1, 16, 17, 19}, []int{33, 16, 3, 3}, tensor.Conv2dParams{Padding: 1}},
	} {
		cx, dx := randPair(t, g, uint64(150+i), c.x...)
		cw, dw := randPair(t, g, uint64(160+i), c.w...)
		cb, db := randPair(t, g, uint64(170+i), c.w[0])
		name := fmt.Sprint("Conv2d ", c.x, c.w, c.p)
		compare(t, name, m(tensor.Conv2d(dx, dw, db, c.p)), m(tensor.Conv2d(cx, cw, cb, c.p)), tol, true)
		compare(t, name+" no bias", m(tensor.Conv2d(dx, dw, nil, c.p)), m(tensor.Conv2d(cx, cw, nil, c.p)), tol, true)
		cwh, dwh := to(t, tensor.F16, cw, dw)
		cbh, dbh := to(t, tensor.BF16, cb, db)
		compare(t, name+" F16 w", m(tensor.Conv2d(dx, dwh, dbh, c.p)), m(tensor.Conv2d(cx, cwh, cbh, c.p)), tol, true)
	}
}

func TestGPUAttention(t *testing.T) {
	g := gpu(t)
	forBLAS(t, g, func(t *testing.T) {
		m := mustT(t)
		for i, c := range []struct {
			b, h, lq, lk, d, dv int
			p                   tensor.AttentionParams
		}{
			{1, 1, 1, 1, 1, 1, tensor.AttentionParams{}},
			{2, 3, 17, 33, 40, 40, tensor.AttentionParams{}},
			{1, 2, 100, 77, 64, 64, tensor.AttentionParams{}},
			{1, 2, 70, 70, 64, 32, tensor.AttentionParams{Causal: true}},
			{2, 1, 33, 300, 160, 160, tensor.AttentionParams{Scale: 0.3}},
			{1, 2, 70, 70, 64, 64, tensor.AttentionParams{Mode: tensor.AttentionSliced, BlockQ: 16, Causal: true}},
			{1, 2, 50, 61, 40, 24, tensor.AttentionParams{Mode: tensor.AttentionSliced}},
			{1, 1, 9, 13, 300, 5, tensor.AttentionParams{}}, // beyond the flash kernel's 256: sliced
		} {
			cq, dq := randPair(t, g, uint64(180+i), c.b, c.h, c.lq, c.d)
			ck, dk := randPair(t, g, uint64(190+i), c.b, c.h, c.lk, c.d)
			cv, dv := randPair(t, g, uint64(200+i), c.b, c.h, c.lk, c.dv)
			name := fmt.Sprintf("Attention %+v", c)
			compare(t, name, m(tensor.Attention(dq, dk, dv, c.p)), m(tensor.Attention(cq, ck, cv, c.p)), tol, true)
			// [B,L,H,D] layouts, as the UNet's projections produce them.
			perm := func(x *tensor.Tensor) *tensor.Tensor {
				y := m(m(x.Permute(0, 2, 1, 3)).Contiguous())
				return m(y.Permute(0, 2, 1, 3))
			}
			compare(t, name+" BLHD", m(tensor.Attention(perm(dq), perm(dk), perm(dv), c.p)),
				m(tensor.Attention(perm(cq), perm(ck), perm(cv), c.p)), tol, true)
			if i == 2 || i == 3 {
				// Into a [B,Lq,H,Dv] buffer viewed as [B,H,Lq,Dv].
				into := func(bk tensor.Backend, q, k, v *tensor.Tensor) *tensor.Tensor {
					buf := m(tensor.Zeros(bk, tensor.F32, c.b, c.lq, c.h, c.dv))
					if err := tensor.AttentionInto(m(buf.Permute(0, 2, 1, 3)), q, k, v, c.p); err != nil {
						t.Fatal(err)
					}
					return buf
				}
				compare(t, name+" into BLHD", into(g, dq, dk, dv), into(cpu, cq, ck, cv), tol, true)
			}
			if i == 1 {
				cqh, dqh := to(t, tensor.F16, cq, dq)
				ckh, dkh := to(t, tensor.F16, ck, dk)
				compare(t, name+" F16", m(tensor.Attention(dqh, dkh, dv, c.p)), m(tensor.Attention(cqh, ckh, cv, c.p)), tol, true)
			}
		}
	})
}

func TestGPUAllocator(t *testing.T) {
	g := gpu(t)
	m := mustT(t)
	before := g.Device().Stats()
	for range 3 {
		x := m(tensor.Zeros(g, tensor.F32, 1000, 1000))
		x.Release()
	}
	after := g.Device().Stats()
	if after.Reused < before.Reused+2 {
		t.Errorf("stats before %+v, after %+v: freed blocks were not reused", before, after)
	}
	t.Logf("%+v", after)
	if err := g.Device().SetCacheLimit(0); err != nil {
		t.Fatal(err)
	}
	if st := g.Device().Stats(); st.Cached != 0 || st.DriverFree <= after.DriverFree {
		t.Errorf("after SetCacheLimit(0): %+v", st)
	}
	if err := g.Device().SetCacheLimit(g.Device().TotalMemory() / 4); err != nil {
		t.Fatal(err)
	}
	tm, err := g.Device().StartTimer()
	if err != nil {
		t.Fatal(err)
	}
	x := m(tensor.Zeros(g, tensor.F32, 1000, 1000))
	ms, err := tm.Stop()
	if err != nil || ms < 0 {
		t.Errorf("timer: %v ms, %v", ms, err)
	}
	t.Logf("zeroing 4 MB: %.3f ms", ms)
	x.Release()
}

// TestGPUConcurrent runs operations from many goroutines: each must find the
// context current on its thread.
func TestGPUConcurrent(t *testing.T) {
	g := gpu(t)
	m := mustT(t)
	c, d := randPair(t, g, 210, 64, 65)
	want := m(tensor.SiLU(c))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				y, err := tensor.SiLU(d)
				if err != nil {
					errs <- err
					return
				}
				y.Release()
			}
			y, err := tensor.SiLU(d)
			if err != nil {
				errs <- err
				return
			}
			got, err := y.Float32s()
			if err != nil {
				errs <- err
				return
			}
			w, _ := want.Float32s()
			for i := range w {
				if math.Abs(float64(got[i]-w[i])) > 1e-4*(math.Abs(float64(w[i]))+1e-2) {
					errs <- fmt.Errorf("element %d: %v, want %v", i, got[i], w[i])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestGPUOpenErrors(t *testing.T) {
	gpu(t)
	if _, err := Open(1 << 20); err == nil {
		t.Error("Open of a device that does not exist succeeded")
	} else {
		t.Log(err)
	}
	n, err := DeviceCount()
	v, _ := DriverVersion()
	t.Logf("%d devices, driver CUDA %d.%d, err %v", n, v/1000, v%1000/10, err)
}

// The benchmarks time one operation at a time: each iteration queues it and
// waits for the device (Synchronize), so the figures are device time plus the
// launch overhead, never just the queueing. Each runs once before timing (module
// loading, cuBLAS's heuristics, the allocator's first allocations). Sub-benchmarks
// name the precision (SetPrecision); TFLOP/s counts 2 flops per multiply-add.

// benchModes runs f as a sub-benchmark per precision in modes, timing op.
func benchModes(b *testing.B, modes []Precision, flops float64, op func(g *Backend) (*tensor.Tensor, error)) {
	g, err := gpuBackend()
	if err != nil {
		b.Skip(err)
	}
	defer g.SetPrecision(FP32)
	for _, p := range modes {
		b.Run(p.String(), func(b *testing.B) {
			if err := g.SetPrecision(p); err != nil {
				b.Fatal(err)
			}
			call := func() {
				y, err := op(g)
				if err != nil {
					b.Fatal(err)
				}
				if err := g.Synchronize(); err != nil {
					b.Fatal(err)
				}
				y.Release()
			}
			call()
			for b.Loop() {
				call()
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e12, "TFLOP/s")
			b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/op")
		})
	}
}

var allModes = []Precision{FP32, TF32, FP16, BF16}

func zeros(b *testing.B, g *Backend, dt tensor.DType, shape ...int) *tensor.Tensor {
	x, err := tensor.Zeros(g, dt, shape...)
	if err != nil {
		b.Fatal(err)
	}
	return x
}

// randT returns a random F32 tensor on g (values in [-1, 1)).
func randT(b *testing.B, g *Backend, shape ...int) *tensor.Tensor {
	n := 1
	for _, s := range shape {
		n *= s
	}
	x, err := tensor.FromFloat32(g, randData(n, 7, -1, 1), shape...)
	if err != nil {
		b.Fatal(err)
	}
	return x
}

// BenchmarkGPUMatMul: an F32 activation [4096,1280] times an F16 weight
// [1280,1280] (the UNet's projections at 64×64 latents).
func BenchmarkGPUMatMul(b *testing.B) {
	var x, w *tensor.Tensor
	benchModes(b, allModes, 2*4096*1280*1280, func(g *Backend) (*tensor.Tensor, error) {
		if x == nil {
			x = randT(b, g, 4096, 1280)
			w = zeros(b, g, tensor.F16, 1280, 1280)
		}
		return tensor.MatMul(x, w)
	})
}

// BenchmarkGPUMatMulF16: both operands F16 (cuBLAS's own F16 GEMM in every mode).
func BenchmarkGPUMatMulF16(b *testing.B) {
	var x, w *tensor.Tensor
	benchModes(b, []Precision{FP32}, 2*4096*1280*1280, func(g *Backend) (*tensor.Tensor, error) {
		if x == nil {
			x = zeros(b, g, tensor.F16, 4096, 1280)
			w = zeros(b, g, tensor.F16, 1280, 1280)
		}
		return tensor.MatMul(x, w)
	})
}

// benchAttention times self-attention of [B,H,L,D] F32 operands: the flash
// kernel in FP32 mode, cuBLAS GEMMs and the softmax kernel in FP16/BF16.
func benchAttention(b *testing.B, nb, nh, l, d int) {
	var q *tensor.Tensor
	benchModes(b, []Precision{FP32, FP16, BF16}, 4*float64(nb*nh*l*l*d), func(g *Backend) (*tensor.Tensor, error) {
		if q == nil {
			q = randT(b, g, nb, nh, l, d)
		}
		return tensor.Attention(q, q, q, tensor.AttentionParams{})
	})
}

// BenchmarkGPUAttention: the SD 1.5 UNet's first self-attention at 512×512.
func BenchmarkGPUAttention(b *testing.B) { benchAttention(b, 2, 8, 4096, 40) }

// BenchmarkGPUAttentionSDXL: the SDXL UNet's self-attention at 1024×1024 (64×64 tokens at its second level).
func BenchmarkGPUAttentionSDXL(b *testing.B) { benchAttention(b, 2, 10, 4096, 64) }

// BenchmarkGPUConv2d: a 3×3 convolution of the SD 1.5 UNet's first block,
// [2,320,64,64] with an F16 weight.
func BenchmarkGPUConv2d(b *testing.B) {
	var x, w *tensor.Tensor
	benchModes(b, allModes, 2*2*320*4096*320*9, func(g *Backend) (*tensor.Tensor, error) {
		if x == nil {
			x = randT(b, g, 2, 320, 64, 64)
			w = zeros(b, g, tensor.F16, 320, 320, 3, 3)
		}
		return tensor.Conv2d(x, w, nil, tensor.Conv2dParams{Padding: 1})
	})
}

// Package backendtest is the conformance suite every tensor.Backend passes: Run
// exercises each Backend method through the package-level tensor operations (and
// a few direct calls where the Backend contract allows more than those
// operations use: a strided MatMul destination, alpha) on awkward sizes — 1, odd
// lengths, tails that are not multiples of any block size, strided, broadcast and
// transposed views, F16 and BF16 weights — and compares every result with the
// CPU backend's (tensor.NewCPU) on the same data.
//
// The CPU backend runs the suite on itself (cpu_test.go), so the suite is part
// of every `go test ./...`; a device backend runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		b := openOrSkip(t)
//		backendtest.Run(t, b, backendtest.Tolerance{})
//	}
package backendtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sdgo/sdgo/tensor"
	"github.com/sdgo/sdgo/tensor/tensortest"
)

// Tolerance bounds how far a backend's results may lie from the CPU backend's.
// Copies, fills, concatenation, resizing, embedding lookups and clamping must
// match exactly whatever the tolerance.
type Tolerance struct {
	// Elem bounds element-wise functions (SiLU, GELU, exp, division, GEGLU,
	// the timestep embedding's sines and cosines):
	// |got−want| ≤ Elem·max(|want|, 1). 0 means 1e-5.
	Elem float64
	// Sum bounds results of sums (matrix products, convolutions, attention, the
	// norms, softmax, moments): |got−want| ≤ Sum·max|want| over the whole
	// result. 0 means 1e-4, right for FP32 arithmetic in any order; a backend
	// that computes in F16 or BF16 passes about 2e-3 or 1e-2.
	Sum float64
}

func (t Tolerance) elem() float64 {
	if t.Elem > 0 {
		return t.Elem
	}
	return 1e-5
}

func (t Tolerance) sum() float64 {
	if t.Sum > 0 {
		return t.Sum
	}
	return 1e-4
}

// kind says how a result is compared.
type kind uint8

const (
	exact kind = iota // bit for bit (NaN matches NaN)
	elem              // element-wise function: Tolerance.Elem
	sum               // reduction or product: Tolerance.Sum
)

// suite is one run of Run.
type suite struct {
	b   tensor.Backend
	cpu tensor.Backend
	tol Tolerance
}

// Run runs the conformance suite on b as subtests of t.
func Run(t *testing.T, b tensor.Backend, tol Tolerance) {
	s := &suite{b: b, cpu: tensor.NewCPU(), tol: tol}
	t.Run("Storage", s.testStorage)
	t.Run("Fill", s.testFill)
	t.Run("Copy", s.testCopy)
	t.Run("Unary", s.testUnary)
	t.Run("Binary", s.testBinary)
	t.Run("AffineClamp", s.testAffineClamp)
	t.Run("MatMul", s.testMatMul)
	t.Run("MatMulDirect", s.testMatMulDirect)
	t.Run("Linear", s.testLinear)
	t.Run("Conv2d", s.testConv2d)
	t.Run("GroupNorm", s.testGroupNorm)
	t.Run("GroupNormOffset", s.testGroupNormOffset)
	t.Run("LayerNorm", s.testLayerNorm)
	t.Run("Softmax", s.testSoftmax)
	t.Run("Attention", s.testAttention)
	t.Run("GEGLU", s.testGEGLU)
	t.Run("Concat", s.testConcat)
	t.Run("ResizeNearest", s.testResize)
	t.Run("Embedding", s.testEmbedding)
	t.Run("Moments", s.testMoments)
	t.Run("TimestepEmbedding", s.testTimestepEmbedding)
}

// env makes the inputs of one case on one backend and collects what to release.
type env struct {
	t    *testing.T
	b    tensor.Backend
	keep []*tensor.Tensor
}

func (e *env) own(x *tensor.Tensor, err error) *tensor.Tensor {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("on %s: %v", e.b.Name(), err)
	}
	e.keep = append(e.keep, x)
	return x
}

func (e *env) release() {
	for _, x := range e.keep {
		x.Release()
	}
}

// data returns n deterministic values in [-scale, scale) for seed.
func data(seed uint64, n int, scale float64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0x5d60))
	return tensortest.RandUniform(r, n, -scale, scale)
}

// rand makes a tensor of dtype dt with values from data(seed, ·, 2), rounded to
// dt on the host (so that no backend conversion is involved).
func (e *env) rand(seed uint64, dt tensor.DType, shape ...int) *tensor.Tensor {
	e.t.Helper()
	return e.randScaled(seed, 2, dt, shape...)
}

func (e *env) randScaled(seed uint64, scale float64, dt tensor.DType, shape ...int) *tensor.Tensor {
	e.t.Helper()
	v := data(seed, tensortest.Numel(shape), scale)
	return e.from(v, dt, shape...)
}

// offset makes a tensor like rand does, as a view at a non-zero offset into a
// larger one (a contiguous tensor whose Offset is not 0): rows 1..shape[0] of a
// tensor with two more rows along the first axis.
func (e *env) offset(seed uint64, dt tensor.DType, shape ...int) *tensor.Tensor {
	e.t.Helper()
	big := append([]int{shape[0] + 2}, shape[1:]...)
	x := e.rand(seed, dt, big...)
	return e.own(x.Narrow(0, 1, shape[0]))
}

func (e *env) from(v []float32, dt tensor.DType, shape ...int) *tensor.Tensor {
	e.t.Helper()
	switch dt {
	case tensor.F16:
		return e.own(tensor.FromBits(e.b, dt, tensortest.F16Bits(v), shape...))
	case tensor.BF16:
		return e.own(tensor.FromBits(e.b, dt, tensortest.BF16Bits(v), shape...))
	}
	return e.own(tensor.FromFloat32(e.b, v, shape...))
}

// result is what a case reads back: shape, dtype and values.
type result struct {
	shape []int
	dt    tensor.DType
	v     []float32
}

// read reads x back (widened to float32).
func (e *env) read(x *tensor.Tensor) result {
	e.t.Helper()
	v, err := x.Float32s()
	if err != nil {
		e.t.Fatalf("reading %v on %s: %v", x, e.b.Name(), err)
	}
	return result{x.Shape(), x.DType(), v}
}

// compare runs f on the CPU and on the backend under test and compares what
// each returns (one result per output), as k says.
func (s *suite) compare(t *testing.T, name string, k kind, f func(e *env) []result) {
	t.Helper()
	run := func(b tensor.Backend) []result {
		e := &env{t: t, b: b}
		defer e.release()
		return f(e)
	}
	want := run(s.cpu)
	got := run(s.b)
	if len(got) != len(want) {
		t.Fatalf("%s: %d results, want %d", name, len(got), len(want))
	}
	for i := range want {
		if err := s.check(k, want[i], got[i]); err != nil {
			t.Errorf("%s (output %d of %d): %v", name, i+1, len(want), err)
		}
	}
}

// check compares one result.
func (s *suite) check(k kind, want, got result) error {
	if !slices.Equal(got.shape, want.shape) || got.dt != want.dt {
		return fmt.Errorf("got %v%v, want %v%v", got.dt, got.shape, want.dt, want.shape)
	}
	switch k {
	case exact:
		bad, first := 0, -1
		for i := range want.v {
			w, g := want.v[i], got.v[i]
			if math.Float32bits(w) == math.Float32bits(g) || (w != w && g != g) {
				continue
			}
			if first < 0 {
				first = i
			}
			bad++
		}
		if bad > 0 {
			return fmt.Errorf("%d of %d values differ (exact); first at %d: got %g, want %g",
				bad, len(want.v), first, got.v[first], want.v[first])
		}
		return nil
	case elem:
		return s.within(want.v, got.v, func(w float64) float64 { return s.tol.elem() * max(math.Abs(w), 1) })
	default:
		bound := s.tol.sum() * max(tensortest.MaxAbs(want.v), 1e-30)
		return s.within(want.v, got.v, func(float64) float64 { return bound })
	}
}

func (s *suite) within(want, got []float32, bound func(w float64) float64) error {
	bad, worst, worstX := 0, -1, 0.0
	for i := range want {
		w, g := float64(want[i]), float64(got[i])
		if w == g || (math.IsNaN(w) && math.IsNaN(g)) {
			continue
		}
		b := bound(w)
		d := math.Abs(g - w)
		if !(d <= b) {
			bad++
			if x := d / b; worst < 0 || x > worstX || math.IsNaN(x) {
				worst, worstX = i, x
			}
		}
	}
	if bad == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d values out of tolerance; worst at %d: got %g, want %g (%.3g× the bound)",
		bad, len(want), worst, got[worst], want[worst], worstX)
}

// must fails the test on an error.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var dtypes = []tensor.DType{tensor.F32, tensor.F16, tensor.BF16}

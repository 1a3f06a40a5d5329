package backendtest

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/sdgo/sdgo/tensor"
)

func (s *suite) testStorage(t *testing.T) {
	for _, dt := range dtypes {
		for _, n := range []int{1, 7, 1029} {
			name := fmt.Sprintf("%v[%d]", dt, n)
			st, err := s.b.Alloc(dt, n)
			if err != nil {
				t.Fatalf("%s: Alloc: %v", name, err)
			}
			if st.Len() != n || st.DType() != dt || st.Backend() != s.b {
				t.Errorf("%s: storage says %v[%d] on %v", name, st.DType(), st.Len(), st.Backend().Name())
			}
			v := data(uint64(n), n, 3)
			off := n / 3
			if dt == tensor.F32 {
				must(t, s.b.Write(st, v))
				got := make([]float32, n-off)
				must(t, s.b.Read(st, off, got))
				for i := range got {
					if got[i] != v[off+i] {
						t.Fatalf("%s: element %d reads %g, wrote %g", name, off+i, got[i], v[off+i])
					}
				}
			} else {
				bits := make([]uint16, n)
				for i := range bits {
					bits[i] = uint16(i*7919 + 3)
				}
				must(t, s.b.Write(st, bits))
				got := make([]uint16, n-off)
				must(t, s.b.Read(st, off, got))
				for i := range got {
					if got[i] != bits[off+i] {
						t.Fatalf("%s: element %d reads %#x, wrote %#x", name, off+i, got[i], bits[off+i])
					}
				}
			}
			s.b.Free(st)
		}
	}
}

func (s *suite) testFill(t *testing.T) {
	for _, dt := range dtypes {
		for _, v := range []float32{0, 1.7, -3.14159, float32(math.Copysign(0, -1)), 70000} {
			for _, shape := range [][]int{{1}, {3, 1025}} {
				s.compare(t, fmt.Sprintf("Full(%v, %g, %v)", dt, v, shape), exact, func(e *env) []result {
					return []result{e.read(e.own(tensor.Full(e.b, dt, v, shape...)))}
				})
			}
		}
		// A contiguous view with an offset: only its elements change.
		s.compare(t, fmt.Sprintf("Fill %v view", dt), exact, func(e *env) []result {
			x := e.own(tensor.Zeros(e.b, dt, 5, 33))
			v := e.own(x.Narrow(0, 2, 2))
			must(t, e.b.Fill(v, 2.5))
			return []result{e.read(x)}
		})
	}
}

// specials are values whose conversions are easy to get wrong.
func specials() []float32 {
	inf := float32(math.Inf(1))
	return []float32{
		0, float32(math.Copysign(0, -1)), 1, -1, 65504, 65519, 65520, 1e5, -1e5,
		6e-8, 3e-8, 1e-10, -1e-40, 1e-45, inf, -inf, float32(math.NaN()),
		1 + 1.0/2048, 1 + 3.0/2048, 1 + 1.0/256, 1 + 3.0/256, 1 + 1.0/512,
		math.MaxFloat32, 3.3895314e38, 0.1, 1.0 / 3, 2.0 / 3, 1234.5678,
	}
}

func (s *suite) testCopy(t *testing.T) {
	for _, from := range dtypes {
		for _, to := range dtypes {
			s.compare(t, fmt.Sprintf("%v to %v", from, to), exact, func(e *env) []result {
				x := e.rand(1, from, 3, 5, 7)
				return []result{e.read(e.own(x.To(to)))}
			})
			s.compare(t, fmt.Sprintf("%v to %v transposed", from, to), exact, func(e *env) []result {
				x := e.rand(2, from, 3, 5, 7)
				xt := e.own(x.Transpose(0, 2))
				return []result{e.read(e.own(xt.To(to)))}
			})
			s.compare(t, fmt.Sprintf("%v to %v broadcast", from, to), exact, func(e *env) []result {
				x := e.rand(3, from, 1, 5, 1)
				xb := e.own(x.Expand(3, 5, 9))
				return []result{e.read(e.own(xb.To(to)))}
			})
		}
		s.compare(t, fmt.Sprintf("specials F32 to %v", from), exact, func(e *env) []result {
			x := e.own(tensor.FromFloat32(e.b, specials(), len(specials())))
			return []result{e.read(e.own(x.To(from)))}
		})
	}
	s.compare(t, "permuted rank 4 slice", exact, func(e *env) []result {
		x := e.rand(4, tensor.F32, 2, 3, 9, 5)
		p := e.own(x.Permute(0, 2, 3, 1))
		sl := e.own(p.Slice(1, 1, 9, 3))
		return []result{e.read(e.own(sl.To(tensor.F32))), e.read(e.own(sl.To(tensor.BF16)))}
	})
	s.compare(t, "into a view at an offset", exact, func(e *env) []result {
		big := e.own(tensor.Zeros(e.b, tensor.BF16, 4, 7, 3))
		dst := e.own(big.Narrow(0, 1, 2))
		x := e.rand(6, tensor.F16, 3, 7, 2)
		xt := e.own(x.Permute(2, 1, 0))
		must(t, e.b.Copy(dst, xt))
		return []result{e.read(big)}
	})
	s.compare(t, "rank 6", exact, func(e *env) []result {
		x := e.rand(5, tensor.F16, 2, 1, 3, 2, 4, 3)
		p := e.own(x.Permute(5, 3, 1, 0, 4, 2))
		return []result{e.read(e.own(p.To(tensor.F32)))}
	})
}

func (s *suite) testUnary(t *testing.T) {
	ops := []struct {
		name string
		f    func(*tensor.Tensor) (*tensor.Tensor, error)
	}{
		{"SiLU", tensor.SiLU}, {"GELU", tensor.GELU}, {"GELUTanh", tensor.GELUTanh},
		{"QuickGELU", tensor.QuickGELU}, {"Exp", tensor.Exp},
	}
	for _, op := range ops {
		for _, n := range []int{1, 1037} {
			for _, dt := range []tensor.DType{tensor.F32, tensor.F16} {
				s.compare(t, fmt.Sprintf("%s %v[%d]", op.name, dt, n), elem, func(e *env) []result {
					x := e.randScaled(uint64(n), 6, dt, n)
					return []result{e.read(e.own(op.f(x)))}
				})
				s.compare(t, fmt.Sprintf("%s %v[%d] at an offset", op.name, dt, n), elem, func(e *env) []result {
					x := e.offset(uint64(n), dt, n, 3)
					return []result{e.read(e.own(op.f(x)))}
				})
			}
		}
	}
}

func (s *suite) testBinary(t *testing.T) {
	ops := []struct {
		name string
		f    func(a, b *tensor.Tensor) (*tensor.Tensor, error)
	}{{"Add", tensor.Add}, {"Sub", tensor.Sub}, {"Mul", tensor.Mul}, {"Div", tensor.Div}}
	shapes := [][2][]int{
		{{5, 7}, {5, 7}},
		{{1}, {1}},
		{{2, 1, 7}, {3, 1}},
		{{1}, {4, 9}},
		{{4, 1, 1, 3}, {2, 5, 1}},
		{{3, 1031}, {1031}},
	}
	for _, op := range ops {
		for _, sh := range shapes {
			s.compare(t, fmt.Sprintf("%s %v %v", op.name, sh[0], sh[1]), elem, func(e *env) []result {
				a := e.rand(11, tensor.F32, sh[0]...)
				b := e.rand(12, tensor.F32, sh[1]...)
				return []result{e.read(e.own(op.f(a, b)))}
			})
		}
		s.compare(t, op.name+" at offsets", elem, func(e *env) []result {
			a := e.offset(15, tensor.F32, 3, 7)
			b := e.offset(16, tensor.F32, 1, 7)
			return []result{e.read(e.own(op.f(a, b)))}
		})
		s.compare(t, op.name+" transposed and F16", elem, func(e *env) []result {
			a := e.rand(13, tensor.F32, 9, 6)
			b := e.rand(14, tensor.F16, 6, 9)
			at := e.own(a.Transpose(0, 1))
			return []result{e.read(e.own(op.f(at, b))), e.read(e.own(op.f(b, at)))}
		})
	}
}

func (s *suite) testAffineClamp(t *testing.T) {
	for _, n := range []int{1, 1029} {
		s.compare(t, fmt.Sprintf("Affine [%d]", n), elem, func(e *env) []result {
			x := e.rand(21, tensor.F32, n)
			xo := e.offset(24, tensor.F32, n, 2)
			return []result{e.read(e.own(tensor.Affine(x, 1.5, -0.25))), e.read(e.own(tensor.Scale(x, -3))),
				e.read(e.own(tensor.Affine(xo, 0.5, 2)))}
		})
	}
	s.compare(t, "Clamp", exact, func(e *env) []result {
		v := append(data(22, 1000, 3), specials()...)
		x := e.own(tensor.FromFloat32(e.b, v, len(v)))
		return []result{e.read(e.own(tensor.Clamp(x, -1, 1.5))), e.read(e.own(tensor.Clamp(x, 0.5, 0.5)))}
	})
	s.compare(t, "Clamp F16 and at an offset", exact, func(e *env) []result {
		x := e.rand(23, tensor.F16, 7, 3)
		xo := e.offset(25, tensor.F32, 7, 3)
		return []result{e.read(e.own(tensor.Clamp(x, -1, 1))), e.read(e.own(tensor.Clamp(xo, -1, 1)))}
	})
}

// matCase is one MatMul: a [batchA..., M, K] times b [batchB..., K, N].
type matCase struct {
	batchA, batchB []int
	m, k, n        int
	transA, transB bool
	dtA, dtB       tensor.DType
}

func (c matCase) String() string {
	return fmt.Sprintf("%v%v%v×%v%v%v (transposed %v %v)", c.dtA, c.batchA, []int{c.m, c.k}, c.dtB, c.batchB, []int{c.k, c.n}, c.transA, c.transB)
}

// operand makes a [batch..., r, c] tensor, as a transposed view of [batch..., c, r]
// when trans is set.
func (e *env) operand(seed uint64, dt tensor.DType, batch []int, r, c int, trans bool) *tensor.Tensor {
	e.t.Helper()
	if !trans {
		return e.rand(seed, dt, append(append([]int{}, batch...), r, c)...)
	}
	x := e.rand(seed, dt, append(append([]int{}, batch...), c, r)...)
	return e.own(x.Transpose(-1, -2))
}

func (s *suite) testMatMul(t *testing.T) {
	f32, f16, bf16 := tensor.F32, tensor.F16, tensor.BF16
	cases := []matCase{
		{nil, nil, 1, 1, 1, false, false, f32, f32},
		{nil, nil, 1, 7, 3, false, false, f32, f32},
		{nil, nil, 5, 1, 9, false, false, f32, f32},
		{nil, nil, 33, 17, 65, false, false, f32, f32},
		{nil, nil, 64, 64, 64, false, false, f32, f16},
		{nil, nil, 70, 129, 31, true, false, f32, f32},
		{nil, nil, 19, 40, 23, false, true, f32, f16},
		{nil, nil, 19, 40, 23, true, true, f16, bf16},
		{[]int{2}, nil, 70, 33, 31, false, true, f32, bf16},
		{[]int{3}, []int{3}, 9, 16, 8, false, false, f32, f32},
		{[]int{3, 1}, []int{1, 2}, 13, 9, 11, false, true, f32, f32},
		{[]int{2}, []int{2}, 130, 72, 67, true, false, bf16, f16},
	}
	for _, c := range cases {
		s.compare(t, c.String(), sum, func(e *env) []result {
			a := e.operand(31, c.dtA, c.batchA, c.m, c.k, c.transA)
			b := e.operand(32, c.dtB, c.batchB, c.k, c.n, c.transB)
			return []result{e.read(e.own(tensor.MatMul(a, b)))}
		})
	}
	s.compare(t, "operands at offsets", sum, func(e *env) []result {
		a := e.offset(35, tensor.F32, 3, 5, 9)
		b := e.offset(36, tensor.BF16, 3, 9, 4)
		return []result{e.read(e.own(tensor.MatMul(a, b)))}
	})
	s.compare(t, "column slice", sum, func(e *env) []result {
		a := e.rand(33, tensor.F32, 2, 17, 40)
		as := e.own(a.Narrow(2, 3, 29))
		b := e.rand(34, tensor.F16, 29, 12)
		return []result{e.read(e.own(tensor.MatMul(as, b)))}
	})
}

// testMatMulDirect calls Backend.MatMul with what the package-level operations
// do not use: alpha, a destination view with a row stride, a strided F16 bias.
func (s *suite) testMatMulDirect(t *testing.T) {
	s.compare(t, "strided destination", sum, func(e *env) []result {
		big := e.own(tensor.Zeros(e.b, tensor.F32, 2, 9, 20))
		dst := e.own(big.Narrow(2, 3, 13))
		a := e.rand(41, tensor.F32, 2, 9, 11)
		b := e.rand(42, tensor.F16, 1, 11, 13)
		bias := e.rand(43, tensor.F16, 26)
		bs := e.own(bias.Slice(0, 0, 26, 2))
		must(t, e.b.MatMul(dst, a, b, bs, 0.5))
		return []result{e.read(big)}
	})
	s.compare(t, "transposed operands, batch stride 0", sum, func(e *env) []result {
		dst := e.own(tensor.New(e.b, tensor.F32, 3, 5, 6))
		a0 := e.rand(44, tensor.BF16, 3, 7, 5)
		a := e.own(a0.Transpose(1, 2))
		b0 := e.rand(45, tensor.F32, 1, 6, 7)
		b1 := e.own(b0.Transpose(1, 2))
		b := e.own(b1.Expand(3, 7, 6))
		must(t, e.b.MatMul(dst, a, b, nil, -2))
		return []result{e.read(dst)}
	})
}

func (s *suite) testLinear(t *testing.T) {
	cases := []struct {
		x        []int
		out      int
		dtW, dtB tensor.DType
		bias     bool
		permuteX bool
	}{
		{[]int{1, 1}, 1, tensor.F32, tensor.F32, true, false},
		{[]int{3, 5, 37}, 19, tensor.F16, tensor.F16, true, false},
		{[]int{77, 64}, 96, tensor.BF16, tensor.F32, false, false},
		{[]int{2, 7, 3, 33}, 65, tensor.F16, tensor.BF16, true, true},
	}
	for _, c := range cases {
		s.compare(t, fmt.Sprintf("x %v, w %v[%d %d], bias %v", c.x, c.dtW, c.out, c.x[len(c.x)-1], c.bias), sum, func(e *env) []result {
			in := c.x[len(c.x)-1]
			x := e.rand(51, tensor.F32, c.x...)
			if c.permuteX {
				x = e.own(x.Transpose(0, 1))
			}
			w := e.rand(52, c.dtW, c.out, in)
			var b *tensor.Tensor
			if c.bias {
				b = e.rand(53, c.dtB, c.out)
			}
			return []result{e.read(e.own(tensor.Linear(x, w, b)))}
		})
	}
}

func (s *suite) testConv2d(t *testing.T) {
	cases := []struct {
		x, w     []int
		p        tensor.Conv2dParams
		dtX, dtW tensor.DType
		bias     tensor.DType // 0: none
	}{
		{[]int{2, 5, 9, 11}, []int{7, 5, 3, 3}, tensor.Conv2dParams{Padding: 1}, tensor.F32, tensor.F32, tensor.F32},
		{[]int{1, 4, 8, 7}, []int{6, 4, 3, 3}, tensor.Conv2dParams{Stride: 2, PadEnd: 1}, tensor.F32, tensor.F16, tensor.F16},
		{[]int{2, 4, 5, 6}, []int{6, 4, 1, 1}, tensor.Conv2dParams{}, tensor.F32, tensor.BF16, 0},
		{[]int{1, 2, 10, 9}, []int{3, 2, 5, 3}, tensor.Conv2dParams{Stride: 2, Padding: 2}, tensor.F32, tensor.F16, tensor.BF16},
		{[]int{1, 3, 1, 1}, []int{2, 3, 1, 1}, tensor.Conv2dParams{}, tensor.F32, tensor.F32, tensor.F32},
		{[]int{1, 3, 1, 1}, []int{2, 3, 3, 3}, tensor.Conv2dParams{Padding: 1}, tensor.F16, tensor.F32, 0},
		{[]int{1, 33, 12, 12}, []int{40, 33, 3, 3}, tensor.Conv2dParams{Padding: 1}, tensor.F32, tensor.F16, tensor.F32},
	}
	s.compare(t, "input and weight at offsets", sum, func(e *env) []result {
		x := e.offset(64, tensor.F32, 2, 3, 6, 5)
		w := e.offset(65, tensor.F16, 4, 3, 3, 3)
		b := e.offset(66, tensor.BF16, 4)
		return []result{e.read(e.own(tensor.Conv2d(x, w, b, tensor.Conv2dParams{Padding: 1})))}
	})
	for _, c := range cases {
		name := fmt.Sprintf("%v%v * %v%v %+v", c.dtX, c.x, c.dtW, c.w, c.p)
		s.compare(t, name, sum, func(e *env) []result {
			x := e.rand(61, c.dtX, c.x...)
			w := e.randScaled(62, 0.5, c.dtW, c.w...)
			var b *tensor.Tensor
			if c.bias != 0 {
				b = e.rand(63, c.bias, c.w[0])
			}
			return []result{e.read(e.own(tensor.Conv2d(x, w, b, c.p)))}
		})
	}
}

func (s *suite) testGroupNorm(t *testing.T) {
	cases := []struct {
		x        []int
		groups   int
		dtG, dtB tensor.DType
		shift    float32
	}{
		{[]int{2, 6, 5, 7}, 3, tensor.F32, tensor.F32, 0},
		{[]int{1, 32, 3, 3}, 32, tensor.F16, tensor.BF16, 0},
		{[]int{2, 4, 1}, 2, tensor.F32, tensor.F16, 0},
		{[]int{1, 8, 33, 33}, 4, tensor.F32, tensor.F32, 50},
		{[]int{1, 3}, 1, tensor.BF16, tensor.F32, 0},
	}
	for _, c := range cases {
		for _, silu := range []bool{false, true} {
			s.compare(t, fmt.Sprintf("%v groups %d silu %v", c.x, c.groups, silu), sum, func(e *env) []result {
				x0 := e.rand(71, tensor.F32, c.x...)
				x := e.own(tensor.Affine(x0, 1, c.shift))
				g := e.rand(72, c.dtG, c.x[1])
				b := e.rand(73, c.dtB, c.x[1])
				f := tensor.GroupNorm
				if silu {
					f = tensor.GroupNormSiLU
				}
				return []result{e.read(e.own(f(x, g, b, c.groups, 1e-5)))}
			})
		}
	}
}

func (s *suite) testGroupNormOffset(t *testing.T) {
	s.compare(t, "at offsets", sum, func(e *env) []result {
		x := e.offset(74, tensor.F32, 2, 4, 3, 5)
		g := e.offset(75, tensor.F16, 4)
		b := e.offset(76, tensor.F32, 4)
		return []result{e.read(e.own(tensor.GroupNormSiLU(x, g, b, 2, 1e-6)))}
	})
}

func (s *suite) testLayerNorm(t *testing.T) {
	cases := []struct {
		x        []int
		dtG, dtB tensor.DType // 0: nil
		shift    float32
	}{
		{[]int{3, 7}, 0, 0, 0},
		{[]int{2, 5, 1027}, tensor.F16, tensor.BF16, 0},
		{[]int{4, 1}, tensor.F32, tensor.F32, 0},
		{[]int{77, 768}, tensor.F32, 0, 20},
		{[]int{9}, 0, tensor.F16, 0},
	}
	s.compare(t, "at offsets, strided gamma", sum, func(e *env) []result {
		x := e.offset(84, tensor.F32, 3, 33)
		g0 := e.rand(85, tensor.BF16, 66)
		g := e.own(g0.Slice(0, 1, 66, 2))
		b := e.offset(86, tensor.F16, 33)
		return []result{e.read(e.own(tensor.LayerNorm(x, g, b, 1e-5)))}
	})
	for _, c := range cases {
		s.compare(t, fmt.Sprintf("%v gamma %v beta %v", c.x, c.dtG, c.dtB), sum, func(e *env) []result {
			x0 := e.rand(81, tensor.F32, c.x...)
			x := e.own(tensor.Affine(x0, 1, c.shift))
			n := c.x[len(c.x)-1]
			var g, b *tensor.Tensor
			if c.dtG != 0 {
				g = e.rand(82, c.dtG, n)
			}
			if c.dtB != 0 {
				b = e.rand(83, c.dtB, n)
			}
			return []result{e.read(e.own(tensor.LayerNorm(x, g, b, 1e-5)))}
		})
	}
}

func (s *suite) testSoftmax(t *testing.T) {
	for _, shape := range [][]int{{1}, {3, 1}, {5, 1000}, {2, 3, 4097}, {4, 77}} {
		s.compare(t, fmt.Sprint(shape), sum, func(e *env) []result {
			x := e.randScaled(91, 8, tensor.F32, shape...)
			return []result{e.read(e.own(tensor.Softmax(x)))}
		})
	}
	s.compare(t, "at an offset", sum, func(e *env) []result {
		x := e.offset(93, tensor.F32, 4, 19)
		return []result{e.read(e.own(tensor.Softmax(x)))}
	})
	s.compare(t, "large values, F16 input", sum, func(e *env) []result {
		x0 := e.rand(92, tensor.F32, 6, 33)
		x := e.own(tensor.Affine(x0, 10, 80))
		xh := e.own(x.To(tensor.F16))
		return []result{e.read(e.own(tensor.Softmax(x))), e.read(e.own(tensor.Softmax(xh)))}
	})
}

func (s *suite) testAttention(t *testing.T) {
	type shape struct{ b, h, lq, lk, d, dv int }
	shapes := []shape{
		{1, 1, 1, 1, 1, 1},
		{2, 3, 17, 13, 8, 5},
		{1, 2, 70, 77, 40, 40},
		{1, 1, 300, 300, 64, 64},
		{1, 1, 5, 9, 160, 160},
	}
	params := []tensor.AttentionParams{
		{},
		{Mode: tensor.AttentionFlash, BlockQ: 7, BlockK: 5},
		{Mode: tensor.AttentionSliced, BlockQ: 3},
		{Causal: true, Scale: 0.3},
		{Causal: true, Mode: tensor.AttentionSliced},
	}
	for _, sh := range shapes {
		for _, p := range params {
			s.compare(t, fmt.Sprintf("%+v %+v", sh, p), sum, func(e *env) []result {
				q := e.rand(101, tensor.F32, sh.b, sh.h, sh.lq, sh.d)
				k := e.rand(102, tensor.F32, sh.b, sh.h, sh.lk, sh.d)
				v := e.rand(103, tensor.F32, sh.b, sh.h, sh.lk, sh.dv)
				return []result{e.read(e.own(tensor.Attention(q, k, v, p)))}
			})
		}
	}
	s.compare(t, "operands at offsets", sum, func(e *env) []result {
		q := e.offset(107, tensor.F32, 2, 2, 5, 8)
		k := e.offset(108, tensor.F16, 2, 2, 7, 8)
		v := e.offset(109, tensor.F32, 2, 2, 7, 3)
		return []result{e.read(e.own(tensor.Attention(q, k, v, tensor.AttentionParams{})))}
	})
	// [B,L,H,D] projections read in place, F16 keys and values, BF16 queries, and
	// a destination [B,Lq,H,Dv] permuted to [B,H,Lq,Dv].
	for _, p := range params[:4] {
		s.compare(t, fmt.Sprintf("strided %+v", p), sum, func(e *env) []result {
			b, h, lq, lk, d, dv := 2, 3, 19, 23, 16, 12
			q0 := e.rand(104, tensor.BF16, b, lq, h, d)
			k0 := e.rand(105, tensor.F16, b, lk, h, d)
			v0 := e.rand(106, tensor.F16, b, lk, h, dv)
			q := e.own(q0.Permute(0, 2, 1, 3))
			k := e.own(k0.Permute(0, 2, 1, 3))
			v := e.own(v0.Permute(0, 2, 1, 3))
			out := e.own(tensor.Zeros(e.b, tensor.F32, b, lq, h, dv))
			dst := e.own(out.Permute(0, 2, 1, 3))
			must(t, tensor.AttentionInto(dst, q, k, v, p))
			return []result{e.read(out), e.read(e.own(tensor.Attention(q, k, v, p)))}
		})
	}
}

func (s *suite) testGEGLU(t *testing.T) {
	s.compare(t, "at an offset", elem, func(e *env) []result {
		x := e.offset(112, tensor.F32, 3, 10)
		return []result{e.read(e.own(tensor.GEGLU(x)))}
	})
	for _, shape := range [][]int{{1, 2}, {3, 5, 74}, {2, 2060}} {
		s.compare(t, fmt.Sprint(shape), elem, func(e *env) []result {
			x := e.randScaled(111, 4, tensor.F32, shape...)
			return []result{e.read(e.own(tensor.GEGLU(x)))}
		})
	}
}

func (s *suite) testConcat(t *testing.T) {
	for _, dt := range dtypes {
		for axis := range 3 {
			s.compare(t, fmt.Sprintf("%v axis %d", dt, axis), exact, func(e *env) []result {
				sizes := []int{1, 4, 3}
				var xs []*tensor.Tensor
				for i, n := range sizes {
					shape := []int{2, 5, 3}
					shape[axis] = n
					xs = append(xs, e.rand(uint64(120+i), dt, shape...))
				}
				// The middle one as a transposed view.
				sh := xs[1].Shape()
				x1 := e.rand(125, dt, sh[2], sh[1], sh[0])
				xs[1] = e.own(x1.Permute(2, 1, 0))
				return []result{e.read(e.own(tensor.Concat(axis, xs...)))}
			})
		}
	}
	s.compare(t, "one input, negative axis", exact, func(e *env) []result {
		x := e.rand(126, tensor.F32, 3, 1, 7)
		return []result{e.read(e.own(tensor.Concat(-1, x)))}
	})
}

func (s *suite) testResize(t *testing.T) {
	s.compare(t, "Upsample2x", exact, func(e *env) []result {
		x := e.rand(131, tensor.F32, 2, 3, 5, 7)
		return []result{e.read(e.own(tensor.Upsample2x(x)))}
	})
	s.compare(t, "Upsample2x F16", exact, func(e *env) []result {
		x := e.rand(132, tensor.F16, 1, 2, 1, 3)
		return []result{e.read(e.own(tensor.Upsample2x(x)))}
	})
	s.compare(t, "at an offset", exact, func(e *env) []result {
		x := e.offset(134, tensor.F32, 2, 3, 4, 5)
		return []result{e.read(e.own(tensor.ResizeNearest(x, 9, 7))), e.read(e.own(tensor.Upsample2x(x)))}
	})
	for _, hw := range [][2]int{{7, 3}, {1, 1}, {13, 17}, {5, 6}, {11, 13}} {
		s.compare(t, fmt.Sprintf("to %v", hw), exact, func(e *env) []result {
			x := e.rand(133, tensor.F32, 1, 2, 5, 6)
			return []result{e.read(e.own(tensor.ResizeNearest(x, hw[0], hw[1])))}
		})
	}
}

func (s *suite) testEmbedding(t *testing.T) {
	for _, dt := range dtypes {
		s.compare(t, dt.String(), exact, func(e *env) []result {
			table := e.rand(141, dt, 11, 7)
			return []result{
				e.read(e.own(tensor.Embedding(table, []int{0, 10, 3, 3, 5}))),
				e.read(e.own(tensor.Embedding(table, []int{4}))),
				e.read(e.own(tensor.Embedding(table, nil))),
			}
		})
		s.compare(t, dt.String()+" table at an offset", exact, func(e *env) []result {
			table := e.offset(143, dt, 6, 5)
			return []result{e.read(e.own(tensor.Embedding(table, []int{5, 0, 2})))}
		})
		s.compare(t, dt.String()+" transposed table", exact, func(e *env) []result {
			t0 := e.rand(142, dt, 9, 13)
			table := e.own(t0.Transpose(0, 1))
			return []result{e.read(e.own(tensor.Embedding(table, []int{12, 0, 8})))}
		})
	}
}

func (s *suite) testMoments(t *testing.T) {
	cases := []struct {
		shape []int
		axes  int
		shift float32
	}{
		{[]int{3, 4, 5}, 1, 0},
		{[]int{3, 4, 5}, 2, 0},
		{[]int{3, 4, 5}, 3, 0},
		{[]int{2, 10007}, 1, 100},
		{[]int{7, 1}, 1, 0},
	}
	s.compare(t, "at an offset", sum, func(e *env) []result {
		x := e.offset(152, tensor.F32, 3, 17)
		m, v, err := tensor.Moments(x, 1)
		e.own(m, err)
		e.own(v, nil)
		return []result{e.read(m), e.read(v)}
	})
	for _, c := range cases {
		s.compare(t, fmt.Sprintf("%v over %d axes", c.shape, c.axes), sum, func(e *env) []result {
			x0 := e.rand(151, tensor.F32, c.shape...)
			x := e.own(tensor.Affine(x0, 1, c.shift))
			m, v, err := tensor.Moments(x, c.axes)
			e.own(m, err)
			e.own(v, nil)
			return []result{e.read(m), e.read(v)}
		})
	}
}

// testTimestepEmbedding compares the sinusoidal embedding on awkward sizes: one
// and three timesteps, dims from 2 (one frequency) to 1280, odd dims (a zero
// column), both orders, both frequency shifts, integer, half and small
// fractional timesteps and SDXL's time ids. A backend that computes exp, sin and
// cos as the CPU does (in float64) agrees bit for bit; one without double
// (Metal) is within a few float ulps, well inside Tolerance.Elem.
func (s *suite) testTimestepEmbedding(t *testing.T) {
	steps := map[int][]float32{
		1: {999.5},
		3: {0, 999, 0.25},
		8: {999.5, 1, 500, 1024, 0.003, 981, 2.5e-7, 768},
	}
	for _, n := range []int{1, 3, 8} {
		for _, dim := range []int{2, 3, 7, 320, 1280} {
			for _, flip := range []bool{false, true} {
				for _, shift := range []float64{0, 1} {
					if dim/2 == 1 && shift == 1 {
						continue // a divisor of 0: rejected (below)
					}
					p := tensor.TimestepEmbeddingParams{FlipSinToCos: flip, FreqShift: shift}
					name := fmt.Sprintf("N=%d dim=%d flip=%v shift=%g", n, dim, flip, shift)
					s.compare(t, name, elem, func(e *env) []result {
						ts := e.from(steps[n], tensor.F32, n)
						return []result{e.read(e.own(tensor.TimestepEmbedding(ts, dim, p)))}
					})
				}
			}
		}
	}
	p := tensor.TimestepEmbeddingParams{FlipSinToCos: true}
	s.compare(t, "SDXL time ids", elem, func(e *env) []result {
		ids := e.from([]float32{1024, 1024, 0, 0, 1024, 1024, 896, 1152, 64, 32, 896, 1152}, tensor.F32, 2, 6)
		flat := e.own(ids.Reshape(12))
		return []result{e.read(e.own(tensor.TimestepEmbedding(flat, 256, p)))}
	})
	s.compare(t, "F16 timesteps at an offset", elem, func(e *env) []result {
		big := e.from([]float32{7, 999, 0.5, 261, 7}, tensor.F16, 5)
		ts := e.own(big.Narrow(0, 1, 3))
		return []result{e.read(e.own(tensor.TimestepEmbedding(ts, 9, p)))}
	})
	s.compare(t, "no timesteps", exact, func(e *env) []result {
		ts := e.from(nil, tensor.F32, 0)
		return []result{e.read(e.own(tensor.TimestepEmbedding(ts, 320, p)))}
	})
	ts, err := tensor.FromFloat32(s.b, []float32{1, 2}, 2)
	must(t, err)
	defer ts.Release()
	for _, c := range []struct {
		dim   int
		shift float64
	}{{1, 0}, {0, 0}, {-4, 0}, {2, 1}, {3, 1}, {320, 160}, {320, math.NaN()}} {
		p := tensor.TimestepEmbeddingParams{FreqShift: c.shift}
		if x, err := tensor.TimestepEmbedding(ts, c.dim, p); !errors.Is(err, tensor.ErrRange) {
			t.Errorf("TimestepEmbedding(dim %d, shift %g) = %v, %v; want an error wrapping ErrRange", c.dim, c.shift, x, err)
			if err == nil {
				x.Release()
			}
		}
	}
	t2, err := tensor.FromFloat32(s.b, []float32{1, 2}, 1, 2)
	must(t, err)
	defer t2.Release()
	if x, err := tensor.TimestepEmbedding(t2, 4, p); !errors.Is(err, tensor.ErrShape) {
		t.Errorf("TimestepEmbedding of timesteps %v = %v, %v; want an error wrapping ErrShape", t2, x, err)
		if err == nil {
			x.Release()
		}
	}
}

package tensor_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdgo/sdgo/tensor"
	"github.com/sdgo/sdgo/tensor/tensortest"
)

// opsEnv is the harness of the operation tests: a CPU backend, a seeded random
// source and helpers that make tensors and read them back.
type opsEnv struct {
	t   *testing.T
	cpu *tensor.CPU
	rng *rand.Rand
}

func newOpsEnv(t *testing.T) *opsEnv {
	return &opsEnv{t: t, cpu: tensor.NewCPU(), rng: rand.New(rand.NewPCG(7, uint64(len(t.Name()))))}
}

// from makes an F32 tensor holding data.
func (e *opsEnv) from(data []float32, shape ...int) *tensor.Tensor {
	e.t.Helper()
	x, err := tensor.FromFloat32(e.cpu, data, shape...)
	require.NoError(e.t, err)
	e.t.Cleanup(x.Release)
	return x
}

// rand makes an F32 tensor of standard normal values.
func (e *opsEnv) rand(shape ...int) ([]float32, *tensor.Tensor) {
	e.t.Helper()
	data := tensortest.Rand(e.rng, tensortest.Numel(shape))
	return data, e.from(data, shape...)
}

// typed makes a tensor of dtype dt from data and returns it with the values it
// holds (data rounded to dt).
func (e *opsEnv) typed(dt tensor.DType, data []float32, shape ...int) (*tensor.Tensor, []float32) {
	e.t.Helper()
	var (
		x   *tensor.Tensor
		err error
	)
	switch dt {
	case tensor.F32:
		return e.from(data, shape...), data
	case tensor.F16:
		x, err = tensor.FromBits(e.cpu, dt, tensortest.F16Bits(data), shape...)
		data = tensortest.RoundF16(data)
	case tensor.BF16:
		x, err = tensor.FromBits(e.cpu, dt, tensortest.BF16Bits(data), shape...)
		data = tensortest.RoundBF16(data)
	}
	require.NoError(e.t, err)
	e.t.Cleanup(x.Release)
	return x, data
}

// vals reads x back and releases it.
func (e *opsEnv) vals(x *tensor.Tensor) []float32 {
	e.t.Helper()
	v, err := x.Float32s()
	require.NoError(e.t, err)
	x.Release()
	return v
}

// transposed makes an F32 tensor of shape whose storage is transposed in its last
// two dimensions (a non-contiguous view), holding data in row-major order.
func (e *opsEnv) transposed(data []float32, shape ...int) *tensor.Tensor {
	e.t.Helper()
	r := len(shape)
	axes := make([]int, r)
	for i := range axes {
		axes[i] = i
	}
	axes[r-1], axes[r-2] = r-2, r-1
	td, ts := tensortest.Permute(data, shape, axes)
	x := e.from(td, ts...)
	v, err := x.Transpose(-1, -2)
	require.NoError(e.t, err)
	require.False(e.t, v.IsContiguous())
	e.t.Cleanup(v.Release)
	return v
}

var (
	awkward = []int{1, 3, 7, 17, 31, 33, 127, 129}
	dtypes  = []tensor.DType{tensor.F32, tensor.F16, tensor.BF16}
)

func TestUnary(t *testing.T) {
	e := newOpsEnv(t)
	ops := []struct {
		name string
		f    func(*tensor.Tensor) (*tensor.Tensor, error)
		ref  func([]float32) []float32
	}{
		{"SiLU", tensor.SiLU, tensortest.SiLU},
		{"GELU", tensor.GELU, tensortest.GELU},
		{"GELUTanh", tensor.GELUTanh, tensortest.GELUTanh},
		{"QuickGELU", tensor.QuickGELU, tensortest.QuickGELU},
		{"Exp", tensor.Exp, tensortest.Exp},
	}
	for _, op := range ops {
		for _, n := range append(awkward, 40000) {
			t.Run(fmt.Sprintf("%s/%d", op.name, n), func(t *testing.T) {
				data := tensortest.Rand(e.rng, 3*n)
				for i := range data {
					data[i] *= 4
				}
				y, err := op.f(e.from(data, 3, n))
				require.NoError(t, err)
				require.Equal(t, []int{3, n}, y.Shape())
				require.Equal(t, tensor.F32, y.DType())
				tensortest.RequireClose(t, op.ref(data), e.vals(y), 1e-5, 1e-6)
			})
		}
	}
	t.Run("strided", func(t *testing.T) {
		data := tensortest.Rand(e.rng, 5*33)
		y, err := tensor.SiLU(e.transposed(data, 5, 33))
		require.NoError(t, err)
		tensortest.RequireClose(t, tensortest.SiLU(data), e.vals(y), 1e-5, 1e-6)
	})
	t.Run("F16 input", func(t *testing.T) {
		x, vals := e.typed(tensor.F16, tensortest.Rand(e.rng, 37), 37)
		y, err := tensor.GELU(x)
		require.NoError(t, err)
		require.Equal(t, tensor.F32, y.DType())
		tensortest.RequireClose(t, tensortest.GELU(vals), e.vals(y), 1e-5, 1e-6)
	})
}

func TestAffineScale(t *testing.T) {
	e := newOpsEnv(t)
	for _, n := range append(awkward, 50000) {
		data, x := e.rand(2, n)
		y, err := tensor.Affine(x, 0.18215, -0.5)
		require.NoError(t, err)
		tensortest.RequireClose(t, tensortest.Affine(data, 0.18215, -0.5), e.vals(y), 1e-6, 1e-7)
		y, err = tensor.Scale(x, -3)
		require.NoError(t, err)
		tensortest.RequireClose(t, tensortest.Affine(data, -3, 0), e.vals(y), 0, 0)
	}
}

func TestBinaryBroadcast(t *testing.T) {
	e := newOpsEnv(t)
	cases := []struct{ a, b []int }{
		{[]int{3, 7}, []int{3, 7}},
		{[]int{3, 7}, []int{7}},
		{[]int{7}, []int{3, 7}},
		{[]int{3, 1}, []int{1, 7}},
		{[]int{2, 3, 17}, []int{3, 1}},
		{[]int{129}, []int{1}},
		{[]int{}, []int{5}},
		{[]int{4, 33}, []int{}},
		{[]int{1}, []int{4, 33}},
		{[]int{2, 1, 31}, []int{1, 5, 1}},
		{[]int{2, 320, 9, 7}, []int{1, 320, 1, 1}},
		{[]int{2, 77, 127}, []int{2, 1, 127}},
		{[]int{1, 40000}, []int{3, 1}},
		{[]int{70000}, []int{70000}},
	}
	ops := []struct {
		name string
		f    func(a, b *tensor.Tensor) (*tensor.Tensor, error)
		ref  func([]float32, []int, []float32, []int) ([]float32, []int)
	}{
		{"Add", tensor.Add, tensortest.Add},
		{"Sub", tensor.Sub, tensortest.Sub},
		{"Mul", tensor.Mul, tensortest.Mul},
		{"Div", tensor.Div, tensortest.Div},
	}
	for _, c := range cases {
		for _, op := range ops {
			t.Run(fmt.Sprintf("%s/%v_%v", op.name, c.a, c.b), func(t *testing.T) {
				ad, a := e.rand(c.a...)
				bd := tensortest.RandUniform(e.rng, tensortest.Numel(c.b), 0.5, 2)
				b := e.from(bd, c.b...)
				want, shape := op.ref(ad, c.a, bd, c.b)
				y, err := op.f(a, b)
				require.NoError(t, err)
				require.Equal(t, shape, y.Shape())
				// IEEE operations on float32 are correctly rounded, as is a float64
				// result of float32 operands rounded to float32.
				tensortest.RequireClose(t, want, e.vals(y), 0, 0)
			})
		}
	}
	t.Run("strided operands", func(t *testing.T) {
		ad := tensortest.Rand(e.rng, 2*9*33)
		a := e.transposed(ad, 2, 9, 33)
		bd, b := e.rand(9, 1)
		for _, op := range ops {
			want, _ := op.ref(ad, []int{2, 9, 33}, bd, []int{9, 1})
			y, err := op.f(a, b)
			require.NoError(t, err)
			tensortest.RequireClose(t, want, e.vals(y), 0, 0)
			want, _ = op.ref(bd, []int{9, 1}, ad, []int{2, 9, 33})
			y, err = op.f(b, a)
			require.NoError(t, err)
			tensortest.RequireClose(t, want, e.vals(y), 0, 0)
		}
	})
	t.Run("F16 operand", func(t *testing.T) {
		ad, a := e.rand(4, 17)
		b, bd := e.typed(tensor.F16, tensortest.Rand(e.rng, 17), 17)
		want, _ := tensortest.Add(ad, []int{4, 17}, bd, []int{17})
		y, err := tensor.Add(a, b)
		require.NoError(t, err)
		tensortest.RequireClose(t, want, e.vals(y), 0, 0)
	})
}

func TestSoftmax(t *testing.T) {
	e := newOpsEnv(t)
	shapes := [][]int{{1}, {5}, {2, 3, 129}, {1, 5000}, {300, 77}}
	for _, n := range awkward {
		shapes = append(shapes, []int{3, n})
	}
	for _, shape := range shapes {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			data := tensortest.Rand(e.rng, tensortest.Numel(shape))
			for i := range data {
				data[i] *= 30 // large logits: the max must be subtracted
			}
			y, err := tensor.Softmax(e.from(data, shape...))
			require.NoError(t, err)
			tensortest.RequireClose(t, tensortest.Softmax(data, shape), e.vals(y), 1e-5, 1e-7)
		})
	}
	t.Run("strided", func(t *testing.T) {
		data := tensortest.Rand(e.rng, 7*31)
		y, err := tensor.Softmax(e.transposed(data, 7, 31))
		require.NoError(t, err)
		tensortest.RequireClose(t, tensortest.Softmax(data, []int{7, 31}), e.vals(y), 1e-5, 1e-7)
	})
}

func TestLayerNorm(t *testing.T) {
	e := newOpsEnv(t)
	for _, n := range append(awkward, 320, 768, 5000) {
		for _, dt := range dtypes {
			t.Run(fmt.Sprintf("%d/%v", n, dt), func(t *testing.T) {
				data := tensortest.Rand(e.rng, 5*n)
				for i := range data[n:] { // row 0 centred, the others far from 0
					data[n+i] = data[n+i]*0.5 + 40
				}
				x := e.from(data, 5, n)
				gamma, gv := e.typed(dt, tensortest.Rand(e.rng, n), n)
				beta, bv := e.typed(dt, tensortest.Rand(e.rng, n), n)
				y, err := tensor.LayerNorm(x, gamma, beta, 1e-5)
				require.NoError(t, err)
				want := tensortest.LayerNorm(data, []int{5, n}, gv, bv, 1e-5)
				tensortest.RequireClose(t, want, e.vals(y), 1e-5, 2e-5)
			})
		}
	}
	t.Run("nil params", func(t *testing.T) {
		data, x := e.rand(3, 4, 33)
		_, bv := e.typed(tensor.F32, tensortest.Rand(e.rng, 33), 33)
		beta := e.from(bv, 33)
		y, err := tensor.LayerNorm(x, nil, nil, 1e-6)
		require.NoError(t, err)
		tensortest.RequireClose(t, tensortest.LayerNorm(data, []int{3, 4, 33}, nil, nil, 1e-6), e.vals(y), 1e-5, 1e-5)
		y, err = tensor.LayerNorm(x, nil, beta, 1e-6)
		require.NoError(t, err)
		tensortest.RequireClose(t, tensortest.LayerNorm(data, []int{3, 4, 33}, nil, bv, 1e-6), e.vals(y), 1e-5, 1e-5)
	})
	t.Run("strided", func(t *testing.T) {
		data := tensortest.Rand(e.rng, 9*17)
		y, err := tensor.LayerNorm(e.transposed(data, 9, 17), nil, nil, 1e-5)
		require.NoError(t, err)
		tensortest.RequireClose(t, tensortest.LayerNorm(data, []int{9, 17}, nil, nil, 1e-5), e.vals(y), 1e-5, 1e-5)
	})
}

func TestGroupNorm(t *testing.T) {
	e := newOpsEnv(t)
	cases := []struct {
		shape  []int
		groups int
	}{
		{[]int{2, 64, 7, 9}, 32},
		{[]int{1, 32, 3, 3}, 32},
		{[]int{1, 32, 1, 1}, 32},
		{[]int{2, 96, 17, 13}, 32},
		{[]int{1, 64, 31, 33}, 2}, // groups far longer than one statistics block
		{[]int{3, 96, 5}, 32},
		{[]int{2, 32}, 32},
		{[]int{2, 6, 7, 3}, 3},
		{[]int{1, 320, 8, 8}, 32},
	}
	for _, c := range cases {
		for _, dt := range dtypes {
			for _, silu := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/g%d/%v/silu=%v", c.shape, c.groups, dt, silu), func(t *testing.T) {
					n := tensortest.Numel(c.shape)
					data := tensortest.Rand(e.rng, n)
					if c.shape[0] > 1 { // sample 1 far from 0 with a small spread
						s := n / c.shape[0]
						for i := s; i < 2*s; i++ {
							data[i] = data[i]*0.5 + 100
						}
					}
					ch := c.shape[1]
					gamma, gv := e.typed(dt, tensortest.Rand(e.rng, ch), ch)
					beta, bv := e.typed(dt, tensortest.Rand(e.rng, ch), ch)
					f := tensor.GroupNorm
					if silu {
						f = tensor.GroupNormSiLU
					}
					y, err := f(e.from(data, c.shape...), gamma, beta, c.groups, 1e-6)
					require.NoError(t, err)
					require.Equal(t, c.shape, y.Shape())
					want := tensortest.GroupNorm(data, c.shape, gv, bv, c.groups, 1e-6, silu)
					// torch's formula, x·scale + (β − mean·scale) in float32, loses
					// the digits of a mean that is large against the spread: allow
					// a few ulps of x·scale on top of the usual tolerance.
					got := e.vals(y)
					spatial := tensortest.Numel(c.shape[2:])
					cg := ch / c.groups
					_, variance := tensortest.Moments(data, []int{len(data) / (cg * spatial), cg * spatial}, 1)
					for i := range want {
						chn := (i / spatial) % ch
						scale := math.Abs(float64(gv[chn])) / math.Sqrt(float64(variance[i/(cg*spatial)])+1e-6)
						tol := 1e-5*math.Abs(float64(want[i])) + 5e-5 + 4*0x1p-24*math.Abs(float64(data[i]))*scale
						if d := math.Abs(float64(got[i] - want[i])); !(d <= tol) {
							t.Fatalf("element %d: got %g, want %g (diff %g > %g)", i, got[i], want[i], d, tol)
						}
					}
				})
			}
		}
	}
	t.Run("strided", func(t *testing.T) {
		data := tensortest.Rand(e.rng, 2*32*5*7)
		ones := make([]float32, 32)
		for i := range ones {
			ones[i] = 1
		}
		g, b := e.from(ones, 32), e.from(make([]float32, 32), 32)
		y, err := tensor.GroupNorm(e.transposed(data, 2, 32, 5, 7), g, b, 8, 1e-5)
		require.NoError(t, err)
		want := tensortest.GroupNorm(data, []int{2, 32, 5, 7}, nil, nil, 8, 1e-5, false)
		tensortest.RequireClose(t, want, e.vals(y), 1e-5, 1e-5)
	})
}

func TestGEGLU(t *testing.T) {
	e := newOpsEnv(t)
	for _, n := range append(awkward, 1280) {
		shape := []int{2, 3, 2 * n}
		data, x := e.rand(shape...)
		y, err := tensor.GEGLU(x)
		require.NoError(t, err)
		require.Equal(t, []int{2, 3, n}, y.Shape())
		tensortest.RequireClose(t, tensortest.GEGLU(data, shape), e.vals(y), 1e-5, 1e-6)
	}
}

func TestConcat(t *testing.T) {
	e := newOpsEnv(t)
	for _, axis := range []int{0, 1, 2, 3, -1} {
		shapes := [][]int{{2, 3, 5, 7}, {2, 3, 5, 7}, {2, 3, 5, 7}}
		a := axis
		if a < 0 {
			a += 4
		}
		shapes[1][a], shapes[2][a] = 1, 4
		for _, dt := range dtypes {
			t.Run(fmt.Sprintf("axis%d/%v", axis, dt), func(t *testing.T) {
				var xs []*tensor.Tensor
				var vals [][]float32
				for i, s := range shapes {
					data := tensortest.Rand(e.rng, tensortest.Numel(s))
					x, v := e.typed(dt, data, s...)
					if i == 1 { // a strided input: a broadcast view
						x0, v0 := e.typed(dt, data[:tensortest.Numel(s)/s[0]], append([]int{1}, s[1:]...)...)
						var err error
						x, err = x0.Expand(s...)
						require.NoError(t, err)
						t.Cleanup(x.Release)
						v = tensortest.Strided(v0, s, append([]int{0}, tensortest.Strides(s)[1:]...), 0)
					}
					if i == 2 { // a transposed view
						x = e.transposed(v, s...)
						if dt != tensor.F32 {
							var err error
							x, err = x.To(dt)
							require.NoError(t, err)
							t.Cleanup(x.Release)
						}
					}
					xs, vals = append(xs, x), append(vals, v)
				}
				want, shape := tensortest.Concat(a, vals, shapes)
				y, err := tensor.Concat(axis, xs...)
				require.NoError(t, err)
				require.Equal(t, shape, y.Shape())
				require.Equal(t, dt, y.DType())
				tensortest.RequireClose(t, want, e.vals(y), 0, 0)
			})
		}
	}
	t.Run("one", func(t *testing.T) {
		data, x := e.rand(3, 129)
		y, err := tensor.Concat(1, x)
		require.NoError(t, err)
		tensortest.RequireClose(t, data, e.vals(y), 0, 0)
	})
}

func TestClamp(t *testing.T) {
	e := newOpsEnv(t)
	nan := float32(math.NaN())
	x, err := tensor.FromFloat32(e.cpu, []float32{-40, -30, 0, 19.5, 21, nan, float32(math.Inf(1))}, 7)
	require.NoError(t, err)
	y, err := tensor.Clamp(x, -30, 20)
	require.NoError(t, err)
	got := e.vals(y)
	require.Equal(t, []float32{-30, -30, 0, 19.5, 20, 20}, append(got[:5:5], got[6]))
	require.True(t, math.IsNaN(float64(got[5])), "NaN stays NaN")
	_, err = tensor.Clamp(x, 1, 0)
	requireOpErr(t, err, tensor.ErrRange, "tensor.Clamp", "[1, 0]")
}

func TestResizeNearest(t *testing.T) {
	e := newOpsEnv(t)
	for _, c := range []struct {
		shape []int
		h, w  int
	}{
		{[]int{1, 1, 1, 1}, 3, 2}, {[]int{2, 3, 2, 2}, 3, 3}, {[]int{1, 4, 3, 5}, 5, 9},
		{[]int{1, 2, 7, 7}, 4, 3}, {[]int{1, 2, 5, 6}, 10, 12}, {[]int{2, 1, 3, 3}, 3, 3},
	} {
		data, x := e.rand(c.shape...)
		y, err := tensor.ResizeNearest(x, c.h, c.w)
		require.NoError(t, err)
		require.Equal(t, []int{c.shape[0], c.shape[1], c.h, c.w}, y.Shape())
		tensortest.RequireClose(t, tensortest.ResizeNearest(data, c.shape, c.h, c.w), e.vals(y), 0, 0)
	}
	_, x := e.rand(1, 1, 2, 2)
	_, err := tensor.ResizeNearest(x, 0, 3)
	requireOpErr(t, err, tensor.ErrShape, "tensor.ResizeNearest", "F32[1 1 2 2]")
}

func TestUpsample2x(t *testing.T) {
	e := newOpsEnv(t)
	for _, shape := range [][]int{{1, 1, 1, 1}, {2, 3, 5, 7}, {1, 4, 17, 33}, {1, 320, 16, 16}} {
		data, x := e.rand(shape...)
		y, err := tensor.Upsample2x(x)
		require.NoError(t, err)
		require.Equal(t, []int{shape[0], shape[1], 2 * shape[2], 2 * shape[3]}, y.Shape())
		tensortest.RequireClose(t, tensortest.Upsample2x(data, shape), e.vals(y), 0, 0)
	}
	data := tensortest.Rand(e.rng, 2*3*5*7)
	y, err := tensor.Upsample2x(e.transposed(data, 2, 3, 5, 7))
	require.NoError(t, err)
	tensortest.RequireClose(t, tensortest.Upsample2x(data, []int{2, 3, 5, 7}), e.vals(y), 0, 0)
}

func TestEmbedding(t *testing.T) {
	e := newOpsEnv(t)
	for _, d := range []int{1, 33, 129, 768} {
		for _, dt := range dtypes {
			t.Run(fmt.Sprintf("%d/%v", d, dt), func(t *testing.T) {
				const v = 50
				table, tv := e.typed(dt, tensortest.Rand(e.rng, v*d), v, d)
				ids := []int{0, 49, 3, 3, 17, 0, 48}
				for range 40 {
					ids = append(ids, e.rng.IntN(v))
				}
				y, err := tensor.Embedding(table, ids)
				require.NoError(t, err)
				require.Equal(t, []int{len(ids), d}, y.Shape())
				tensortest.RequireClose(t, tensortest.Embedding(tv, []int{v, d}, ids), e.vals(y), 0, 0)
			})
		}
	}
	t.Run("empty", func(t *testing.T) {
		_, table := e.rand(4, 3)
		y, err := tensor.Embedding(table, nil)
		require.NoError(t, err)
		require.Equal(t, []int{0, 3}, y.Shape())
		y.Release()
	})
}

func TestMoments(t *testing.T) {
	e := newOpsEnv(t)
	shape := []int{4, 7, 33}
	data := tensortest.Rand(e.rng, tensortest.Numel(shape))
	for i := range data[:7*33] {
		data[i] = data[i]*0.01 + 1000 // a large mean with a small spread
	}
	x := e.from(data, shape...)
	for axes := 1; axes <= 3; axes++ {
		wm, wv := tensortest.Moments(data, shape, axes)
		m, v, err := tensor.Moments(x, axes)
		require.NoError(t, err)
		require.Equal(t, shape[:3-axes], m.Shape())
		require.Equal(t, shape[:3-axes], v.Shape())
		tensortest.RequireClose(t, wm, e.vals(m), 1e-6, 1e-6)
		tensortest.RequireClose(t, wv, e.vals(v), 1e-4, 1e-6)
		m, err = tensor.Mean(x, axes)
		require.NoError(t, err)
		tensortest.RequireClose(t, wm, e.vals(m), 1e-6, 1e-6)
		v, err = tensor.Variance(x, axes)
		require.NoError(t, err)
		tensortest.RequireClose(t, wv, e.vals(v), 1e-4, 1e-6)
	}
	t.Run("long rows", func(t *testing.T) {
		data, x := e.rand(2, 100003)
		wm, wv := tensortest.Moments(data, []int{2, 100003}, 1)
		m, v, err := tensor.Moments(x, 1)
		require.NoError(t, err)
		tensortest.RequireClose(t, wm, e.vals(m), 1e-5, 1e-6)
		tensortest.RequireClose(t, wv, e.vals(v), 1e-5, 1e-6)
	})
}

// requireOpErr checks that err wraps target and mentions every one of parts.
func requireOpErr(t *testing.T, err, target error, parts ...string) {
	t.Helper()
	require.ErrorIs(t, err, target)
	for _, p := range parts {
		require.Contains(t, err.Error(), p)
	}
}

func TestOpErrors(t *testing.T) {
	e := newOpsEnv(t)
	_, x23 := e.rand(2, 3)
	_, x4 := e.rand(4)
	_, x2x64 := e.rand(2, 64, 3, 3)
	_, g64 := e.rand(64)
	_, g63 := e.rand(63)

	_, err := tensor.Add(x23, x4)
	requireOpErr(t, err, tensor.ErrShape, "tensor.Add", "F32[2 3]", "F32[4]")
	_, err = tensor.Div(x4, x23)
	requireOpErr(t, err, tensor.ErrShape, "tensor.Div", "F32[2 3]", "F32[4]")

	other := tensor.OtherDevice()
	y, err := tensor.FromFloat32(other, make([]float32, 6), 2, 3)
	require.NoError(t, err)
	defer y.Release()
	_, err = tensor.Mul(x23, y)
	requireOpErr(t, err, tensor.ErrBackend, "tensor.Mul", "F32[2 3]")
	ones, err := tensor.FromFloat32(other, []float32{1, 1, 1}, 3)
	require.NoError(t, err)
	defer ones.Release()
	_, err = tensor.LayerNorm(x23, nil, ones, 1e-5)
	requireOpErr(t, err, tensor.ErrBackend, "tensor.LayerNorm")

	_, err = tensor.GroupNorm(x2x64, g64, g64, 24, 1e-5)
	requireOpErr(t, err, tensor.ErrShape, "tensor.GroupNorm", "24 groups", "F32[2 64 3 3]")
	_, err = tensor.GroupNorm(x2x64, g64, g64, 0, 1e-5)
	requireOpErr(t, err, tensor.ErrShape, "tensor.GroupNorm")
	_, err = tensor.GroupNormSiLU(x2x64, g63, g64, 32, 1e-5)
	requireOpErr(t, err, tensor.ErrShape, "tensor.GroupNormSiLU", "gamma F32[63]", "F32[2 64 3 3]")
	_, err = tensor.GroupNorm(x2x64, g64, nil, 32, 1e-5)
	requireOpErr(t, err, tensor.ErrShape, "tensor.GroupNorm", "beta is nil")
	_, err = tensor.GroupNorm(x4, g64, g64, 32, 1e-5)
	requireOpErr(t, err, tensor.ErrShape, "tensor.GroupNorm", "F32[4]")
	_, err = tensor.LayerNorm(x23, x4, nil, 1e-5)
	requireOpErr(t, err, tensor.ErrShape, "tensor.LayerNorm", "gamma F32[4]", "F32[2 3]")

	scalar := e.from([]float32{1})
	s0, err := scalar.Reshape()
	require.NoError(t, err)
	defer s0.Release()
	_, err = tensor.Softmax(s0)
	requireOpErr(t, err, tensor.ErrShape, "tensor.Softmax", "F32[]")
	_, err = tensor.GEGLU(x23)
	requireOpErr(t, err, tensor.ErrShape, "tensor.GEGLU", "F32[2 3]")
	_, err = tensor.Upsample2x(x23)
	requireOpErr(t, err, tensor.ErrShape, "tensor.Upsample2x", "F32[2 3]")

	_, err = tensor.Concat(1, x23, x4)
	requireOpErr(t, err, tensor.ErrShape, "tensor.Concat", "F32[2 3], F32[4]")
	_, x53 := e.rand(5, 3)
	_, err = tensor.Concat(1, x23, x53)
	requireOpErr(t, err, tensor.ErrShape, "tensor.Concat", "F32[2 3], F32[5 3]", "axis 1")
	_, err = tensor.Concat(2, x23, x23)
	requireOpErr(t, err, tensor.ErrRange, "tensor.Concat", "axis 2")
	_, err = tensor.Concat(0)
	requireOpErr(t, err, tensor.ErrShape, "tensor.Concat")
	h23, _ := e.typed(tensor.F16, make([]float32, 6), 2, 3)
	_, err = tensor.Concat(0, x23, h23)
	requireOpErr(t, err, tensor.ErrDType, "tensor.Concat", "F32[2 3], F16[2 3]")

	_, err = tensor.Embedding(x23, []int{0, 1, 2})
	requireOpErr(t, err, tensor.ErrRange, "tensor.Embedding", "ids[2] = 2", "F32[2 3]")
	_, err = tensor.Embedding(x23, []int{-1})
	requireOpErr(t, err, tensor.ErrRange, "tensor.Embedding", "ids[0] = -1")
	_, err = tensor.Embedding(x4, []int{0})
	requireOpErr(t, err, tensor.ErrShape, "tensor.Embedding", "F32[4]")

	_, _, err = tensor.Moments(x23, 3)
	requireOpErr(t, err, tensor.ErrRange, "tensor.Moments", "F32[2 3]")
	_, _, err = tensor.Moments(x23, 0)
	requireOpErr(t, err, tensor.ErrRange, "tensor.Moments")
	empty, err := tensor.New(e.cpu, tensor.F32, 2, 0)
	require.NoError(t, err)
	_, _, err = tensor.Moments(empty, 1)
	requireOpErr(t, err, tensor.ErrShape, "tensor.Moments", "F32[2 0]")
}

func TestReleasedOrNilPanics(t *testing.T) {
	e := newOpsEnv(t)
	_, x := e.rand(2, 3)
	_, y := e.rand(2, 3)
	y.Release()
	require.PanicsWithValue(t, "tensor.Add: F32[2 3] used after Release", func() { _, _ = tensor.Add(x, y) })
	require.Panics(t, func() { _, _ = tensor.SiLU(nil) })
	require.Panics(t, func() { _, _ = tensor.Concat(0, x, nil) })
}

func TestZeroSized(t *testing.T) {
	e := newOpsEnv(t)
	x, err := tensor.New(e.cpu, tensor.F32, 0, 5)
	require.NoError(t, err)
	defer x.Release()
	for name, f := range map[string]func(*tensor.Tensor) (*tensor.Tensor, error){
		"SiLU": tensor.SiLU, "Softmax": tensor.Softmax,
	} {
		y, err := f(x)
		require.NoError(t, err, name)
		require.Equal(t, []int{0, 5}, y.Shape())
		y.Release()
	}
	y, err := tensor.Add(x, e.from([]float32{1, 2, 3, 4, 5}, 5))
	require.NoError(t, err)
	require.Equal(t, []int{0, 5}, y.Shape())
	y.Release()
	y, err = tensor.LayerNorm(x, nil, nil, 1e-5)
	require.NoError(t, err)
	y.Release()
	require.True(t, slices.Equal([]int{0, 5}, x.Shape()))
}

// Tensors of two CPU backends meet in one operation: both are host memory.
func TestCPUBackendsInteroperate(t *testing.T) {
	a, err := tensor.FromFloat32(tensor.NewCPU(), []float32{1, 2}, 2)
	require.NoError(t, err)
	b, err := tensor.FromFloat32(tensor.NewCPU(), []float32{10, 20}, 2)
	require.NoError(t, err)
	c, err := tensor.Add(a, b)
	require.NoError(t, err)
	got, err := c.Float32s()
	require.NoError(t, err)
	require.Equal(t, []float32{11, 22}, got)
}

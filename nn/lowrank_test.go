package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sdgo/sdgo/tensor"
	"github.com/sdgo/sdgo/tensor/tensortest"
	"github.com/stretchr/testify/require"
)

// factor is a host tensor of a test: values and shape.
type factor struct {
	v     []float32
	shape []int
}

func randFactor(rng *rand.Rand, s float64, shape ...int) factor {
	v := tensortest.Rand(rng, tensortest.Numel(shape))
	for i := range v {
		v[i] *= float32(s)
	}
	return factor{v, shape}
}

func (f factor) tensor(t *testing.T, b tensor.Backend) *tensor.Tensor {
	x, err := tensor.FromFloat32(b, f.v, f.shape...)
	require.NoError(t, err)
	t.Cleanup(x.Release)
	return x
}

// f16 returns f rounded to F16 and the F16 tensor holding it.
func (f factor) f16(t *testing.T, b tensor.Backend) (factor, *tensor.Tensor) {
	x, err := tensor.FromBits(b, tensor.F16, tensortest.F16Bits(f.v), f.shape...)
	require.NoError(t, err)
	t.Cleanup(x.Release)
	return factor{tensortest.RoundF16(f.v), f.shape}, x
}

// testAdapter is an adapter's factors on the host and on the backend.
type testAdapter struct {
	down, up, mid factor // mid.v is nil without a core
	lr            LowRank
}

// mergedWeight returns W + Σ Scale·up·[mid∘]down in float64, [out, in·kh·kw]
// row-major, for a weight of shape ws.
func mergedWeight(w factor, as []testAdapter) []float64 {
	out := w.shape[0]
	inner := len(w.v) / out // in·kh·kw
	m := make([]float64, len(w.v))
	for i, v := range w.v {
		m[i] = float64(v)
	}
	for _, a := range as {
		r := a.down.shape[0]
		// down as [r, in·kh·kw], the Tucker core folded in: the 1x1 down
		// [b, in] under the core [a, b, kh, kw].
		d := make([]float64, r*inner)
		if a.mid.v == nil {
			for i, v := range a.down.v {
				d[i] = float64(v)
			}
		} else {
			in := a.down.shape[1]
			kk := inner / in
			for ra := range r {
				for rb := range r {
					for c := range in {
						for k := range kk {
							d[(ra*in+c)*kk+k] += float64(a.mid.v[(ra*r+rb)*kk+k]) * float64(a.down.v[rb*in+c])
						}
					}
				}
			}
		}
		for o := range out {
			for j := range inner {
				var s float64
				for k := range r {
					s += float64(a.up.v[o*r+k]) * d[k*inner+j]
				}
				m[o*inner+j] += float64(a.lr.Scale) * s
			}
		}
	}
	return m
}

func toF32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// A Linear layer with an F16 weight and adapters computes x·(W + Σ scale·up·down)ᵀ + b,
// the merged formula in float64, on sizes no kernel likes.
func TestLoRALinearMatchesMergedFormula(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	cpu := tensor.NewCPU()
	const rows, in, out = 13, 37, 29
	w, wt := randFactor(rng, 0.2, out, in).f16(t, cpu)
	bias := randFactor(rng, 0.5, out)
	l := &Linear{Weight: wt, Bias: bias.tensor(t, cpu)}
	xs := randFactor(rng, 1, 1, rows, in)
	x := xs.tensor(t, cpu)

	plain, err := tensor.Linear(x, l.Weight, l.Bias)
	require.NoError(t, err)
	defer plain.Release()
	want0 := values(t, plain)

	var as []testAdapter
	for i, c := range []struct {
		rank  int
		scale float32
	}{{3, 0.7}, {5, -1.3}, {1, 2}} {
		a := testAdapter{down: randFactor(rng, 0.3, c.rank, in), up: randFactor(rng, 0.3, out, c.rank)}
		a.lr = LowRank{Down: a.down.tensor(t, cpu), Up: a.up.tensor(t, cpu), Scale: c.scale}
		as = append(as, a)
		lrs := make([]LowRank, 0, i+1)
		for _, a := range as {
			lrs = append(lrs, a.lr)
		}
		require.NoError(t, l.SetAdapters(lrs...))

		y, err := l.Forward(x)
		require.NoError(t, err)
		require.Equal(t, []int{1, rows, out}, y.Shape())
		got := values(t, y)
		y.Release()
		merged := mergedWeight(w, as)
		want := tensortest.Linear(xs.v, rows, in, toF32(merged), out, bias.v)
		// The merged formula is in float64 but for the one rounding of the
		// merged weight to float32 (2^-24 relative).
		tensortest.RequireClose(t, want, got, 1e-5, 1e-5*tensortest.MaxAbs(want))
		require.Error(t, tensortest.Close(want0, got, 1e-3, 1e-3*tensortest.MaxAbs(want0)), "the adapters change the output")
	}

	// Without adapters the layer is what it was, bit for bit.
	require.NoError(t, l.SetAdapters())
	require.Nil(t, l.Adapters)
	y, err := l.Forward(x)
	require.NoError(t, err)
	require.Equal(t, want0, values(t, y))
	y.Release()
}

// A Conv2d layer with an F16 kernel and adapters (plain and with a Tucker
// core) computes conv(x, W + Σ scale·up·[mid∘]down) + b, for 1x1 and 3x3
// kernels with stride 1 and 2, padded on all sides and at the end only.
func TestLoRAConv2dMatchesMergedFormula(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	cpu := tensor.NewCPU()
	const n, in, out, h, wd = 2, 5, 7, 9, 6
	for _, c := range []struct {
		name   string
		kernel int
		p      tensor.Conv2dParams
		tucker bool
	}{
		{"1x1", 1, tensor.Conv2dParams{}, false},
		{"1x1 stride 2", 1, tensor.Conv2dParams{Stride: 2}, false},
		{"3x3", 3, tensor.Conv2dParams{Padding: 1}, false},
		{"3x3 stride 2", 3, tensor.Conv2dParams{Stride: 2, Padding: 1}, false},
		{"3x3 tucker", 3, tensor.Conv2dParams{Padding: 1}, true},
		{"3x3 stride 2 tucker", 3, tensor.Conv2dParams{Stride: 2, Padding: 1}, true},
		{"3x3 stride 2 end padding", 3, tensor.Conv2dParams{Stride: 2, PadEnd: 1}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := c.kernel
			w, wt := randFactor(rng, 0.2, out, in, k, k).f16(t, cpu)
			bias := randFactor(rng, 0.5, out)
			l := &Conv2d{Weight: wt, Bias: bias.tensor(t, cpu), Params: c.p}
			xs := randFactor(rng, 1, n, in, h, wd)
			x := xs.tensor(t, cpu)
			plain, err := tensor.Conv2d(x, l.Weight, l.Bias, c.p)
			require.NoError(t, err)
			defer plain.Release()
			want0 := values(t, plain)

			// A plain adapter, and a second one that is Tucker when the case says.
			const r1, r2 = 3, 2
			a := testAdapter{down: randFactor(rng, 0.3, r1, in, k, k), up: randFactor(rng, 0.3, out, r1, 1, 1)}
			a.lr = LowRank{Down: a.down.tensor(t, cpu), Up: a.up.tensor(t, cpu), Scale: 0.8}
			b := testAdapter{down: randFactor(rng, 0.3, r2, in, k, k), up: randFactor(rng, 0.3, out, r2, 1, 1)}
			if c.tucker {
				b.down = randFactor(rng, 0.3, r2, in, 1, 1)
				b.mid = randFactor(rng, 0.5, r2, r2, k, k)
			}
			b.lr = LowRank{Down: b.down.tensor(t, cpu), Up: b.up.tensor(t, cpu), Scale: -1.5}
			if c.tucker {
				b.lr.Mid = b.mid.tensor(t, cpu)
			}
			require.NoError(t, l.SetAdapters(a.lr, b.lr))

			y, err := l.Forward(x)
			require.NoError(t, err)
			got := values(t, y)
			shape := y.Shape()
			y.Release()
			merged := toF32(mergedWeight(w, []testAdapter{a, b}))
			pad := c.p.Padding
			want, wantShape := tensortest.Conv2dPadded(xs.v, xs.shape, merged, w.shape, bias.v, max(c.p.Stride, 1), pad, pad+c.p.PadEnd)
			require.Equal(t, wantShape, shape)
			tensortest.RequireClose(t, want, got, 1e-5, 1e-5*tensortest.MaxAbs(want))
			require.Error(t, tensortest.Close(want0, got, 1e-3, 1e-3*tensortest.MaxAbs(want0)), "the adapters change the output")

			require.NoError(t, l.SetAdapters())
			y, err = l.Forward(x)
			require.NoError(t, err)
			require.Equal(t, want0, values(t, y), "without adapters the layer is what it was, bit for bit")
			y.Release()
		})
	}
}

// Without adapters, Forward is the plain operation: same bits, no more
// allocations.
func TestLoRANoAdapterPathUnchanged(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	cpu := tensor.NewCPU()
	_, w := randFactor(rng, 0.2, 24, 40).f16(t, cpu)
	l := &Linear{Weight: w, Bias: randFactor(rng, 0.5, 24).tensor(t, cpu)}
	x := randFactor(rng, 1, 3, 40).tensor(t, cpu)
	_, cw := randFactor(rng, 0.2, 6, 4, 3, 3).f16(t, cpu)
	c := &Conv2d{Weight: cw, Bias: randFactor(rng, 0.5, 6).tensor(t, cpu), Params: tensor.Conv2dParams{Padding: 1}}
	cx := randFactor(rng, 1, 1, 4, 8, 8).tensor(t, cpu)

	ref, err := tensor.Linear(x, l.Weight, l.Bias)
	require.NoError(t, err)
	got, err := l.Forward(x)
	require.NoError(t, err)
	require.Equal(t, values(t, ref), values(t, got))
	cref, err := tensor.Conv2d(cx, c.Weight, c.Bias, c.Params)
	require.NoError(t, err)
	cgot, err := c.Forward(cx)
	require.NoError(t, err)
	require.Equal(t, values(t, cref), values(t, cgot))

	run := func(f func() (*tensor.Tensor, error)) float64 {
		return testing.AllocsPerRun(20, func() {
			y, err := f()
			if err != nil {
				panic(err)
			}
			y.Release()
		})
	}
	require.Equal(t, run(func() (*tensor.Tensor, error) { return tensor.Linear(x, l.Weight, l.Bias) }), run(func() (*tensor.Tensor, error) { return l.Forward(x) }))
	require.Equal(t, run(func() (*tensor.Tensor, error) { return tensor.Conv2d(cx, c.Weight, c.Bias, c.Params) }), run(func() (*tensor.Tensor, error) { return c.Forward(cx) }))
}

// Adapters that do not fit are refused with the shapes in the message, and
// the layer keeps the adapters it had.
func TestLoRAAdapterChecks(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	cpu := tensor.NewCPU()
	f := func(shape ...int) *tensor.Tensor { return randFactor(rng, 1, shape...).tensor(t, cpu) }
	l := &Linear{Weight: f(6, 4)}
	good := LowRank{Down: f(2, 4), Up: f(6, 2), Scale: 1}
	require.NoError(t, l.SetAdapters(good))
	for _, c := range []struct {
		a    LowRank
		want string
	}{
		{LowRank{Down: f(2, 5), Up: f(6, 2), Scale: 1}, "down factor F32[2 5]; want [rank 4]"},
		{LowRank{Down: f(2, 4), Up: f(6, 3), Scale: 1}, "up factor F32[6 3]; want [6 2]"},
		{LowRank{Down: f(2, 4), Up: f(6, 2), Mid: f(2, 2, 1, 1), Scale: 1}, "Tucker core"},
		{LowRank{Down: f(2, 4), Scale: 1}, "a down and an up factor"},
		{LowRank{Down: f(2, 4), Up: f(6, 2), Scale: float32(math.Inf(1))}, "not a finite number"},
	} {
		err := l.SetAdapters(good, c.a)
		require.ErrorContains(t, err, "adapter 1: ")
		require.ErrorContains(t, err, c.want)
		require.Len(t, l.Adapters, 1)
		require.Same(t, good.Down, l.Adapters[0].Down, "the layer keeps its adapters")
	}

	cv := &Conv2d{Weight: f(6, 4, 3, 3), Params: tensor.Conv2dParams{Padding: 1}}
	require.NoError(t, cv.CheckAdapter(LowRank{Down: f(2, 4, 3, 3), Up: f(6, 2, 1, 1), Scale: 1}))
	require.NoError(t, cv.CheckAdapter(LowRank{Down: f(2, 4, 1, 1), Mid: f(2, 2, 3, 3), Up: f(6, 2, 1, 1), Scale: 1}))
	for _, c := range []struct {
		a    LowRank
		want string
	}{
		{LowRank{Down: f(2, 4, 1, 1), Up: f(6, 2, 1, 1), Scale: 1}, "want the layer's 3x3 kernel"},
		{LowRank{Down: f(2, 4), Up: f(6, 2), Scale: 1}, "want [rank 4 kh kw]"},
		{LowRank{Down: f(2, 4, 3, 3), Mid: f(2, 2, 3, 3), Up: f(6, 2, 1, 1), Scale: 1}, "with a Tucker core the down factor is 1x1"},
		{LowRank{Down: f(2, 4, 1, 1), Mid: f(2, 3, 3, 3), Up: f(6, 2, 1, 1), Scale: 1}, "Tucker core F32[2 3 3 3]; want [2 2 3 3]"},
		{LowRank{Down: f(2, 4, 3, 3), Up: f(6, 2), Scale: 1}, "up factor F32[6 2]; want [6 2 1 1]"},
	} {
		require.ErrorContains(t, cv.SetAdapters(c.a), c.want)
		require.Nil(t, cv.Adapters)
	}
}

func values(t *testing.T, x *tensor.Tensor) []float32 {
	v, err := x.Float32s()
	require.NoError(t, err)
	return v
}

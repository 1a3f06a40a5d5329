package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdgo/sdgo/tensor/tensortest"
)

// Helpers shared by the matmul, conv and attention tests (prefixed mm to stay
// clear of the other tests of the package).

// mmInput makes a tensor of dtype dt holding x rounded to dt, and returns the
// values it holds (what a reference must be computed on).
func mmInput(t testing.TB, c *CPU, dt DType, x []float32, shape ...int) (*Tensor, []float32) {
	t.Helper()
	switch dt {
	case F16:
		bits := tensortest.F16Bits(x)
		tt, err := FromBits(c, F16, bits, shape...)
		require.NoError(t, err)
		return tt, tensortest.F16Values(bits)
	case BF16:
		bits := tensortest.BF16Bits(x)
		tt, err := FromBits(c, BF16, bits, shape...)
		require.NoError(t, err)
		return tt, tensortest.BF16Values(bits)
	}
	tt, err := FromFloat32(c, x, shape...)
	require.NoError(t, err)
	return tt, x
}

// mmAbs returns |x| element-wise.
func mmAbs(x []float32) []float32 {
	if x == nil {
		return nil
	}
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(math.Abs(float64(v)))
	}
	return out
}

// mmRequireNear checks |got−want| ≤ rel·mag + 1e-6 element-wise, where mag is the
// magnitude of the terms summed into each value (the same computation on |inputs|),
// the natural scale of a dot product's rounding error.
func mmRequireNear(t testing.TB, want, got, mag []float32, rel float64) {
	t.Helper()
	require.Len(t, got, len(want))
	bad, worst := 0, -1
	var worstX float64
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		tol := rel*float64(mag[i]) + 1e-6
		if !(d <= tol) {
			bad++
			if x := d / tol; worst < 0 || x > worstX || math.IsNaN(d) {
				worst, worstX = i, x
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d values off; worst at %d: got %g, want %g (magnitude %g)", bad, len(want), worst, got[worst], want[worst], mag[worst])
	}
}

func mmRead(t testing.TB, x *Tensor) []float32 {
	t.Helper()
	v, err := x.Float32s()
	require.NoError(t, err)
	return v
}

var mmSizes = []int{1, 3, 7, 17, 31, 33, 127, 129}

func TestMatMulSizes(t *testing.T) {
	c := NewCPU()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, m := range mmSizes {
		for _, k := range mmSizes {
			for _, n := range mmSizes {
				a := tensortest.Rand(rng, m*k)
				b := tensortest.Rand(rng, k*n)
				ta, _ := mmInput(t, c, F32, a, m, k)
				tb, _ := mmInput(t, c, F32, b, k, n)
				out, err := MatMul(ta, tb)
				require.NoError(t, err)
				require.Equal(t, []int{m, n}, out.Shape())
				mmRequireNear(t, tensortest.MatMul(a, b, m, k, n), mmRead(t, out),
					tensortest.MatMul(mmAbs(a), mmAbs(b), m, k, n), 1e-5)
				out.Release()
				ta.Release()
				tb.Release()
			}
		}
	}
}

// TestMatMulViews covers transposed operands (read in place), every dtype of
// either operand, batches of 1 and 3 with b batched or shared.
func TestMatMulViews(t *testing.T) {
	c := NewCPU()
	rng := rand.New(rand.NewPCG(3, 4))
	shapes := [][3]int{{1, 1, 1}, {3, 7, 17}, {17, 33, 3}, {31, 129, 7}, {33, 1, 127}, {129, 17, 33}, {7, 127, 1}}
	for _, sz := range shapes {
		m, k, n := sz[0], sz[1], sz[2]
		for _, batch := range []int{1, 3} {
			for _, shared := range []bool{false, true} {
				for _, transA := range []bool{false, true} {
					for _, transB := range []bool{false, true} {
						for _, dts := range [][2]DType{{F32, F32}, {F32, F16}, {F32, BF16}, {F16, F16}, {BF16, F32}} {
							name := fmt.Sprintf("%dx%dx%d/b%d/shared=%v/tA=%v/tB=%v/%v×%v", m, k, n, batch, shared, transA, transB, dts[0], dts[1])
							bb := batch
							if shared {
								bb = 1
							}
							aVals := tensortest.Rand(rng, batch*m*k)
							bVals := tensortest.Rand(rng, bb*k*n)
							// The stored layout is the transpose when the view is to be transposed.
							var ta, tb *Tensor
							var aRef, bRef []float32
							if transA {
								stored := make([]float32, 0, len(aVals))
								for i := range batch {
									stored = append(stored, tensortest.Transpose(aVals[i*m*k:(i+1)*m*k], m, k)...)
								}
								raw, vals := mmInput(t, c, dts[0], stored, batch, k, m)
								var err error
								ta, err = raw.Transpose(1, 2)
								require.NoError(t, err)
								raw.Release()
								aRef = make([]float32, 0, len(vals))
								for i := range batch {
									aRef = append(aRef, tensortest.Transpose(vals[i*m*k:(i+1)*m*k], k, m)...)
								}
							} else {
								ta, aRef = mmInput(t, c, dts[0], aVals, batch, m, k)
							}
							bShape := []int{bb, k, n}
							if shared {
								bShape = []int{k, n}
							}
							if transB {
								stored := make([]float32, 0, len(bVals))
								for i := range bb {
									stored = append(stored, tensortest.Transpose(bVals[i*k*n:(i+1)*k*n], k, n)...)
								}
								sShape := append(append([]int{}, bShape[:len(bShape)-2]...), n, k)
								raw, vals := mmInput(t, c, dts[1], stored, sShape...)
								var err error
								tb, err = raw.Transpose(-1, -2)
								require.NoError(t, err)
								raw.Release()
								bRef = make([]float32, 0, len(vals))
								for i := range bb {
									bRef = append(bRef, tensortest.Transpose(vals[i*k*n:(i+1)*k*n], n, k)...)
								}
							} else {
								tb, bRef = mmInput(t, c, dts[1], bVals, bShape...)
							}
							out, err := MatMul(ta, tb)
							require.NoError(t, err, name)
							require.Equal(t, []int{batch, m, n}, out.Shape(), name)
							want := tensortest.BatchMatMul(aRef, bRef, batch, m, k, n, shared)
							mag := tensortest.BatchMatMul(mmAbs(aRef), mmAbs(bRef), batch, m, k, n, shared)
							t.Run(name, func(t *testing.T) { mmRequireNear(t, want, mmRead(t, out), mag, 1e-5) })
							out.Release()
							ta.Release()
							tb.Release()
						}
					}
				}
			}
		}
	}
}

// TestMatMulBroadcastBatch covers NumPy batch broadcasting that needs the batch
// materialised, a batch-1 a against a batched b, and strided (sliced) operands.
func TestMatMulBroadcastBatch(t *testing.T) {
	c := NewCPU()
	rng := rand.New(rand.NewPCG(5, 6))
	m, k, n := 5, 9, 4
	a := tensortest.Rand(rng, 2*m*k)
	b := tensortest.Rand(rng, 3*k*n)
	ta, _ := mmInput(t, c, F32, a, 2, 1, m, k)
	tb, _ := mmInput(t, c, F32, b, 3, k, n)
	out, err := MatMul(ta, tb)
	require.NoError(t, err)
	require.Equal(t, []int{2, 3, m, n}, out.Shape())
	var want, mag []float32
	for i := range 2 {
		for j := range 3 {
			ai, bj := a[i*m*k:(i+1)*m*k], b[j*k*n:(j+1)*k*n]
			want = append(want, tensortest.MatMul(ai, bj, m, k, n)...)
			mag = append(mag, tensortest.MatMul(mmAbs(ai), mmAbs(bj), m, k, n)...)
		}
	}
	mmRequireNear(t, want, mmRead(t, out), mag, 1e-5)
	out.Release()

	// a [1,m,k] shared by a batched b.
	a1 := a[:m*k]
	t1, _ := mmInput(t, c, F32, a1, 1, m, k)
	out, err = MatMul(t1, tb)
	require.NoError(t, err)
	require.Equal(t, []int{3, m, n}, out.Shape())
	want, mag = nil, nil
	for j := range 3 {
		bj := b[j*k*n : (j+1)*k*n]
		want = append(want, tensortest.MatMul(a1, bj, m, k, n)...)
		mag = append(mag, tensortest.MatMul(mmAbs(a1), mmAbs(bj), m, k, n)...)
	}
	mmRequireNear(t, want, mmRead(t, out), mag, 1e-5)
	out.Release()

	// A column slice of a (row stride > k) and every other column of b (no
	// stride 1: copied).
	wide := tensortest.Rand(rng, m*(k+3))
	tw, _ := mmInput(t, c, F32, wide, m, k+3)
	as, err := tw.Narrow(1, 2, k)
	require.NoError(t, err)
	b2 := tensortest.Rand(rng, k*2*n)
	tb2, _ := mmInput(t, c, F32, b2, k, 2*n)
	bs, err := tb2.Slice(1, 1, 2*n, 2)
	require.NoError(t, err)
	out, err = MatMul(as, bs)
	require.NoError(t, err)
	aRef := tensortest.Strided(wide, []int{m, k}, []int{k + 3, 1}, 2)
	bRef := tensortest.Strided(b2, []int{k, n}, []int{2 * n, 2}, 1)
	mmRequireNear(t, tensortest.MatMul(aRef, bRef, m, k, n), mmRead(t, out),
		tensortest.MatMul(mmAbs(aRef), mmAbs(bRef), m, k, n), 1e-5)
	for _, x := range []*Tensor{out, as, bs, tw, tb2, ta, tb, t1} {
		x.Release()
	}
}

// TestMatMulLargeBatch runs both batch strategies of the CPU backend: products
// large enough to use every core one after another, and many small products
// spread over the cores.
func TestMatMulLargeBatch(t *testing.T) {
	c := NewCPU()
	rng := rand.New(rand.NewPCG(7, 8))
	for _, sz := range [][4]int{{2, 200, 129, 210}, {40, 9, 17, 5}} {
		nb, m, k, n := sz[0], sz[1], sz[2], sz[3]
		a := tensortest.Rand(rng, nb*m*k)
		b := tensortest.Rand(rng, nb*k*n)
		ta, _ := mmInput(t, c, F32, a, nb, m, k)
		tb, _ := mmInput(t, c, F16, b, nb, k, n)
		bRef := tensortest.RoundF16(b)
		out, err := MatMul(ta, tb)
		require.NoError(t, err)
		mmRequireNear(t, tensortest.BatchMatMul(a, bRef, nb, m, k, n, false), mmRead(t, out),
			tensortest.BatchMatMul(mmAbs(a), mmAbs(bRef), nb, m, k, n, false), 1e-5)
		out.Release()
		ta.Release()
		tb.Release()
	}
}

func TestMatMulEmptyInner(t *testing.T) {
	c := NewCPU()
	a, err := New(c, F32, 3, 0)
	require.NoError(t, err)
	b, err := New(c, F32, 0, 2)
	require.NoError(t, err)
	out, err := MatMul(a, b)
	require.NoError(t, err)
	require.Equal(t, make([]float32, 6), mmRead(t, out))
}

func TestLinear(t *testing.T) {
	c := NewCPU()
	rng := rand.New(rand.NewPCG(9, 10))
	for _, tc := range []struct {
		lead    []int
		in, out int
		wdt     DType
		bias    DType // 0: none
	}{
		{[]int{2, 7}, 33, 17, F16, F16},
		{[]int{3}, 129, 31, BF16, F32},
		{[]int{1}, 1, 1, F32, 0},
		{nil, 17, 7, F16, BF16},
		{[]int{2, 3, 5}, 31, 127, F32, F32},
		{[]int{77}, 127, 129, F16, F16},
	} {
		name := fmt.Sprintf("%v×%d->%d/%v/bias=%v", tc.lead, tc.in, tc.out, tc.wdt, tc.bias)
		rows := 1
		for _, d := range tc.lead {
			rows *= d
		}
		x := tensortest.Rand(rng, rows*tc.in)
		tx, _ := mmInput(t, c, F32, x, append(append([]int{}, tc.lead...), tc.in)...)
		tw, wRef := mmInput(t, c, tc.wdt, tensortest.Rand(rng, tc.out*tc.in), tc.out, tc.in)
		var tbias *Tensor
		var biasRef []float32
		if tc.bias != 0 {
			tbias, biasRef = mmInput(t, c, tc.bias, tensortest.Rand(rng, tc.out), tc.out)
		}
		out, err := Linear(tx, tw, tbias)
		require.NoError(t, err, name)
		require.Equal(t, append(append([]int{}, tc.lead...), tc.out), out.Shape(), name)
		mag := tensortest.Linear(mmAbs(x), rows, tc.in, mmAbs(wRef), tc.out, mmAbs(biasRef))
		t.Run(name, func(t *testing.T) {
			mmRequireNear(t, tensortest.Linear(x, rows, tc.in, wRef, tc.out, biasRef), mmRead(t, out), mag, 1e-5)
		})
		out.Release()
		tx.Release()
		tw.Release()
		tbias.Release()
	}
}

// TestLinearViews feeds Linear a transposed weight view (a plain operand then),
// and an input whose leading dimensions do not merge (permuted: copied).
func TestLinearViews(t *testing.T) {
	c := NewCPU()
	rng := rand.New(rand.NewPCG(11, 12))
	in, nOut := 9, 5
	wStored := tensortest.Rand(rng, in*nOut) // [in, out]
	tws, _ := mmInput(t, c, F32, wStored, in, nOut)
	tw, err := tws.Transpose(0, 1) // [out, in] view
	require.NoError(t, err)
	wRef := tensortest.Transpose(wStored, in, nOut)
	x := tensortest.Rand(rng, 4*3*in)
	txs, _ := mmInput(t, c, F32, x, 4, 3, in)
	tx, err := txs.Permute(1, 0, 2) // [3,4,in], rows not evenly spaced
	require.NoError(t, err)
	xRef, _ := tensortest.Permute(x, []int{4, 3, in}, []int{1, 0, 2})
	out, err := Linear(tx, tw, nil)
	require.NoError(t, err)
	require.Equal(t, []int{3, 4, nOut}, out.Shape())
	mmRequireNear(t, tensortest.Linear(xRef, 12, in, wRef, nOut, nil), mmRead(t, out),
		tensortest.Linear(mmAbs(xRef), 12, in, mmAbs(wRef), nOut, nil), 1e-5)
	for _, x := range []*Tensor{out, tx, txs, tw, tws} {
		x.Release()
	}
}

func TestMatMulBadShapes(t *testing.T) {
	c := NewCPU()
	mk := func(shape ...int) *Tensor {
		x, err := Zeros(c, F32, shape...)
		require.NoError(t, err)
		return x
	}
	for _, tc := range []struct {
		name string
		run  func() error
		msg  []string
	}{
		{"inner", func() error { _, err := MatMul(mk(2, 3), mk(4, 5)); return err },
			[]string{"tensor.MatMul", "F32[2 3]", "F32[4 5]", "inner dimensions 3 and 4"}},
		{"rank", func() error { _, err := MatMul(mk(3), mk(3, 2)); return err },
			[]string{"tensor.MatMul", "F32[3]", "F32[3 2]"}},
		{"batch", func() error { _, err := MatMul(mk(2, 3, 4), mk(3, 4, 5)); return err },
			[]string{"tensor.MatMul", "F32[2 3 4]", "F32[3 4 5]", "batch"}},
		{"linear in", func() error { _, err := Linear(mk(2, 3), mk(4, 5), nil); return err },
			[]string{"tensor.Linear", "F32[2 3]", "F32[4 5]"}},
		{"linear weight rank", func() error { _, err := Linear(mk(2, 3), mk(3), nil); return err },
			[]string{"tensor.Linear", "F32[3]"}},
		{"linear bias", func() error { _, err := Linear(mk(2, 3), mk(4, 3), mk(3)); return err },
			[]string{"tensor.Linear", "bias", "F32[3]"}},
	} {
		err := tc.run()
		require.ErrorIs(t, err, ErrShape, tc.name)
		for _, s := range tc.msg {
			require.Contains(t, err.Error(), s, tc.name)
		}
	}
	_, err := MatMul(mk(2, 3), func() *Tensor {
		x, err := New(OtherDevice(), F32, 3, 2)
		require.NoError(t, err)
		return x
	}())
	require.ErrorIs(t, err, ErrBackend)
	require.True(t, strings.HasPrefix(err.Error(), "tensor.MatMul"), err.Error())
}

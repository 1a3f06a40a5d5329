package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdgo/sdgo/tensor/tensortest"
)

// attnInput makes a [b,h,l,d] operand of dtype dt. With blhd it is stored as
// [b,l,h,d] (a projection's output) and returned as the permuted view. It also
// returns the values (rounded to dt) in [b,h,l,d] order.
func attnInput(t *testing.T, c *CPU, rng *rand.Rand, dt DType, blhd bool, b, h, l, d int) (*Tensor, []float32) {
	t.Helper()
	x := tensortest.Rand(rng, b*h*l*d)
	if !blhd {
		return mmInput(t, c, dt, x, b, h, l, d)
	}
	raw, vals := mmInput(t, c, dt, x, b, l, h, d)
	defer raw.Release()
	v, err := raw.Permute(0, 2, 1, 3)
	require.NoError(t, err)
	ref, _ := tensortest.Permute(vals, []int{b, l, h, d}, []int{0, 2, 1, 3})
	return v, ref
}

func TestAttention(t *testing.T) {
	c := NewCPU()
	rng := rand.New(rand.NewPCG(31, 32))
	sizes := [][6]int{ // b, h, lq, lk, d, dv
		{1, 1, 1, 1, 1, 1},
		{2, 3, 17, 33, 7, 5},
		{1, 2, 65, 300, 40, 40},
		{1, 1, 130, 257, 8, 16},
		{2, 1, 5, 1, 3, 2},
		{1, 2, 150, 77, 40, 40},
		{1, 1, 40, 9, 4, 4}, // causal with Lq > Lk
	}
	params := []AttentionParams{
		{}, {BlockQ: 1, BlockK: 1}, {BlockQ: 7, BlockK: 5}, {BlockQ: 64, BlockK: 256}, {BlockQ: 1000, BlockK: 1000},
	}
	for i, sz := range sizes {
		b, h, lq, lk, d, dv := sz[0], sz[1], sz[2], sz[3], sz[4], sz[5]
		for _, blhd := range []bool{false, true} {
			dt := []DType{F32, F32, F16}[i%3]
			q, qv := attnInput(t, c, rng, dt, blhd, b, h, lq, d)
			k, kv := attnInput(t, c, rng, dt, blhd, b, h, lk, d)
			v, vv := attnInput(t, c, rng, F32, blhd, b, h, lk, dv)
			scale := 1 / math.Sqrt(float64(d))
			for _, causal := range []bool{false, true} {
				ref := tensortest.Attention
				if causal {
					ref = tensortest.CausalAttention
				}
				want := ref(qv, kv, vv, b, h, lq, lk, d, dv, scale)
				mag := ref(qv, kv, mmAbs(vv), b, h, lq, lk, d, dv, scale)
				for _, mode := range []AttentionMode{AttentionFlash, AttentionSliced} {
					for _, p := range params {
						p.Mode, p.Causal = mode, causal
						name := fmt.Sprintf("%v/blhd=%v/%v/%+v", sz, blhd, dt, p)
						out, err := Attention(q, k, v, p)
						require.NoError(t, err, name)
						require.Equal(t, []int{b, h, lq, dv}, out.Shape(), name)
						t.Run(name, func(t *testing.T) { mmRequireNear(t, want, mmRead(t, out), mag, 1e-5) })
						out.Release()
					}
				}
			}
			q.Release()
			k.Release()
			v.Release()
		}
	}
}

// TestAttentionScale checks an explicit scale and the default 1/√D.
func TestAttentionScale(t *testing.T) {
	c := NewCPU()
	rng := rand.New(rand.NewPCG(33, 34))
	b, h, lq, lk, d, dv := 1, 2, 9, 13, 6, 3
	q, qv := attnInput(t, c, rng, F32, false, b, h, lq, d)
	k, kv := attnInput(t, c, rng, F32, false, b, h, lk, d)
	v, vv := attnInput(t, c, rng, F32, false, b, h, lk, dv)
	for _, scale := range []float32{0, 0.7} {
		s := float64(scale)
		if s == 0 {
			s = 1 / math.Sqrt(float64(d))
		}
		out, err := Attention(q, k, v, AttentionParams{Scale: scale})
		require.NoError(t, err)
		mmRequireNear(t, tensortest.Attention(qv, kv, vv, b, h, lq, lk, d, dv, s), mmRead(t, out),
			tensortest.Attention(qv, kv, mmAbs(vv), b, h, lq, lk, d, dv, s), 1e-5)
		out.Release()
	}
}

// TestAttentionInto writes the heads straight into a [B,L,H,Dv] buffer, and reads
// a q whose last stride is not 1 (copied first).
func TestAttentionInto(t *testing.T) {
	c := NewCPU()
	rng := rand.New(rand.NewPCG(35, 36))
	b, h, lq, lk, d, dv := 2, 3, 19, 23, 5, 4
	qt := tensortest.Rand(rng, b*h*d*lq) // stored [b,h,d,lq]
	qRaw, _ := mmInput(t, c, F32, qt, b, h, d, lq)
	q, err := qRaw.Transpose(2, 3)
	require.NoError(t, err)
	qv, _ := tensortest.Permute(qt, []int{b, h, d, lq}, []int{0, 1, 3, 2})
	k, kv := attnInput(t, c, rng, F32, true, b, h, lk, d)
	v, vv := attnInput(t, c, rng, BF16, true, b, h, lk, dv)
	for _, mode := range []AttentionMode{AttentionFlash, AttentionSliced} {
		buf, err := Full(c, F32, float32(math.NaN()), b, lq, h, dv)
		require.NoError(t, err)
		dst, err := buf.Permute(0, 2, 1, 3)
		require.NoError(t, err)
		require.NoError(t, AttentionInto(dst, q, k, v, AttentionParams{Mode: mode, BlockQ: 4, BlockK: 6}))
		want := tensortest.Attention(qv, kv, vv, b, h, lq, lk, d, dv, 1/math.Sqrt(float64(d)))
		mag := tensortest.Attention(qv, kv, mmAbs(vv), b, h, lq, lk, d, dv, 1/math.Sqrt(float64(d)))
		want, _ = tensortest.Permute(want, []int{b, h, lq, dv}, []int{0, 2, 1, 3})
		mag, _ = tensortest.Permute(mag, []int{b, h, lq, dv}, []int{0, 2, 1, 3})
		mmRequireNear(t, want, mmRead(t, buf), mag, 1e-5)
		dst.Release()
		buf.Release()
	}
	for _, x := range []*Tensor{q, qRaw, k, v} {
		x.Release()
	}
}

func TestAttentionBadShapes(t *testing.T) {
	c := NewCPU()
	mk := func(dt DType, shape ...int) *Tensor {
		x, err := Zeros(c, dt, shape...)
		require.NoError(t, err)
		return x
	}
	q := mk(F32, 2, 3, 5, 8)
	for _, tc := range []struct {
		name    string
		q, k, v *Tensor
		msg     []string
	}{
		{"rank", mk(F32, 3, 5, 8), mk(F32, 2, 3, 5, 8), mk(F32, 2, 3, 5, 8), []string{"tensor.Attention", "F32[3 5 8]"}},
		{"head size", q, mk(F32, 2, 3, 5, 7), mk(F32, 2, 3, 5, 8), []string{"tensor.Attention", "F32[2 3 5 8]", "F32[2 3 5 7]"}},
		{"heads", q, mk(F32, 2, 2, 5, 8), mk(F32, 2, 2, 5, 8), []string{"tensor.Attention", "F32[2 2 5 8]"}},
		{"kv length", q, mk(F32, 2, 3, 6, 8), mk(F32, 2, 3, 5, 8), []string{"tensor.Attention", "F32[2 3 6 8]", "F32[2 3 5 8]"}},
		{"no keys", q, mk(F32, 2, 3, 0, 8), mk(F32, 2, 3, 0, 8), []string{"tensor.Attention", "no keys"}},
	} {
		_, err := Attention(tc.q, tc.k, tc.v, AttentionParams{})
		require.ErrorIs(t, err, ErrShape, tc.name)
		for _, s := range tc.msg {
			require.Contains(t, err.Error(), s, tc.name)
		}
	}
	k, v := mk(F32, 2, 3, 5, 8), mk(F32, 2, 3, 5, 4)
	_, err := Attention(q, k, v, AttentionParams{BlockQ: -1})
	require.ErrorIs(t, err, ErrRange)
	err = AttentionInto(mk(F32, 2, 3, 5, 8), q, k, v, AttentionParams{})
	require.ErrorIs(t, err, ErrShape)
	require.Contains(t, err.Error(), "tensor.AttentionInto")
	err = AttentionInto(mk(F16, 2, 3, 5, 4), q, k, v, AttentionParams{})
	require.ErrorIs(t, err, ErrDType)
	_, err = Attention(q, k, func() *Tensor {
		x, err := New(OtherDevice(), F32, 2, 3, 5, 4)
		require.NoError(t, err)
		return x
	}(), AttentionParams{})
	require.ErrorIs(t, err, ErrBackend)
}

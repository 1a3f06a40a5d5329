package tensor

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdgo/sdgo/tensor/tensortest"
)

type convCase struct {
	n, c, h, w, o, kh, kw int
	stride, pad, padEnd   int
	wdt, bdt              DType // bdt 0: no bias
}

func (tc convCase) String() string {
	return fmt.Sprintf("x%dx%dx%dx%d/w%dx%dx%d/s%d/p%d+%d/%v/bias=%v",
		tc.n, tc.c, tc.h, tc.w, tc.o, tc.kh, tc.kw, tc.stride, tc.pad, tc.padEnd, tc.wdt, tc.bdt)
}

func runConvCase(t *testing.T, c *CPU, rng *rand.Rand, tc convCase) {
	t.Helper()
	xShape := []int{tc.n, tc.c, tc.h, tc.w}
	wShape := []int{tc.o, tc.c, tc.kh, tc.kw}
	x := tensortest.Rand(rng, tensortest.Numel(xShape))
	tx, _ := mmInput(t, c, F32, x, xShape...)
	defer tx.Release()
	tw, wRef := mmInput(t, c, tc.wdt, tensortest.Rand(rng, tensortest.Numel(wShape)), wShape...)
	defer tw.Release()
	var tb *Tensor
	var bRef []float32
	if tc.bdt != 0 {
		tb, bRef = mmInput(t, c, tc.bdt, tensortest.Rand(rng, tc.o), tc.o)
		defer tb.Release()
	}
	out, err := Conv2d(tx, tw, tb, Conv2dParams{Stride: tc.stride, Padding: tc.pad, PadEnd: tc.padEnd})
	require.NoError(t, err, tc.String())
	defer out.Release()
	stride := max(tc.stride, 1)
	want, shape := tensortest.Conv2dPadded(x, xShape, wRef, wShape, bRef, stride, tc.pad, tc.pad+tc.padEnd)
	mag, _ := tensortest.Conv2dPadded(mmAbs(x), xShape, mmAbs(wRef), wShape, mmAbs(bRef), stride, tc.pad, tc.pad+tc.padEnd)
	require.Equal(t, shape, out.Shape(), tc.String())
	mmRequireNear(t, want, mmRead(t, out), mag, 1e-5)
}

func TestConv2d(t *testing.T) {
	c := NewCPU()
	rng := rand.New(rand.NewPCG(21, 22))
	var cases []convCase
	for _, hw := range [][2]int{{7, 9}, {1, 1}, {8, 8}, {5, 3}} {
		for _, k := range [][2]int{{1, 1}, {3, 3}, {2, 3}} {
			for _, stride := range []int{0, 1, 2} {
				for _, pad := range []int{0, 1} {
					if hw[0]+2*pad < k[0] || hw[1]+2*pad < k[1] {
						continue
					}
					cases = append(cases, convCase{
						n: 1 + len(cases)%2, c: []int{1, 3, 5}[len(cases)%3], h: hw[0], w: hw[1],
						o: []int{1, 4, 7}[len(cases)/2%3], kh: k[0], kw: k[1], stride: stride, pad: pad,
						wdt: []DType{F32, F16, BF16}[len(cases)%3], bdt: []DType{0, F32, F16}[len(cases)/3%3],
					})
				}
			}
		}
	}
	// VAE Downsample2D: pad (0,1,0,1), stride 2, 3x3.
	cases = append(cases,
		convCase{n: 1, c: 3, h: 8, w: 8, o: 5, kh: 3, kw: 3, stride: 2, padEnd: 1, wdt: F16, bdt: F16},
		convCase{n: 2, c: 2, h: 7, w: 9, o: 3, kh: 3, kw: 3, stride: 2, padEnd: 1, wdt: F32, bdt: F32},
	)
	for _, tc := range cases {
		t.Run(tc.String(), func(t *testing.T) { runConvCase(t, c, rng, tc) })
	}
}

// TestConv2dChunks covers convolutions whose im2col buffer is split into chunks,
// boundaries falling inside output rows, and the batched 1x1 GEMM path.
func TestConv2dChunks(t *testing.T) {
	c := NewCPU()
	rng := rand.New(rand.NewPCG(23, 24))
	for _, tc := range []convCase{
		{n: 1, c: 128, h: 65, w: 67, o: 3, kh: 3, kw: 3, stride: 1, pad: 1, wdt: F16, bdt: F32},
		{n: 2, c: 160, h: 31, w: 45, o: 2, kh: 3, kw: 3, stride: 2, pad: 1, wdt: F32, bdt: 0},
		{n: 3, c: 33, h: 17, w: 19, o: 31, kh: 1, kw: 1, stride: 1, wdt: BF16, bdt: BF16},
		{n: 1, c: 64, h: 48, w: 64, o: 65, kh: 1, kw: 1, stride: 1, wdt: F16, bdt: F16},
	} {
		t.Run(tc.String(), func(t *testing.T) { runConvCase(t, c, rng, tc) })
	}
	require.Greater(t, (65*67+15)/16*16, conv2dChunk(65*67, 128*9), "the first case must take more than one chunk")
}

func TestConv2dBadShapes(t *testing.T) {
	c := NewCPU()
	mk := func(shape ...int) *Tensor {
		x, err := Zeros(c, F32, shape...)
		require.NoError(t, err)
		return x
	}
	for _, tc := range []struct {
		name string
		x, w *Tensor
		b    *Tensor
		p    Conv2dParams
		msg  []string
	}{
		{"channels", mk(1, 3, 8, 8), mk(4, 2, 3, 3), nil, Conv2dParams{}, []string{"tensor.Conv2d", "F32[1 3 8 8]", "F32[4 2 3 3]", "channels"}},
		{"rank", mk(3, 8, 8), mk(4, 3, 3, 3), nil, Conv2dParams{}, []string{"tensor.Conv2d", "F32[3 8 8]"}},
		{"kernel too large", mk(1, 3, 2, 2), mk(4, 3, 3, 3), nil, Conv2dParams{}, []string{"tensor.Conv2d", "F32[1 3 2 2]", "larger"}},
		{"bias", mk(1, 3, 8, 8), mk(4, 3, 3, 3), mk(3), Conv2dParams{}, []string{"tensor.Conv2d", "bias", "F32[3]"}},
	} {
		_, err := Conv2d(tc.x, tc.w, tc.b, tc.p)
		require.ErrorIs(t, err, ErrShape, tc.name)
		for _, s := range tc.msg {
			require.Contains(t, err.Error(), s, tc.name)
		}
	}
	_, err := Conv2d(mk(1, 3, 8, 8), mk(4, 3, 3, 3), nil, Conv2dParams{Padding: -1})
	require.ErrorIs(t, err, ErrRange)
}

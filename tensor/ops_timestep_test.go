package tensor_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdgo/sdgo/tensor"
)

// hostTimestepEmbedding is the embedding as nn.SinusoidalEmbedding computed it
// on the host before it became a backend operation, kept verbatim as the
// reference the CPU backend must reproduce bit for bit (the UNet fixtures were
// matched with it).
func hostTimestepEmbedding(t []float32, dim int, flipSinToCos bool, freqShift float64) []float32 {
	half := dim / 2
	freqs := make([]float32, half)
	lnMax := float32(-math.Log(10000))
	div := float32(float64(half) - freqShift)
	for i := range freqs {
		e := lnMax * float32(i) / div
		freqs[i] = float32(math.Exp(float64(e)))
	}
	out := make([]float32, len(t)*dim)
	for n, ts := range t {
		row := out[n*dim : (n+1)*dim]
		sin, cos := row[:half], row[half:2*half]
		if flipSinToCos {
			sin, cos = cos, sin
		}
		for i, f := range freqs {
			arg := float64(ts * f)
			sin[i] = float32(math.Sin(arg))
			cos[i] = float32(math.Cos(arg))
		}
	}
	return out
}

// TestTimestepEmbeddingMatchesHost checks the CPU backend against the former
// host computation bit for bit, on every timestep of a 1000-step schedule, half
// steps, fractions and random values, for the dims the UNets use and odd ones.
func TestTimestepEmbeddingMatchesHost(t *testing.T) {
	cpu := tensor.NewCPU()
	r := rand.New(rand.NewPCG(3, 5))
	var steps []float32
	for i := range 1000 {
		steps = append(steps, float32(i), float32(i)+0.5)
	}
	for range 200 {
		steps = append(steps, 1000*r.Float32(), r.Float32())
	}
	steps = append(steps, 0.25, 2.5e-7, 1024, 1e6, -3)
	for _, dim := range []int{2, 3, 7, 256, 320, 1280} {
		for _, flip := range []bool{false, true} {
			for _, shift := range []float64{0, 1} {
				if dim/2 == 1 && shift == 1 {
					continue
				}
				name := fmt.Sprintf("dim %d flip %v shift %g", dim, flip, shift)
				ts, err := tensor.FromFloat32(cpu, steps, len(steps))
				require.NoError(t, err)
				x, err := tensor.TimestepEmbedding(ts, dim, tensor.TimestepEmbeddingParams{FlipSinToCos: flip, FreqShift: shift})
				ts.Release()
				require.NoError(t, err, name)
				require.Equal(t, []int{len(steps), dim}, x.Shape(), name)
				got, err := x.Float32s()
				require.NoError(t, err)
				x.Release()
				want := hostTimestepEmbedding(steps, dim, flip, shift)
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s: element %d (timestep %g, column %d) is %g, the host computed %g",
							name, i, steps[i/dim], i%dim, got[i], want[i])
					}
				}
			}
		}
	}
}

// TestTimestepEmbeddingValues checks what the embedding is: at t = 0 the sines
// are 0 and the cosines 1, the order flips, an odd dim ends with a zero column,
// and the first frequency is 1.
func TestTimestepEmbeddingValues(t *testing.T) {
	cpu := tensor.NewCPU()
	ts, err := tensor.FromFloat32(cpu, []float32{0, 2}, 2)
	require.NoError(t, err)
	defer ts.Release()
	for _, flip := range []bool{false, true} {
		x, err := tensor.TimestepEmbedding(ts, 7, tensor.TimestepEmbeddingParams{FlipSinToCos: flip, FreqShift: 1})
		require.NoError(t, err)
		v, err := x.Float32s()
		require.NoError(t, err)
		x.Release()
		sin, cos := []float32{0, 0, 0}, []float32{1, 1, 1}
		first := float32(math.Sin(2))
		row := append(append([]float32{}, sin...), cos...)
		if flip {
			row = append(append([]float32{}, cos...), sin...)
		}
		require.Equal(t, append(row, 0), v[:7], "t = 0, flip %v", flip)
		if flip {
			require.Equal(t, float32(math.Cos(2)), v[7], "flip: t = 2, column 0")
			require.Equal(t, first, v[10], "flip: t = 2, column 3")
		} else {
			require.Equal(t, first, v[7], "t = 2, column 0")
		}
		require.Equal(t, float32(0), v[13], "odd dim: the last column")
	}
	freqs := tensor.TimestepEmbeddingParams{FreqShift: 1}.Frequencies(320)
	require.Len(t, freqs, 160)
	require.Equal(t, float32(1), freqs[0])
	require.InDelta(t, math.Exp(-math.Log(10000)), freqs[159], 1e-9, "the last frequency with shift 1 is 1/10000")
}

func TestTimestepEmbeddingErrors(t *testing.T) {
	cpu := tensor.NewCPU()
	ts, err := tensor.FromFloat32(cpu, []float32{1, 2}, 2)
	require.NoError(t, err)
	defer ts.Release()
	_, err = tensor.TimestepEmbedding(ts, 1, tensor.TimestepEmbeddingParams{})
	require.ErrorIs(t, err, tensor.ErrRange)
	require.ErrorContains(t, err, "1 features (want at least 2)")
	_, err = tensor.TimestepEmbedding(ts, 2, tensor.TimestepEmbeddingParams{FreqShift: 1})
	require.ErrorIs(t, err, tensor.ErrRange)
	require.ErrorContains(t, err, "divisor 1 − 1 is 0")
	m, err := tensor.FromFloat32(cpu, []float32{1, 2}, 2, 1)
	require.NoError(t, err)
	defer m.Release()
	_, err = tensor.TimestepEmbedding(m, 4, tensor.TimestepEmbeddingParams{})
	require.ErrorIs(t, err, tensor.ErrShape)
	require.ErrorContains(t, err, "(want [N])")
}

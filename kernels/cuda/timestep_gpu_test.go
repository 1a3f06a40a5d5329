package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sdgo/sdgo/tensor"
)

// TestGPUTimestepEmbedding checks that the CUDA timestep embedding is the CPU's
// bit for bit: every timestep of a 1000-step schedule and the half steps
// between them, random and tiny fractions, SDXL's time ids, for one and many
// timesteps, even and odd dims from 2 to 1280, both orders and both frequency
// shifts; and that a strided F16 timestep vector is widened first.
func TestGPUTimestepEmbedding(t *testing.T) {
	g := gpu(t)
	r := rand.New(rand.NewPCG(11, 13))
	var all []float32
	for i := range 1000 {
		all = append(all, float32(i), float32(i)+0.5)
	}
	for range 100 {
		all = append(all, 1000*r.Float32(), r.Float32())
	}
	all = append(all, 0.25, 2.5e-7, 1024, 1152, 896, 64, 1e6, -3)
	sets := [][]float32{{999.5}, {0, 999, 0.25}, all}
	mismatched, total := 0, 0
	for _, steps := range sets {
		for _, dim := range []int{2, 3, 7, 256, 320, 1280} {
			for _, flip := range []bool{false, true} {
				for _, shift := range []float64{0, 1} {
					if dim/2 == 1 && shift == 1 {
						continue
					}
					name := fmt.Sprintf("N=%d dim=%d flip=%v shift=%g", len(steps), dim, flip, shift)
					p := tensor.TimestepEmbeddingParams{FlipSinToCos: flip, FreqShift: shift}
					ct, dt := pair(t, g, steps, len(steps))
					want := mustT(t)(tensor.TimestepEmbedding(ct, dim, p))
					got := mustT(t)(tensor.TimestepEmbedding(dt, dim, p))
					mismatched += sameBits(t, name, got, want)
					total += want.Numel()
					for _, x := range []*tensor.Tensor{ct, dt, want, got} {
						x.Release()
					}
				}
			}
		}
	}
	t.Logf("%d values compared, %d differ", total, mismatched)

	// Timesteps as an F16 view with a stride of 2 at an offset.
	half := []float32{5, 999, 5, 0.5, 5, 261, 5}
	c0, d0 := pair(t, g, half, len(half))
	c16, d16 := to(t, tensor.F16, c0, d0)
	cs := mustT(t)(c16.Slice(0, 1, 7, 2))
	ds := mustT(t)(d16.Slice(0, 1, 7, 2))
	p := tensor.TimestepEmbeddingParams{FlipSinToCos: true, FreqShift: 1}
	want := mustT(t)(tensor.TimestepEmbedding(cs, 9, p))
	got := mustT(t)(tensor.TimestepEmbedding(ds, 9, p))
	sameBits(t, "F16 strided timesteps", got, want)
	for _, x := range []*tensor.Tensor{c0, d0, c16, d16, cs, ds, want, got} {
		x.Release()
	}
}

// sameBits reports the elements of got (GPU) whose bits differ from want's
// (CPU; NaN matches NaN) and returns how many do.
func sameBits(t *testing.T, name string, got, want *tensor.Tensor) int {
	t.Helper()
	if fmt.Sprint(got.Shape()) != fmt.Sprint(want.Shape()) || got.DType() != want.DType() {
		t.Errorf("%s: got %v, want %v", name, got, want)
		return want.Numel()
	}
	g, err := got.Float32s()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	w, err := want.Float32s()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	bad := 0
	for i := range w {
		if math.Float32bits(g[i]) == math.Float32bits(w[i]) || (g[i] != g[i] && w[i] != w[i]) {
			continue
		}
		if bad < 5 {
			dim := want.Shape()[1]
			t.Errorf("%s: element %d (row %d, column %d) is %v (%#08x), the CPU's %v (%#08x)",
				name, i, i/dim, i%dim, g[i], math.Float32bits(g[i]), w[i], math.Float32bits(w[i]))
		}
		bad++
	}
	if bad > 5 {
		t.Errorf("%s: %d of %d elements differ", name, bad, len(w))
	}
	return bad
}

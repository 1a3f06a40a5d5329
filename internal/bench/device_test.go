package bench

import (
	"math"
	"os"
	"testing"

	// The comparison runs on $SDGO_TEST_DEVICE; the CUDA backend registers itself.
	"github.com/sdgo/sdgo/kernels/cuda"
	"github.com/sdgo/sdgo/tensor"
)

// The device named by $SDGO_TEST_DEVICE computes what the CPU computes at the
// real sizes, with the synthetic weights: SD 1.5's UNet at 64x64 latents,
// batch 2, its VAE decode at 512x512 and CLIP-L. Skipped unless the variable
// is set (a CPU-only run would compare the CPU with itself).
func TestDeviceMatchesCPUAtFullSize(t *testing.T) {
	dev := os.Getenv("SDGO_TEST_DEVICE")
	if dev == "" || dev == "cpu" {
		t.Skip("SDGO_TEST_DEVICE names no device")
	}
	// Each precision the device offers, with the agreement it must reach:
	// FP32 on both sides agrees to float32 rounding across hundreds of layers;
	// FP16/BF16 tensor-core products (operands rounded to 11 or 8 bits) meet
	// the bar of 0.999 cosine similarity.
	type mode struct {
		name    string
		set     func(tensor.Backend) error
		cos     float64
		maxDiff float64
	}
	modes := []mode{{"fp32", func(tensor.Backend) error { return nil }, 0.99999, 1e-3}}
	for _, p := range []cuda.Precision{cuda.FP16, cuda.BF16} {
		modes = append(modes, mode{p.String(), func(b tensor.Backend) error {
			if cb, ok := b.(*cuda.Backend); ok {
				return cb.SetPrecision(p)
			}
			return nil
		}, 0.999, 0.1})
	}
	for _, m := range modes {
		for _, s := range []Spec{
			{Arch: SD15, Component: "text", Size: 512, Batch: 2},
			{Arch: SD15, Component: "unet", Size: 512, Batch: 2},
			{Arch: SD15, Component: "vae-decode", Size: 512, Batch: 1},
		} {
			t.Run(m.name+"/"+s.Component, func(t *testing.T) { compareDevice(t, s, dev, m.set, m.cos, m.maxDiff) })
		}
	}
}

// compareDevice runs s on the CPU and on dev (set up by set) and requires
// their outputs to agree to cosine similarity minCos and largest difference
// maxDiff relative to the CPU's largest magnitude.
func compareDevice(t *testing.T, s Spec, dev string, set func(tensor.Backend) error, minCos, maxDiff float64) {
	var outs [2][]float32
	for i, d := range []string{"cpu", dev} {
		s.Device = d
		s.Open = func(name string) (tensor.Backend, error) {
			b, err := tensor.OpenDevice(name)
			if err == nil && d != "cpu" {
				err = set(b)
			}
			return b, err
		}
		b, err := build(s)
		if err != nil {
			t.Fatal(err)
		}
		y, err := b.output()
		if err != nil {
			b.release()
			t.Fatal(err)
		}
		outs[i], err = y.Float32s()
		y.Release()
		b.release()
		if err != nil {
			t.Fatal(err)
		}
	}
	cos, rel := compare(outs[0], outs[1])
	t.Logf("%s on %s vs cpu: cosine similarity %.7f, max |difference| / max |cpu| %.2e", s.Component, dev, cos, rel)
	if cos < minCos || rel > maxDiff {
		t.Errorf("%s: cosine %.7f (want >= %g), relative difference %.2e (want <= %g)", s.Component, cos, minCos, rel, maxDiff)
	}
}

// compare returns the cosine similarity of a and b and their largest
// difference relative to a's largest magnitude.
func compare(a, b []float32) (cos, rel float64) {
	if len(a) != len(b) {
		return 0, math.Inf(1)
	}
	var ab, aa, bb, maxA, maxD float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		ab, aa, bb = ab+x*y, aa+x*x, bb+y*y
		maxA = max(maxA, math.Abs(x))
		maxD = max(maxD, math.Abs(x-y))
	}
	return ab / math.Sqrt(aa*bb), maxD / maxA
}

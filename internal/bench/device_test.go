package bench

import (
	"math"
	"os"
	"testing"

	// The comparison runs on $SDGO_TEST_DEVICE; the CUDA backend registers itself.
	_ "github.com/sdgo/sdgo/kernels/cuda"
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
	for _, s := range []Spec{
		{Arch: SD15, Component: "text", Size: 512, Batch: 2},
		{Arch: SD15, Component: "unet", Size: 512, Batch: 2},
		{Arch: SD15, Component: "vae-decode", Size: 512, Batch: 1},
	} {
		t.Run(s.Component, func(t *testing.T) {
			var outs [2][]float32
			for i, d := range []string{"cpu", dev} {
				s.Device = d
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
			// FP32 on both sides: agreement to float32 rounding across hundreds
			// of layers (0.999 is the bar for an FP16 device).
			if cos < 0.99999 || rel > 1e-3 {
				t.Errorf("%s: cosine %.7f (want >= 0.99999), relative difference %.2e (want <= 1e-3)", s.Component, cos, rel)
			}
		})
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

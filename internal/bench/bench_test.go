package bench

import (
	"fmt"
	"testing"
)

func TestUNetGFLOP(t *testing.T) {
	for _, a := range []Arch{SD15, SD21, SDXL} {
		cfg, err := UNetConfig(a)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %.0f GFLOP at 64x64, %.0f at 128x128 (batch 1)", a, UNetGFLOP(cfg, 1, 64), UNetGFLOP(cfg, 1, 128))
	}
	// diffusers' SD 1.5 UNet at 512x512 is about 803 GFLOP per image (counted
	// by a profiler on the reference implementation).
	cfg, _ := UNetConfig(SD15)
	if g := UNetGFLOP(cfg, 1, 64); g < 760 || g > 850 {
		t.Fatalf("SD 1.5 UNet at 64x64: %.0f GFLOP, want about 803", g)
	}
	// The SD VAE's decoder at 512x512 is about 2515 GFLOP (same profiler).
	v, _ := VAEConfig(SD15)
	g := VAEGFLOP(v, 1, 512, true)
	t.Logf("VAE decode 512: %.0f GFLOP, encode %.0f", g, VAEGFLOP(v, 1, 512, false))
	if g < 2300 || g > 2700 {
		t.Fatalf("SD VAE decode at 512: %.0f GFLOP, want about 2515", g)
	}
}

// runSpec times a Spec with go test's loop, through the same builder as sd bench.
func runSpec(b *testing.B, s Spec) {
	bt, err := build(s)
	if err != nil {
		b.Fatal(err)
	}
	defer bt.release()
	call, gflop := bt.call, bt.gflop
	if err := call(); err != nil { // warm-up
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if err := call(); err != nil {
			b.Fatal(err)
		}
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(sec*1e3, "ms/call")
	b.ReportMetric(gflop/sec, "GFLOP/s")
	b.ReportMetric(PeakRSSMB(), "peak-MB")
}

// BenchmarkUNet times one UNet call at the real shapes with synthetic F16 weights.
func BenchmarkUNet(b *testing.B) {
	for _, s := range []Spec{
		{Arch: SD15, Component: "unet", Size: 512, Batch: 1},
		{Arch: SD15, Component: "unet", Size: 512, Batch: 2},
		{Arch: SDXL, Component: "unet", Size: 1024, Batch: 2},
	} {
		b.Run(fmt.Sprintf("%s_%dx%d_b%d", s.Arch, s.Size/8, s.Size/8, s.Batch), func(b *testing.B) { runSpec(b, s) })
	}
}

// BenchmarkVAEDecode times one decode at 512 and 1024 pixels.
func BenchmarkVAEDecode(b *testing.B) {
	for _, px := range []int{512, 1024} {
		b.Run(fmt.Sprintf("sd_%d", px), func(b *testing.B) { runSpec(b, Spec{Arch: SD15, Component: "vae-decode", Size: px, Batch: 1}) })
	}
}

// BenchmarkTextEncoder times CLIP-L on one 77-token prompt.
func BenchmarkTextEncoder(b *testing.B) {
	b.Run("clip_l_77", func(b *testing.B) { runSpec(b, Spec{Arch: SD15, Component: "text", Size: 512, Batch: 1}) })
}

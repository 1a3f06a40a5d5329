package bench

import (
	"fmt"
	"testing"

	"github.com/sdgo/sdgo/diffusion/clip"
	"github.com/sdgo/sdgo/diffusion/unet"
	"github.com/sdgo/sdgo/diffusion/vae"
	"github.com/sdgo/sdgo/tensor"
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
}

// BenchmarkUNet times one UNet call at the real shapes with synthetic F16 weights.
func BenchmarkUNet(b *testing.B) {
	for _, c := range []struct {
		arch          Arch
		latent, batch int
	}{{SD15, 64, 1}, {SD15, 64, 2}, {SDXL, 128, 2}} {
		b.Run(fmt.Sprintf("%s_%dx%d_b%d", c.arch, c.latent, c.latent, c.batch), func(b *testing.B) {
			cpu := tensor.NewCPU()
			cfg, err := UNetConfig(c.arch)
			if err != nil {
				b.Fatal(err)
			}
			m, err := unet.Load(&Synthetic{Backend: cpu, DType: tensor.F16}, cfg, unet.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Release()
			in, err := UNetInput(cpu, cfg, c.batch, c.latent)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				out, err := m.Forward(in, nil)
				if err != nil {
					b.Fatal(err)
				}
				out.Release()
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(sec*1e3, "ms/call")
			b.ReportMetric(UNetGFLOP(cfg, c.batch, c.latent)/sec, "GFLOP/s")
			b.ReportMetric(PeakRSSMB(), "peak-MB")
		})
	}
}

// BenchmarkVAEDecode times one decode at 512 and 1024 pixels with synthetic F16 weights.
func BenchmarkVAEDecode(b *testing.B) {
	for _, c := range []struct {
		arch Arch
		px   int
	}{{SD15, 512}, {SD15, 1024}} {
		b.Run(fmt.Sprintf("%s_%d", c.arch, c.px), func(b *testing.B) {
			cpu := tensor.NewCPU()
			cfg, err := VAEConfig(c.arch)
			if err != nil {
				b.Fatal(err)
			}
			m, err := vae.Load(&Synthetic{Backend: cpu, DType: tensor.F16}, cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Release()
			z, err := tensor.Full(cpu, tensor.F32, 0.5, 1, 4, c.px/8, c.px/8)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				out, err := m.Decode(z)
				if err != nil {
					b.Fatal(err)
				}
				out.Release()
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*1e3, "ms/call")
			b.ReportMetric(PeakRSSMB(), "peak-MB")
		})
	}
}

// BenchmarkTextEncoder times CLIP-L on one 77-token prompt.
func BenchmarkTextEncoder(b *testing.B) {
	cpu := tensor.NewCPU()
	m, err := clip.Load(&Synthetic{Backend: cpu, DType: tensor.F16}, clip.ViTL14())
	if err != nil {
		b.Fatal(err)
	}
	defer m.Release()
	ids := make([]int, 77)
	for i := range ids {
		ids[i] = (i * 997) % 49408
	}
	b.Run("clip_l_77", func(b *testing.B) {
		for b.Loop() {
			out, err := m.Forward([][]int{ids})
			if err != nil {
				b.Fatal(err)
			}
			out.Release()
		}
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*1e3, "ms/call")
	})
}

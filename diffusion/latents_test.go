package diffusion

import (
	"context"
	"image"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdgo/sdgo/diffusion/sched"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/sdgo/sdgo/tensor"
)

// randomExpr builds an expression of depth up to d over the given leaves and
// constants, covering every operation with arrays and constants on both sides.
func randomExpr(rng *rand.Rand, d int, leaf func(i int) sched.Expr, leaves int) sched.Expr {
	if d == 0 || rng.IntN(4) == 0 {
		return leaf(rng.IntN(leaves))
	}
	x := randomExpr(rng, d-1, leaf, leaves)
	var y sched.Expr
	if rng.IntN(3) == 0 {
		y = sched.C(float32(rng.NormFloat64() * 3))
	} else {
		y = randomExpr(rng, d-1, leaf, leaves)
	}
	if rng.IntN(2) == 0 {
		x, y = y, x
	}
	switch rng.IntN(5) {
	case 0:
		return x.Add(y)
	case 1:
		return x.Sub(y)
	case 2:
		return x.Mul(y)
	case 3:
		return x.Div(y)
	}
	return x.Clamp(-1.5, float32(rng.Float64()*2))
}

// TestDeviceArithMatchesHost evaluates random scheduler expressions with the
// tensor-backed arithmetic and with Host: every operation is correctly rounded
// on both sides, so the results must agree bit for bit.
func TestDeviceArithMatchesHost(t *testing.T) {
	b := fixture.Backend(t)
	dev := deviceArith{b}
	rng := rand.New(rand.NewPCG(1, 2))
	var before int64
	if c, ok := b.(*tensor.CPU); ok {
		before = c.Stats().InUse
	}
	for _, n := range []int{1, 7, 1000, 4099} {
		const leaves = 4
		host := make([]sched.Vec, leaves)
		devs := make([]sched.Vec, leaves)
		for i := range leaves {
			v := make([]float32, n)
			for k := range v {
				v[k] = float32(rng.NormFloat64())
			}
			host[i] = sched.HostVec(v)
			d, err := dev.FromHost(v)
			require.NoError(t, err)
			devs[i] = d
		}
		for trial := range 200 {
			seed := rng.Uint64()
			build := func(vs []sched.Vec) sched.Expr {
				r := rand.New(rand.NewPCG(seed, 3))
				e := randomExpr(r, 4, func(i int) sched.Expr { return sched.V(vs[i]) }, leaves)
				if e.Len() == 0 { // constants only: not an expression a scheduler makes
					e = e.Add(sched.V(vs[0]))
				}
				return e
			}
			want, err := sched.HostArith{}.Eval(build(host))
			require.NoError(t, err)
			got, err := dev.Eval(build(devs))
			require.NoError(t, err)
			g, err := dev.ToHost(got)
			require.NoError(t, err)
			w := want.(sched.HostVec)
			require.Len(t, g, n)
			for k := range g {
				if math.Float32bits(g[k]) != math.Float32bits(w[k]) && !(g[k] != g[k] && w[k] != w[k]) {
					t.Fatalf("n %d, expression %d, element %d: device %v, host %v", n, trial, k, g[k], w[k])
				}
			}
			dev.Free(got)
		}
		for _, d := range devs {
			dev.Free(d)
		}
	}
	if c, ok := b.(*tensor.CPU); ok {
		require.Equal(t, before, c.Stats().InUse, "tensors left behind")
	}
}

func TestDeviceArithErrors(t *testing.T) {
	dev := deviceArith{tensor.NewCPU()}
	_, err := dev.Eval(sched.V(sched.HostVec{1, 2}).Add(sched.C(1)))
	require.ErrorContains(t, err, "not on")
	a, err := dev.FromHost([]float32{1, 2})
	require.NoError(t, err)
	b, err := dev.FromHost([]float32{1, 2, 3})
	require.NoError(t, err)
	_, err = dev.Eval(sched.V(a).Add(sched.V(b)))
	require.Error(t, err)
	dev.Free(a)
	dev.Free(b)
	dev.Free(a) // a second Free is harmless
}

// The device path of the latents (tensors, the scheduler's arithmetic as tensor
// operations, classifier-free guidance, the inpainting blend, the decoder's
// scaling) generates bit for bit what the host path generates, in every mode,
// with deterministic, ancestral and multistep schedulers, and frees every
// tensor it makes.
func TestDeviceLatentsGenerateTheSame(t *testing.T) {
	ctx := context.Background()
	init := readPNG(t, "ref/init_64x64.png")
	mask := readPNG(t, "ref/mask_64x64.png")
	cpu := tensor.NewCPU()
	cases := []struct {
		model, scheduler string
		init, mask       image.Image
		guidance         float64
	}{
		{"sd15", "euler_a", nil, nil, 6},
		{"sd15", "DPM++ 2M Karras", init, nil, 6},
		{"sd15", "heun", nil, nil, 1},
		{"sd15", "ddim", init, mask, 5},
		{"sd15-inpaint", "", init, mask, 5},
		{"sdxl", "dpmpp_sde", nil, nil, 5},
		{"sd21-v", "unipc", nil, nil, 5},
		{"sd15", "dpm2_a", init, nil, 4},
	}
	for _, c := range cases {
		t.Run(c.model+"/"+c.scheduler, func(t *testing.T) {
			p, err := Load(ctx, fixture.Path(t, "models/"+c.model), Options{Backend: cpu})
			require.NoError(t, err)
			defer p.Close()
			run := func(device bool) *Result {
				p.deviceLatents = device
				g, err := NewGenerator("cpu", 11)
				require.NoError(t, err)
				neg := "blurry"
				before := cpu.Stats().InUse
				steps := 0
				res, err := p.Generate(ctx, Request{Prompt: "a red fox", NegativePrompt: &neg, Steps: 3, Guidance: c.guidance, Generator: g,
					Scheduler: c.scheduler, InitImage: c.init, Mask: c.mask, Strength: 0.7, Batch: 2,
					Progress: func(pr Progress) {
						steps++
						require.Equal(t, []int{2, 4, 8, 8}, pr.Latents.Shape())
					}})
				require.NoError(t, err)
				require.NotZero(t, steps)
				require.Equal(t, before, cpu.Stats().InUse, "tensors left behind (device %v)", device)
				return res
			}
			host, dev := run(false), run(true)
			require.Equal(t, host.Latents, dev.Latents)
			for i := range host.Images {
				require.Equal(t, host.Images[i].Pix, dev.Images[i].Pix)
			}
		})
	}
}

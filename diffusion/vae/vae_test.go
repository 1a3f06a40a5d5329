package vae

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/diffusion/weights"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/sdgo/sdgo/internal/refcheck"
	"github.com/sdgo/sdgo/tensor"
	"github.com/stretchr/testify/require"
)

func loadFixture(t *testing.T, name string) *Model {
	t.Helper()
	dir := fixture.Path(t, "models/"+name+"/vae")
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	require.NoError(t, err)
	src, err := weights.OpenSafetensors(filepath.Join(dir, "diffusion_pytorch_model.safetensors"))
	require.NoError(t, err)
	t.Cleanup(func() { src.Close() })
	m, err := Load(weights.Params(src, fixture.Backend(t)), cfg)
	require.NoError(t, err)
	t.Cleanup(m.Release)
	return m
}

// Every fixture VAE: encoder mean and log-variance, decoder output.
func TestVAEMatchesDiffusers(t *testing.T) {
	for _, name := range []string{"sd15", "sd15-inpaint", "sd21-v", "sdxl", "sdxl-inpaint"} {
		t.Run(name, func(t *testing.T) {
			m := loadFixture(t, name)
			cpu := fixture.Backend(t)
			ref, err := safetensors.Open(fixture.Path(t, "ref/"+name+".vae.safetensors"))
			require.NoError(t, err)
			defer ref.Close()
			mean, logvar, err := m.Encode(refcheck.Tensor(t, cpu, ref, "image"))
			require.NoError(t, err)
			for name, got := range map[string]*tensor.Tensor{"mean": mean, "logvar": logvar} {
				want, err := ref.Float32s(name)
				require.NoError(t, err)
				g, err := got.Float32s()
				require.NoError(t, err)
				refcheck.RequireClose(t, name, want, g, 0)
			}
			dec, err := m.Decode(refcheck.Tensor(t, cpu, ref, "latent"))
			require.NoError(t, err)
			want, err := ref.Float32s("decoded")
			require.NoError(t, err)
			got, err := dec.Float32s()
			require.NoError(t, err)
			refcheck.RequireClose(t, "decoded", want, got, 0)
		})
	}
}

func TestVAERejectsBadInput(t *testing.T) {
	m := loadFixture(t, "sd15")
	x, err := tensor.Zeros(fixture.Backend(t), tensor.F32, 1, 4, 16, 16)
	require.NoError(t, err)
	_, _, err = m.Encode(x)
	require.ErrorContains(t, err, "vae: image F32[1 4 16 16], want [B 3 H W]")
	y, err := tensor.Zeros(fixture.Backend(t), tensor.F32, 1, 3, 8, 8)
	require.NoError(t, err)
	_, err = m.Decode(y)
	require.ErrorContains(t, err, "vae: latent F32[1 3 8 8], want [B 4 h w]")
}

func smoothLatent(lh, lw int) []float32 {
	v := make([]float32, 4*lh*lw)
	for c := range 4 {
		for y := range lh {
			for x := range lw {
				v[(c*lh+y)*lw+x] = float32(math.Sin(float64(x)*0.3+float64(c)) * math.Cos(float64(y)*0.2))
			}
		}
	}
	return v
}

// decodePart decodes the latent window [y, y+h) x [x, x+w) on its own.
func decodePart(t *testing.T, m *Model, z *tensor.Tensor, y, x, h, w int) (v []float32, ph, pw int) {
	t.Helper()
	tl, err := m.decodeTile(z, y, x, max(h, w))
	require.NoError(t, err)
	require.Equal(t, 8*h, tl.h)
	require.Equal(t, 8*w, tl.w)
	return tl.v, tl.h, tl.w
}

// With no overlap, a tiled decode is the tiles decoded on their own, side by side.
func TestDecodeTiledAssemblesTiles(t *testing.T) {
	m := loadFixture(t, "sd15")
	const lh, lw = 16, 12
	z, err := tensor.FromFloat32(fixture.Backend(t), smoothLatent(lh, lw), 1, 4, lh, lw)
	require.NoError(t, err)
	tiled, err := m.DecodeTiled(z, Tiling{Tile: 8, Overlap: 0})
	require.NoError(t, err)
	require.Equal(t, []int{1, 3, 8 * lh, 8 * lw}, tiled.Shape())
	g, _ := tiled.Float32s()
	ow := 8 * lw
	for _, tl := range [][2]int{{0, 0}, {0, 8}, {8, 0}, {8, 8}} {
		h, w := min(8, lh-tl[0]), min(8, lw-tl[1])
		v, ph, pw := decodePart(t, m, z, tl[0], tl[1], h, w)
		for c := range 3 {
			for y := range ph {
				for x := range pw {
					want := v[(c*ph+y)*pw+x]
					got := g[(c*8*lh+8*tl[0]+y)*ow+8*tl[1]+x]
					require.Equal(t, want, got, "tile %v channel %d pixel (%d, %d)", tl, c, y, x)
				}
			}
		}
	}
}

// With overlap, the first rows of a tile below another are the two decodes mixed
// linearly, as diffusers' blend_v does.
func TestDecodeTiledBlends(t *testing.T) {
	m := loadFixture(t, "sd15")
	const lh, lw = 14, 8 // rows of tiles start at latent 0, 6 and 12; columns at 0 and 6
	z, err := tensor.FromFloat32(fixture.Backend(t), smoothLatent(lh, lw), 1, 4, lh, lw)
	require.NoError(t, err)
	tiled, err := m.DecodeTiled(z, Tiling{Tile: 8, Overlap: 0.25})
	require.NoError(t, err)
	g, _ := tiled.Float32s()
	upper, uh, _ := decodePart(t, m, z, 0, 0, 8, 8)
	lower, lh2, _ := decodePart(t, m, z, 6, 0, 8, 8)
	const extent, w = 16, 64
	for c := range 3 {
		for y := range extent {
			wa, wb := blendWeights(y, extent)
			for x := 0; x < 48; x += 7 { // columns from 48 on come from the next column of tiles
				want := upper[(c*uh+uh-extent+y)*w+x]*wa + lower[(c*lh2+y)*w+x]*wb
				got := g[(c*8*lh+48+y)*w+x]
				require.InDelta(t, want, got, 1e-6, "channel %d row %d col %d", c, y, x)
			}
		}
	}
}

// No seam: where tiles meet, neighbouring pixels of the tiled image differ no
// more than neighbouring pixels do inside tiles. (The tiny random VAE's group
// norms see each tile's own statistics, so a tiled image is not close to the
// whole decode here — its mean difference is reported for the record — but the
// blending must leave no visible edge.)
func TestDecodeTiledHasNoSeam(t *testing.T) {
	m := loadFixture(t, "sd15")
	const lh, lw = 24, 20
	z, err := tensor.FromFloat32(fixture.Backend(t), smoothLatent(lh, lw), 1, 4, lh, lw)
	require.NoError(t, err)
	tiled, err := m.DecodeTiled(z, Tiling{Tile: 8, Overlap: 0.25})
	require.NoError(t, err)
	whole, err := m.Decode(z)
	require.NoError(t, err)
	g, _ := tiled.Float32s()
	w, _ := whole.Float32s()
	var diff float64
	for i := range w {
		diff += math.Abs(float64(w[i] - g[i]))
	}
	t.Logf("tiled vs whole decode: mean abs difference %.3g", diff/float64(len(w)))

	oh, ow := 8*lh, 8*lw
	// jump returns the mean |difference| between row (or column) k-1 and k.
	jump := func(k int, rows bool) float64 {
		var s float64
		n := 0
		for c := range 3 {
			if rows {
				for x := range ow {
					s += math.Abs(float64(g[(c*oh+k)*ow+x] - g[(c*oh+k-1)*ow+x]))
					n++
				}
			} else {
				for y := range oh {
					s += math.Abs(float64(g[(c*oh+y)*ow+k] - g[(c*oh+y)*ow+k-1]))
					n++
				}
			}
		}
		return s / float64(n)
	}
	const stride = 48 // 6 latents: where one tile's kept part ends and the next one's begins
	for _, rows := range []bool{true, false} {
		size := ow
		if rows {
			size = oh
		}
		var inside float64
		n := 0
		for k := 1; k < size; k++ {
			if k%stride != 0 {
				inside += jump(k, rows)
				n++
			}
		}
		inside /= float64(n)
		for k := stride; k < size; k += stride {
			require.Less(t, jump(k, rows), 2*inside, "seam at %d (rows %v): jump %.3g, typical %.3g", k, rows, jump(k, rows), inside)
		}
	}
	_, err = m.DecodeTiled(z, Tiling{Tile: 8, Overlap: 1})
	require.ErrorContains(t, err, "overlap")
	// Latents within one tile take the untiled path exactly.
	small, _ := tensor.FromFloat32(fixture.Backend(t), smoothLatent(8, 8), 1, 4, 8, 8)
	a, err := m.Decode(small)
	require.NoError(t, err)
	b, err := m.DecodeTiled(small, Tiling{Tile: 8, Overlap: 0.25})
	require.NoError(t, err)
	av, _ := a.Float32s()
	bv, _ := b.Float32s()
	require.Equal(t, av, bv)
}

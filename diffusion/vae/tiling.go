package vae

import (
	"fmt"

	"github.com/sdgo/sdgo/tensor"
)

// Tiling configures tiled decoding: the latent is cut into overlapping square
// tiles that are decoded one at a time, and neighbouring tiles are blended
// linearly across their overlap, as diffusers' AutoencoderKL.tiled_decode does.
// Memory then depends on the tile size, not on the image size: a 2048x2048
// decode needs no more than a 512x512 one plus the output.
type Tiling struct {
	// Tile is the side of a latent tile (diffusers: sample_size/8, 64 for SD).
	Tile int
	// Overlap is the fraction of a tile shared with its neighbour (diffusers: 0.25).
	Overlap float64
}

// DefaultTiling returns diffusers' tiling for this model: tiles of
// sample_size/8 latents (64 for the 512-pixel SD VAE) overlapping by a quarter.
func (m *Model) DefaultTiling() Tiling {
	h, _ := m.cfg.SampleSize.HW()
	tile := h / m.cfg.DownscaleFactor()
	if tile <= 0 {
		tile = 64
	}
	return Tiling{Tile: tile, Overlap: 0.25}
}

// DecodeTiled decodes z [B, latent_channels, h, w] tile by tile. Latents no
// larger than one tile are decoded whole, as Decode would.
func (m *Model) DecodeTiled(z *tensor.Tensor, t Tiling) (*tensor.Tensor, error) {
	if z.Rank() != 4 || z.Dim(1) != m.arch.latentChannels {
		return nil, fmt.Errorf("vae: latent %v, want [B %d h w]", z, m.arch.latentChannels)
	}
	if t.Tile <= 0 || !(t.Overlap >= 0 && t.Overlap < 1) {
		return nil, fmt.Errorf("vae: tiling with tiles of %d and overlap %g (want tiles > 0 and overlap in [0, 1))", t.Tile, t.Overlap)
	}
	lh, lw := z.Dim(2), z.Dim(3)
	if lh <= t.Tile && lw <= t.Tile {
		return m.Decode(z)
	}
	f := m.cfg.DownscaleFactor()
	sampleTile := t.Tile * f
	stride := int(float64(t.Tile) * (1 - t.Overlap))
	blend := int(float64(sampleTile) * t.Overlap)
	limit := sampleTile - blend
	if stride <= 0 {
		return nil, fmt.Errorf("vae: tiles of %d latents overlapping by %g leave no stride", t.Tile, t.Overlap)
	}
	batch, ch := z.Dim(0), m.arch.outChannels
	oh, ow := lh*f, lw*f
	out := make([]float32, batch*ch*oh*ow)

	var prevRow []*tile // the blended tiles of the row above
	for i := 0; i < lh; i += stride {
		var row []*tile
		for j := 0; j < lw; j += stride {
			dec, err := m.decodeTile(z, i, j, t.Tile)
			if err != nil {
				return nil, err
			}
			if prevRow != nil {
				blendV(prevRow[len(row)], dec, blend)
			}
			if len(row) > 0 {
				blendH(row[len(row)-1], dec, blend)
			}
			row = append(row, dec)
		}
		// Copy the first limit×limit pixels of each blended tile into place.
		for k, tl := range row {
			y0, x0 := i*f, k*stride*f
			for b := range batch {
				for c := range ch {
					for y := range min(limit, tl.h, oh-y0) {
						src := tl.v[((b*ch+c)*tl.h+y)*tl.w:][:min(limit, tl.w, ow-x0)]
						copy(out[((b*ch+c)*oh+y0+y)*ow+x0:], src)
					}
				}
			}
		}
		prevRow = row
	}
	return tensor.FromFloat32(z.Backend(), out, batch, ch, oh, ow)
}

// tile is one decoded tile on the host: [B, C, h, w].
type tile struct {
	v          []float32
	b, c, h, w int
}

func (m *Model) decodeTile(z *tensor.Tensor, i, j, size int) (*tile, error) {
	rows, err := z.Narrow(2, i, min(size, z.Dim(2)-i))
	if err != nil {
		return nil, err
	}
	defer rows.Release()
	part, err := rows.Narrow(3, j, min(size, z.Dim(3)-j))
	if err != nil {
		return nil, err
	}
	defer part.Release()
	pc, err := part.Contiguous()
	if err != nil {
		return nil, err
	}
	defer pc.Release()
	dec, err := m.Decode(pc)
	if err != nil {
		return nil, fmt.Errorf("vae: tile at latent (%d, %d): %w", i, j, err)
	}
	defer dec.Release()
	v, err := dec.Float32s()
	if err != nil {
		return nil, err
	}
	return &tile{v: v, b: dec.Dim(0), c: dec.Dim(1), h: dec.Dim(2), w: dec.Dim(3)}, nil
}

// blendV fades the bottom rows of a into the top rows of b, in place in b.
func blendV(a, b *tile, extent int) {
	extent = min(a.h, b.h, extent)
	for p := range b.b * b.c {
		for y := range extent {
			wa, wb := blendWeights(y, extent)
			ra := a.v[(p*a.h+a.h-extent+y)*a.w:][:b.w]
			rb := b.v[(p*b.h+y)*b.w:][:b.w]
			for x := range rb {
				rb[x] = ra[x]*wa + rb[x]*wb
			}
		}
	}
}

// blendH fades the right columns of a into the left columns of b, in place in b.
func blendH(a, b *tile, extent int) {
	extent = min(a.w, b.w, extent)
	for p := range b.b * b.c {
		for y := range b.h {
			ra := a.v[(p*a.h+y)*a.w:]
			rb := b.v[(p*b.h+y)*b.w:]
			for x := range extent {
				wa, wb := blendWeights(x, extent)
				rb[x] = ra[a.w-extent+x]*wa + rb[x]*wb
			}
		}
	}
}

// blendWeights returns the weights of the outgoing and the incoming tile at
// position i of an overlap of extent pixels, computed in float64 and rounded as
// torch rounds a Python float multiplying a float32 tensor.
func blendWeights(i, extent int) (outgoing, incoming float32) {
	r := float64(i) / float64(extent)
	return float32(1 - r), float32(r)
}

package diffusion

import (
	"fmt"
	"image"
	"image/color"
	"math"
)

// imageToLatentInput converts img to the VAE's input: RGB in [-1, 1],
// [1, 3, h, w] as a flat slice, resized to w×h with a Lanczos filter when its
// size differs (diffusers' VaeImageProcessor: resize, to [0, 1], then
// normalise). Alpha is dropped, as PIL's convert("RGB") drops it.
func imageToLatentInput(img image.Image, w, h int) []float32 {
	rgb := planes(img, 3)
	b := img.Bounds()
	if b.Dx() != w || b.Dy() != h {
		rgb = resizePlanes(rgb, 3, b.Dx(), b.Dy(), w, h)
	}
	for i, v := range rgb {
		rgb[i] = v*2 - 1
	}
	return rgb
}

// maskToInput converts a mask to [1, 1, h, w] in {0, 1}: grey levels, resized,
// then binarised at 0.5 as diffusers' mask processor does (white = repaint).
func maskToInput(img image.Image, w, h int) []float32 {
	m := planes(img, 1)
	b := img.Bounds()
	if b.Dx() != w || b.Dy() != h {
		m = resizePlanes(m, 1, b.Dx(), b.Dy(), w, h)
	}
	for i, v := range m {
		if v < 0.5 {
			m[i] = 0
		} else {
			m[i] = 1
		}
	}
	return m
}

// planes returns img's pixels as channel planes in [0, 1]: RGB for 3 channels,
// or ITU-R 601 luma as PIL's convert("L") computes it for 1. 8-bit images keep
// their exact 8-bit values (v/255); deeper ones are reduced to 8 bits first, as
// PIL does on load.
func planes(img image.Image, channels int) []float32 {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]float32, channels*w*h)
	for y := range h {
		for x := range w {
			r, g, bl, _ := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA).RGBA()
			r8, g8, b8 := uint8(r>>8), uint8(g>>8), uint8(bl>>8)
			i := y*w + x
			if channels == 3 {
				out[i] = float32(r8) / 255
				out[w*h+i] = float32(g8) / 255
				out[2*w*h+i] = float32(b8) / 255
			} else {
				// PIL: L = R*299/1000 + G*587/1000 + B*114/1000, rounded.
				l := (uint32(r8)*19595 + uint32(g8)*38470 + uint32(b8)*7471 + 0x8000) >> 16
				out[i] = float32(l) / 255
			}
		}
	}
	return out
}

// resizePlanes resamples channel planes from sw×sh to dw×dh with a Lanczos-3
// filter, separably, widening the filter when shrinking (as PIL does). It is not
// bit-identical to PIL's 8-bit fixed-point resampler.
func resizePlanes(src []float32, channels, sw, sh, dw, dh int) []float32 {
	tmp := make([]float32, channels*sh*dw)
	hx := lanczosWeights(sw, dw)
	for c := range channels {
		for y := range sh {
			row := src[(c*sh+y)*sw:][:sw]
			out := tmp[(c*sh+y)*dw:][:dw]
			for x, ws := range hx {
				var s float64
				for _, tw := range ws {
					s += tw.w * float64(row[tw.i])
				}
				out[x] = float32(s)
			}
		}
	}
	dst := make([]float32, channels*dh*dw)
	hy := lanczosWeights(sh, dh)
	for c := range channels {
		for y, ws := range hy {
			out := dst[(c*dh+y)*dw:][:dw]
			for x := range out {
				var s float64
				for _, tw := range ws {
					s += tw.w * float64(tmp[(c*sh+tw.i)*dw+x])
				}
				out[x] = float32(min(max(s, 0), 1))
			}
		}
	}
	return dst
}

type tap struct {
	i int
	w float64
}

func lanczosWeights(in, out int) [][]tap {
	scale := float64(in) / float64(out)
	support := 3 * max(scale, 1)
	taps := make([][]tap, out)
	for o := range out {
		centre := (float64(o) + 0.5) * scale
		lo := max(int(math.Floor(centre-support)), 0)
		hi := min(int(math.Ceil(centre+support)), in)
		var sum float64
		for i := lo; i < hi; i++ {
			x := (float64(i) + 0.5 - centre) / max(scale, 1)
			w := lanczos3(x)
			if w != 0 {
				taps[o] = append(taps[o], tap{i, w})
				sum += w
			}
		}
		for k := range taps[o] {
			taps[o][k].w /= sum
		}
	}
	return taps
}

func lanczos3(x float64) float64 {
	if x == 0 {
		return 1
	}
	if x <= -3 || x >= 3 {
		return 0
	}
	px := math.Pi * x
	return 3 * math.Sin(px) * math.Sin(px/3) / (px * px)
}

// toImages converts decoded images [B, 3, h, w] (about [-1, 1]) to 8-bit
// images as diffusers' postprocess does: x/2 + 0.5 clamped to [0, 1], times
// 255, rounded half to even (numpy's round).
func toImages(v []float32, batch, h, w int) ([]*image.NRGBA, error) {
	if len(v) != batch*3*h*w {
		return nil, fmt.Errorf("diffusion: %d values for %d images of %dx%d", len(v), batch, w, h)
	}
	imgs := make([]*image.NRGBA, batch)
	for b := range batch {
		img := image.NewNRGBA(image.Rect(0, 0, w, h))
		for c := range 3 {
			plane := v[(b*3+c)*h*w:][:h*w]
			for i, x := range plane {
				img.Pix[4*i+c] = toU8(x)
			}
		}
		for i := range h * w {
			img.Pix[4*i+3] = 255
		}
		imgs[b] = img
	}
	return imgs, nil
}

// toU8 maps a decoded value to 8 bits in float32 arithmetic, as torch and numpy
// do it: clamp(x/2 + 0.5, 0, 1), times 255, round half to even.
func toU8(x float32) uint8 {
	v := x/2 + 0.5
	v = min(max(v, 0), 1)
	return uint8(math.RoundToEven(float64(v * 255)))
}

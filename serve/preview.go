package serve

import (
	"bytes"
	"fmt"
	"image"
	"image/png"

	"github.com/sdgo/sdgo/tensor"
)

// latentRGBFactors is the cheap latent-to-RGB approximation: a linear map from
// the 4 latent channels to R, G, B in [-1, 1], applied per latent pixel
// (rgb_k = sum_c latent_c * F[c][k]), so a preview costs 12 multiply-adds a
// pixel instead of a VAE decode.
//
// The coefficients are not derived here: they are the tables ComfyUI uses for
// its "latent2rgb" previews (comfy/latent_formats.py, classes SD15 and SDXL).
// ComfyUI's first SD15 table was the 4x3 matrix keturn published in "Decoding
// latents to RGB without upscaling" (Hugging Face forums, 2022), fitted from
// latents to their decoded images; the values below are its later revision.
// SD 2.x shares SD 1.x's VAE and so its table. The output is approximate by
// design: early steps show mostly noise.
func latentRGBFactors(family string) [4][3]float32 {
	if family == "sdxl" || family == "sdxl-refiner" {
		return [4][3]float32{
			{0.3920, 0.4054, 0.4549},
			{-0.2634, -0.0196, 0.0653},
			{0.0568, 0.1687, -0.0755},
			{-0.3112, -0.2359, -0.2076},
		}
	}
	return [4][3]float32{
		{0.3512, 0.2297, 0.3227},
		{0.3250, 0.4974, 0.2350},
		{-0.2829, 0.1762, 0.2721},
		{-0.2120, -0.2616, -0.7177},
	}
}

// latentPreview maps the first image of latents [B, 4, h, w] (the scaled
// latents the scheduler steps) to an RGB image of h x w pixels.
func latentPreview(lat []float32, h, w int, family string) (*image.NRGBA, error) {
	hw := h * w
	if h <= 0 || w <= 0 || len(lat) < 4*hw {
		return nil, fmt.Errorf("serve: preview: %d latent values for 4x%dx%d", len(lat), h, w)
	}
	f := latentRGBFactors(family)
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range hw {
		px := img.Pix[4*i : 4*i+4]
		for k := range 3 {
			v := lat[i]*f[0][k] + lat[hw+i]*f[1][k] + lat[2*hw+i]*f[2][k] + lat[3*hw+i]*f[3][k]
			v = (v + 1) / 2 * 255
			px[k] = uint8(min(max(v+0.5, 0), 255))
		}
		px[3] = 255
	}
	return img, nil
}

// previewPNG encodes the preview of a step's latents, [B, 4, h, w].
func previewPNG(t *tensor.Tensor, family string) ([]byte, error) {
	shape := t.Shape()
	if len(shape) != 4 || shape[1] != 4 {
		return nil, fmt.Errorf("serve: preview: latents of shape %v; expected [B, 4, h, w]", shape)
	}
	v, err := t.Float32s()
	if err != nil {
		return nil, fmt.Errorf("serve: preview: %w", err)
	}
	img, err := latentPreview(v, shape[2], shape[3], family)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("serve: preview: %w", err)
	}
	return buf.Bytes(), nil
}

package diffusion

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/draw"
	_ "image/jpeg" // input images may be JPEG
	_ "image/png"
	"io"

	_ "golang.org/x/image/webp" // and WebP
)

// MaxInputPixels bounds the images DecodeImage accepts (a 16384x16384 image):
// the header is checked before any pixel is decoded, so a small file claiming a
// huge size cannot exhaust memory.
const MaxInputPixels = 16384 * 16384

// DecodeImage reads a PNG, JPEG or WebP image for image-to-image or inpainting. A
// JPEG's EXIF orientation is applied, as photos from phones need; the size is
// checked against MaxInputPixels before decoding.
func DecodeImage(r io.Reader) (image.Image, error) {
	data, err := io.ReadAll(io.LimitReader(r, 1<<30))
	if err != nil {
		return nil, err
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not a PNG, JPEG or WebP image: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > MaxInputPixels {
		return nil, fmt.Errorf("%s image of %dx%d pixels: more than the %d allowed", format, cfg.Width, cfg.Height, MaxInputPixels)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s image: %w", format, err)
	}
	if format == "jpeg" {
		img = orient(img, exifOrientation(data))
	}
	return img, nil
}

// exifOrientation returns the EXIF orientation tag (1..8) of a JPEG, or 1.
func exifOrientation(jpeg []byte) int {
	// Walk the JPEG segments up to the first APP1 "Exif" one.
	for i := 2; i+4 <= len(jpeg) && jpeg[i] == 0xff; {
		marker := jpeg[i+1]
		size := int(binary.BigEndian.Uint16(jpeg[i+2:]))
		if marker == 0xda || size < 2 || i+2+size > len(jpeg) { // start of scan: no more headers
			return 1
		}
		seg := jpeg[i+4 : i+2+size]
		if marker == 0xe1 && len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00" {
			return tiffOrientation(seg[6:])
		}
		i += 2 + size
	}
	return 1
}

func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	ifd := int(bo.Uint32(t[4:]))
	if ifd < 8 || ifd+2 > len(t) {
		return 1
	}
	n := int(bo.Uint16(t[ifd:]))
	for k := range n {
		e := ifd + 2 + 12*k
		if e+12 > len(t) {
			return 1
		}
		if bo.Uint16(t[e:]) == 0x0112 && bo.Uint16(t[e+2:]) == 3 { // Orientation, SHORT
			if v := int(bo.Uint16(t[e+8:])); v >= 1 && v <= 8 {
				return v
			}
			return 1
		}
	}
	return 1
}

// orient turns img upright for an EXIF orientation: 2 mirrors, 3 rotates 180°,
// 4 flips, 5 transposes, 6 rotates 90° clockwise, 7 transverses, 8 rotates 90°
// counter-clockwise.
func orient(img image.Image, o int) image.Image {
	if o <= 1 || o > 8 {
		return img
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	src := image.NewNRGBA(image.Rect(0, 0, w, h))
	draw.Draw(src, src.Rect, img, b.Min, draw.Src)
	ow, oh := w, h
	if o >= 5 {
		ow, oh = h, w
	}
	dst := image.NewNRGBA(image.Rect(0, 0, ow, oh))
	for y := range h {
		for x := range w {
			var dx, dy int
			switch o {
			case 2:
				dx, dy = w-1-x, y
			case 3:
				dx, dy = w-1-x, h-1-y
			case 4:
				dx, dy = x, h-1-y
			case 5:
				dx, dy = y, x
			case 6:
				dx, dy = h-1-y, x
			case 7:
				dx, dy = h-1-y, w-1-x
			case 8:
				dx, dy = y, w-1-x
			}
			copy(dst.Pix[dy*dst.Stride+4*dx:][:4], src.Pix[y*src.Stride+4*x:][:4])
		}
	}
	return dst
}

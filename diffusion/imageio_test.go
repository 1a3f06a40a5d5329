package diffusion

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/stretchr/testify/require"
)

// withOrientation splices an APP1 Exif segment holding an Orientation tag right
// after a JPEG's SOI marker.
func withOrientation(t *testing.T, jpg []byte, o uint16, bo binary.ByteOrder) []byte {
	tiff := make([]byte, 8+2+12+4)
	if bo == binary.LittleEndian {
		copy(tiff, "II")
	} else {
		copy(tiff, "MM")
	}
	bo.PutUint16(tiff[2:], 42)
	bo.PutUint32(tiff[4:], 8)
	bo.PutUint16(tiff[8:], 1)
	bo.PutUint16(tiff[10:], 0x0112)
	bo.PutUint16(tiff[12:], 3)
	bo.PutUint32(tiff[14:], 1)
	bo.PutUint16(tiff[18:], o)
	seg := append([]byte("Exif\x00\x00"), tiff...)
	app1 := []byte{0xff, 0xe1, 0, 0}
	binary.BigEndian.PutUint16(app1[2:], uint16(len(seg)+2))
	out := append([]byte{}, jpg[:2]...)
	out = append(out, app1...)
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

func TestDecodeImageAppliesEXIFOrientation(t *testing.T) {
	// 16x8: red on the left, blue on the right.
	src := image.NewNRGBA(image.Rect(0, 0, 16, 8))
	for y := range 8 {
		for x := range 16 {
			c := color.NRGBA{255, 0, 0, 255}
			if x >= 8 {
				c = color.NRGBA{0, 0, 255, 255}
			}
			src.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	require.NoError(t, jpeg.Encode(&buf, src, &jpeg.Options{Quality: 95}))
	red := func(c color.Color) bool { r, _, b, _ := c.RGBA(); return r > 40000 && b < 20000 }
	blue := func(c color.Color) bool { r, _, b, _ := c.RGBA(); return b > 40000 && r < 20000 }
	for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		img, err := DecodeImage(bytes.NewReader(withOrientation(t, buf.Bytes(), 6, bo)))
		require.NoError(t, err)
		require.Equal(t, image.Rect(0, 0, 8, 16), img.Bounds(), "orientation 6 turns the image a quarter")
		require.True(t, red(img.At(4, 3)), "rotated 90° clockwise: the left half is now on top")
		require.True(t, blue(img.At(4, 12)))
		img, err = DecodeImage(bytes.NewReader(withOrientation(t, buf.Bytes(), 3, bo)))
		require.NoError(t, err)
		require.True(t, blue(img.At(3, 4)), "rotated 180°: the right half is now on the left")
	}
	plain, err := DecodeImage(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	require.True(t, red(plain.At(3, 4)))
}

// A PNG header that claims 50000x50000 pixels is refused before decoding.
func TestDecodeImageRefusesHugeImages(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, image.NewGray(image.Rect(0, 0, 1, 1))))
	b := buf.Bytes()
	binary.BigEndian.PutUint32(b[16:], 50000)
	binary.BigEndian.PutUint32(b[20:], 50000)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	_, err := DecodeImage(bytes.NewReader(b))
	require.ErrorContains(t, err, "50000x50000")
	_, err = DecodeImage(bytes.NewReader([]byte("not an image")))
	require.ErrorContains(t, err, "not a PNG, JPEG or WebP")
}

// A lossless WebP of 2x1 pixels.
func TestDecodeImageReadsWebP(t *testing.T) {
	webp := []byte{
		0x52, 0x49, 0x46, 0x46, 0x26, 0x00, 0x00, 0x00, 0x57, 0x45, 0x42, 0x50, 0x56, 0x50, 0x38, 0x4c,
		0x19, 0x00, 0x00, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x00, 0x07, 0xd0, 0xff, 0xfe, 0xf7, 0xbf, 0xff,
		0x81, 0x88, 0xe8, 0x7f, 0x00, 0x00, 0x00, 0xf8, 0xff, 0xff, 0x0f, 0x00,
	}
	img, err := DecodeImage(bytes.NewReader(webp))
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 2, 1), img.Bounds())
}

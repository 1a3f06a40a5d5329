package serve

import (
	"bytes"
	"encoding/base64"
	"image"
	_ "image/jpeg" // input images may be JPEG
	_ "image/png"  // input images may be PNG
	"strings"

	"github.com/sdgo/sdgo/diffusion"
)

// maxSide bounds each side of an input image, whatever its pixel count.
const maxSide = 16384

// decodeBase64 decodes standard or URL-safe base64, padded or not; line breaks
// are ignored.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	var firstErr error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(s)
		if err == nil {
			return b, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// decodeImageField decodes a base64 image or data URL given in a request
// field. The header is checked against maxPixels before any pixel is decoded.
func decodeImageField(field, s string, maxPixels int) (image.Image, *APIError) {
	if rest, ok := strings.CutPrefix(s, "data:"); ok {
		meta, data, ok := strings.Cut(rest, ",")
		if !ok || !strings.HasSuffix(meta, ";base64") {
			return nil, fieldError(field, "a data URL must carry base64 data (data:image/png;base64,...)")
		}
		s = data
	}
	raw, err := decodeBase64(s)
	if err != nil {
		return nil, fieldError(field, "is not valid base64: %v", err)
	}
	if len(raw) == 0 {
		return nil, fieldError(field, "is empty")
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		return nil, fieldError(field, "is not a PNG or JPEG image")
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > maxSide || cfg.Height > maxSide || int64(cfg.Width)*int64(cfg.Height) > int64(maxPixels) {
		return nil, fieldError(field, "is a %dx%d %s image; at most %d pixels (%d a side) are allowed", cfg.Width, cfg.Height, format, maxPixels, maxSide)
	}
	img, err := diffusion.DecodeImage(bytes.NewReader(raw))
	if err != nil {
		return nil, fieldError(field, "cannot be decoded: %v", err)
	}
	return img, nil
}

func b64(data []byte) string { return base64.StdEncoding.EncodeToString(data) }

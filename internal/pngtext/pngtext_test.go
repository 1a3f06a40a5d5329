package pngtext

import (
	"bytes"
	"image"
	"image/png"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEncodeAddsTextChunks(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 3, 2))
	data, err := Encode(img, [][2]string{{"parameters", "a café"}, {"comment", "雪の狐"}})
	require.NoError(t, err)
	back, err := png.Decode(bytes.NewReader(data))
	require.NoError(t, err, "the CRCs and chunk order keep the PNG valid")
	require.Equal(t, img.Bounds(), back.Bounds())
	require.Contains(t, string(data), "tEXtparameters\x00a caf\xe9", "Latin-1 text goes in tEXt")
	require.Contains(t, string(data), "iTXtcomment\x00\x00\x00\x00\x00雪の狐", "other text goes in iTXt as UTF-8")
}

// Package pngtext writes PNG images with text chunks, as AUTOMATIC1111 stores
// generation parameters under the keyword "parameters" (Go's image/png writes
// no text chunks).
package pngtext

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/png"
)

// Encode encodes img with a tEXt chunk per (keyword, text) pair, placed after
// the header, as A1111 stores generation parameters under "parameters". Go's
// image/png writes no text chunks, so they are spliced into its output.
func Encode(img image.Image, text [][2]string) ([]byte, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	const sigLen, ihdrLen = 8, 8 + 13 + 4
	if len(b) < sigLen+ihdrLen || string(b[12:16]) != "IHDR" {
		return nil, errors.New("png: unexpected encoder output")
	}
	var out bytes.Buffer
	out.Write(b[:sigLen+ihdrLen])
	for _, kv := range text {
		// tEXt holds Latin-1; text beyond it goes in an iTXt chunk (UTF-8), as
		// PIL writes it.
		kind, data := "tEXt", append([]byte(kv[0]), 0)
		if latin1, ok := toLatin1(kv[1]); ok {
			data = append(data, latin1...)
		} else {
			kind = "iTXt"
			data = append(data, 0, 0, 0, 0) // uncompressed, no language, no translated keyword
			data = append(data, kv[1]...)
		}
		var hdr [8]byte
		binary.BigEndian.PutUint32(hdr[:4], uint32(len(data)))
		copy(hdr[4:], kind)
		out.Write(hdr[:])
		out.Write(data)
		crc := crc32.NewIEEE()
		crc.Write(hdr[4:])
		crc.Write(data)
		var c [4]byte
		binary.BigEndian.PutUint32(c[:], crc.Sum32())
		out.Write(c[:])
	}
	out.Write(b[sigLen+ihdrLen:])
	return out.Bytes(), nil
}

func toLatin1(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return nil, false
		}
		out = append(out, byte(r))
	}
	return out, true
}

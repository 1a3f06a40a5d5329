package safetensors

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func streamTensors() []Tensor {
	return []Tensor{
		F32Tensor("b", []int{2, 3}, []float32{1, 2, 3, 4, 5, -6.5}),
		U16Tensor("a", BF16, []int{3}, []uint16{0x3f80, 0x4000, 0xc040}),
		{Name: "scalar", DType: I64, Shape: nil, Data: []byte{7, 0, 0, 0, 0, 0, 0, 0}},
		{Name: "empty", DType: F16, Shape: []int{0, 4}, Data: nil},
		U16Tensor("c.weight", F16, []int{1, 1}, []uint16{0x3c00}),
	}
}

func infosOf(ts []Tensor) []Info {
	var infos []Info
	for _, t := range ts {
		infos = append(infos, Info{Name: t.Name, DType: t.DType, Shape: t.Shape, Begin: 99, End: 7})
	}
	return infos
}

// The streamed file is byte for byte the one Write makes, and it parses.
func TestStreamWriterMatchesWrite(t *testing.T) {
	ts := streamTensors()
	meta := map[string]string{"format": "pt"}
	var want bytes.Buffer
	require.NoError(t, Write(&want, ts, meta))

	var got bytes.Buffer
	sw, err := NewStreamWriter(&got, infosOf(ts), meta)
	require.NoError(t, err)
	byName := map[string]Tensor{}
	for _, x := range ts {
		byName[x.Name] = x
	}
	var order []string
	for {
		info, ok := sw.Next()
		if !ok {
			break
		}
		order = append(order, info.Name)
		require.Equal(t, int64(len(byName[info.Name].Data)), info.End-info.Begin)
		require.NoError(t, sw.WriteTensor(info.Name, byName[info.Name].Data))
	}
	require.Equal(t, []string{"a", "b", "c.weight", "empty", "scalar"}, order)
	require.NoError(t, sw.Close())
	require.Equal(t, want.Bytes(), got.Bytes())

	f, err := Parse("streamed", got.Bytes())
	require.NoError(t, err)
	v, err := f.Float32s("b")
	require.NoError(t, err)
	require.Equal(t, []float32{1, 2, 3, 4, 5, -6.5}, v)
	require.Equal(t, "pt", f.Metadata()["format"])
	infos := sw.Tensors()
	require.Len(t, infos, 5)
	for _, info := range infos {
		fi, ok := f.Info(info.Name)
		require.True(t, ok)
		require.Equal(t, fi, info)
	}

	// No metadata: none written, as Write does.
	want.Reset()
	got.Reset()
	require.NoError(t, Write(&want, ts[:1], nil))
	sw, err = NewStreamWriter(&got, infosOf(ts[:1]), nil)
	require.NoError(t, err)
	require.NoError(t, sw.WriteTensor("b", ts[0].Data))
	require.NoError(t, sw.Close())
	require.Equal(t, want.Bytes(), got.Bytes())
}

func TestStreamWriterErrors(t *testing.T) {
	_, err := NewStreamWriter(&bytes.Buffer{}, []Info{{Name: "x", DType: F16}, {Name: "x", DType: F32}}, nil)
	require.ErrorContains(t, err, `"x" given twice`)
	_, err = NewStreamWriter(&bytes.Buffer{}, []Info{{Name: "x", DType: "F12"}}, nil)
	require.ErrorContains(t, err, `unknown dtype "F12"`)
	_, err = NewStreamWriter(&bytes.Buffer{}, []Info{{Name: "x", DType: F16, Shape: []int{2, -1}}}, nil)
	require.ErrorContains(t, err, "negative dimension")
	_, err = NewStreamWriter(&bytes.Buffer{}, []Info{{Name: "__metadata__", DType: F16}}, nil)
	require.ErrorContains(t, err, "reserved")

	ts := streamTensors()
	sw, err := NewStreamWriter(&bytes.Buffer{}, infosOf(ts), nil)
	require.NoError(t, err)
	require.ErrorContains(t, sw.WriteTensor("b", ts[0].Data), `"b" written where "a" comes next`)
	require.ErrorContains(t, sw.WriteTensor("a", []byte{1, 2}), "needs 6 bytes, got 2")
	require.NoError(t, sw.WriteTensor("a", ts[1].Data))
	require.ErrorContains(t, sw.Close(), "4 of 5 tensors unwritten, from \"b\"")

	sw, err = NewStreamWriter(&bytes.Buffer{}, infosOf(ts[:1]), nil)
	require.NoError(t, err)
	require.NoError(t, sw.WriteTensor("b", ts[0].Data))
	require.ErrorContains(t, sw.WriteTensor("c", nil), "after the last one")
	require.NoError(t, sw.Close())

	// A failing writer: the error is kept.
	fw := &failWriter{after: 8}
	sw, err = NewStreamWriter(fw, infosOf(ts[:1]), nil)
	require.NoError(t, err) // buffered
	require.NoError(t, sw.WriteTensor("b", ts[0].Data))
	err = sw.Close()
	require.ErrorIs(t, err, errDiskFull)
	require.ErrorIs(t, sw.Close(), errDiskFull)
	require.ErrorIs(t, sw.WriteTensor("b", ts[0].Data), errDiskFull)
}

var errDiskFull = errors.New("disk full")

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.after {
		n := w.after
		w.after = 0
		return n, errDiskFull
	}
	w.after -= len(p)
	return len(p), nil
}

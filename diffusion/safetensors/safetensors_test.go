package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/stretchr/testify/require"
)

func TestOpenFixture(t *testing.T) {
	f, err := Open(fixture.Path(t, "tokenizer/cases.safetensors"))
	require.NoError(t, err)
	defer f.Close()
	require.NotEmpty(t, f.Metadata()["case"], "fixtures carry their parameters in __metadata__.case")
	require.Positive(t, f.Len())
	for _, name := range f.Names() {
		info, ok := f.Info(name)
		require.True(t, ok)
		b, err := f.Bytes(name)
		require.NoError(t, err)
		require.Len(t, b, int(info.End-info.Begin))
	}

	u, err := Open(fixture.Path(t, "models/sd15/unet/diffusion_pytorch_model.safetensors"))
	require.NoError(t, err)
	defer u.Close()
	info, ok := u.Info("conv_in.weight")
	require.True(t, ok)
	require.Equal(t, F16, info.DType)
	require.Equal(t, []int{32, 4, 3, 3}, info.Shape)
	v, err := u.Float32s("conv_in.weight")
	require.NoError(t, err)
	require.Len(t, v, 32*4*3*3)
	bits, err := u.Uint16s("conv_in.weight")
	require.NoError(t, err)
	require.Len(t, bits, len(v))
	_, err = u.Float32s("nope")
	require.ErrorContains(t, err, `no tensor "nope"`)
}

func TestWriteRoundTrip(t *testing.T) {
	ts := []Tensor{
		F32Tensor("b", []int{2, 3}, []float32{1, 2, 3, 4, 5, -6.5}),
		U16Tensor("a", BF16, []int{3}, []uint16{0x3f80, 0x4000, 0xc040}),
		{Name: "scalar", DType: I64, Shape: nil, Data: []byte{7, 0, 0, 0, 0, 0, 0, 0}},
		{Name: "empty", DType: F16, Shape: []int{0, 4}, Data: nil},
	}
	path := filepath.Join(t.TempDir(), "x.safetensors")
	require.NoError(t, WriteFile(path, ts, map[string]string{"format": "pt"}))
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	require.Equal(t, []string{"a", "b", "empty", "scalar"}, f.Names())
	require.Equal(t, "pt", f.Metadata()["format"])
	b, err := f.Float32s("b")
	require.NoError(t, err)
	require.Equal(t, []float32{1, 2, 3, 4, 5, -6.5}, b)
	a, err := f.Float32s("a")
	require.NoError(t, err)
	require.Equal(t, []float32{1, 2, -3}, a)
	s, err := f.Int64s("scalar")
	require.NoError(t, err)
	require.Equal(t, []int64{7}, s)
	info, _ := f.Info("scalar")
	require.Equal(t, []int{}, info.Shape)

	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Zero(t, (8+binary.LittleEndian.Uint64(raw))%8, "data section starts 8-byte aligned")

	require.ErrorContains(t, Write(&bytes.Buffer{}, []Tensor{{Name: "x", DType: F32, Shape: []int{2}, Data: make([]byte, 4)}}, nil), `tensor "x": shape [2] of F32 needs 8 bytes, got 4`)
	require.ErrorContains(t, Write(&bytes.Buffer{}, []Tensor{{Name: "x", DType: "Q7", Data: nil}}, nil), "unknown dtype")
}

func file(header string, data int) []byte {
	b := make([]byte, 8, 8+len(header)+data)
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, data)...)
}

func TestParseRejectsBadFiles(t *testing.T) {
	huge := make([]byte, 16)
	binary.LittleEndian.PutUint64(huge, 1<<40)
	cases := map[string]struct {
		b    []byte
		want string
	}{
		"short":          {[]byte{1, 2, 3}, "too short"},
		"huge header":    {huge, "exceeds the"},
		"truncated":      {file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 0)[:20], "only"},
		"not json":       {file(`{"a":`, 0), "not a JSON object"},
		"array":          {file(`[1,2]`, 0), "not a JSON object"},
		"trailing":       {file(`{} {}`, 0), "trailing"},
		"unknown dtype":  {file(`{"a":{"dtype":"F12","shape":[1],"data_offsets":[0,2]}}`, 2), `tensor "a" has unknown dtype "F12"`},
		"size mismatch":  {file(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8), `shape [3] of F32 is 12 bytes`},
		"out of range":   {file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 4), "outside the 4-byte data section"},
		"negative":       {file(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, 8), "negative dimension"},
		"backwards":      {file(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, 8), "byte range"},
		"overlap":        {file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12), "overlap"},
		"missing field":  {file(`{"a":{"dtype":"F32","shape":[2]}}`, 8), "needs dtype, shape and data_offsets"},
		"unknown field":  {file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}`, 8), `unknown field "x"`},
		"bad offsets":    {file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}`, 8), "data_offsets must be"},
		"bad metadata":   {file(`{"__metadata__":{"a":1}}`, 0), "__metadata__"},
		"overflow shape": {file(`{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}`, 8), "overflows"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("bad.safetensors", c.b)
			require.ErrorIs(t, err, ErrFormat)
			require.ErrorContains(t, err, "bad.safetensors")
			require.ErrorContains(t, err, c.want)
		})
	}
}

func FuzzParse(f *testing.F) {
	var buf bytes.Buffer
	Write(&buf, []Tensor{F32Tensor("w", []int{2, 2}, []float32{1, 2, 3, 4}), U16Tensor("h", F16, []int{1}, []uint16{0x3c00})}, map[string]string{"k": "v"})
	f.Add(buf.Bytes())
	f.Add(file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12))
	f.Add(file(`{}`, 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse("fuzz", b)
		if err != nil {
			return
		}
		// A file that parses must give every tensor's bytes and values without panicking.
		for _, name := range file.Names() {
			info, _ := file.Info(name)
			raw, err := file.Bytes(name)
			if err != nil || int64(len(raw)) != info.End-info.Begin {
				t.Fatalf("tensor %q: %v, %d bytes for [%d, %d)", name, err, len(raw), info.Begin, info.End)
			}
			file.Float32s(name)
		}
	})
}

func TestShareOutlivesClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.safetensors")
	if err := WriteFile(path, []Tensor{F32Tensor("a", []int{3}, []float32{1, 2, 3})}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	b, release, err := f.Share("a")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Share("a"); err == nil && f.Mapped() {
		t.Error("Share after Close did not fail")
	}
	// Still mapped: the shared tensor holds the mapping.
	if got := math.Float32frombits(binary.LittleEndian.Uint32(b[8:])); got != 3 {
		t.Errorf("shared bytes after Close read %v, want 3", got)
	}
	release()
	release() // once only
	if _, _, err := f.Share("missing"); err == nil {
		t.Error("Share of a missing tensor did not fail")
	}
}

package model

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"testing"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/stretchr/testify/require"
)

// torchSave writes the tensors of a safetensors file as torch.save (zip
// format, pickle protocol 2) writes a training checkpoint:
// {"state_dict": OrderedDict(name: tensor), <meta key>: <int>, ...}. It is a
// test's stand-in for a .ckpt file made by PyTorch.
func torchSave(t *testing.T, src, dst string, meta map[string]int) {
	t.Helper()
	f, err := safetensors.Open(src)
	require.NoError(t, err)
	defer f.Close()

	var p bytes.Buffer
	str := func(s string) {
		p.WriteByte('X') // BINUNICODE
		binary.Write(&p, binary.LittleEndian, uint32(len(s)))
		p.WriteString(s)
	}
	num := func(n int) {
		p.WriteByte('J') // BININT
		binary.Write(&p, binary.LittleEndian, int32(n))
	}
	global := func(module, name string) { fmt.Fprintf(&p, "c%s\n%s\n", module, name) }
	ints := func(v []int) {
		p.WriteByte('(') // MARK
		for _, x := range v {
			num(x)
		}
		p.WriteByte('t') // TUPLE
	}
	orderedDict := func() {
		global("collections", "OrderedDict")
		p.WriteString(")R") // EMPTY_TUPLE, REDUCE
	}
	storages := map[safetensors.DType]string{safetensors.F16: "HalfStorage", safetensors.F32: "FloatStorage", safetensors.BF16: "BFloat16Storage"}

	p.WriteString("\x80\x02") // PROTO 2
	p.WriteString("}(")       // EMPTY_DICT, MARK
	str("state_dict")
	orderedDict()
	p.WriteByte('(')
	var records [][]byte
	for i, n := range f.Names() {
		info, _ := f.Info(n)
		b, err := f.Bytes(n)
		require.NoError(t, err)
		st, ok := storages[info.DType]
		require.True(t, ok, "dtype %s", info.DType)
		records = append(records, bytes.Clone(b))
		str(n)
		global("torch._utils", "_rebuild_tensor_v2")
		p.WriteByte('(')
		// persistent id ('storage', torch.HalfStorage, key, 'cpu', numel)
		p.WriteByte('(')
		str("storage")
		global("torch", st)
		str(fmt.Sprint(i))
		str("cpu")
		num(info.Numel())
		p.WriteString("tQ") // TUPLE, BINPERSID
		num(0)              // storage offset
		ints(info.Shape)
		stride := make([]int, len(info.Shape))
		s := 1
		for d := len(info.Shape) - 1; d >= 0; d-- {
			stride[d] = s
			s *= info.Shape[d]
		}
		ints(stride)
		p.WriteByte(0x89) // NEWFALSE: requires_grad
		orderedDict()     // backward hooks
		p.WriteString("tR")
	}
	p.WriteByte('u') // SETITEMS of the state dict
	for k, v := range meta {
		str(k)
		num(v)
	}
	p.WriteString("u.") // SETITEMS, STOP

	out, err := os.Create(dst)
	require.NoError(t, err)
	defer out.Close()
	z := zip.NewWriter(out)
	add := func(name string, b []byte) {
		w, err := z.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		require.NoError(t, err)
		_, err = w.Write(b)
		require.NoError(t, err)
	}
	add("archive/data.pkl", p.Bytes())
	add("archive/byteorder", []byte("little"))
	for i, r := range records {
		add(fmt.Sprintf("archive/data/%d", i), r)
	}
	add("archive/version", []byte("3\n"))
	require.NoError(t, z.Close())
}

package pickle

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/tensor"
)

// torchSaveTwoTensors is the data.pkl that
//
//	torch.save({"a": torch.tensor([1., 2.]),
//	            "b": torch.tensor([[1., 2.], [3., 4.]], dtype=torch.float16)}, f)
//
// writes, spelled out opcode by opcode from torch's serialization code and
// CPython's protocol-2 pickler: each tensor is a REDUCE of
// torch._utils._rebuild_tensor_v2 with (storage, offset, size, stride,
// requires_grad, OrderedDict()), the storage a BINPERSID of
// ('storage', torch.<T>Storage, key, 'cpu', numel); every string, tuple and
// global is memoized, and the interned 'storage' and 'cpu', the function and
// OrderedDict are fetched back with BINGET the second time.
const torchSaveTwoTensors = "\x80\x02}q\x00(" +
	"X\x01\x00\x00\x00aq\x01" +
	"ctorch._utils\n_rebuild_tensor_v2\nq\x02" +
	"((X\x07\x00\x00\x00storageq\x03ctorch\nFloatStorage\nq\x04X\x01\x00\x00\x000q\x05X\x03\x00\x00\x00cpuq\x06K\x02tq\x07Q" +
	"K\x00K\x02\x85q\x08K\x01\x85q\t\x89ccollections\nOrderedDict\nq\n)Rq\x0btq\x0cRq\r" +
	"X\x01\x00\x00\x00bq\x0e" +
	"h\x02" +
	"((h\x03ctorch\nHalfStorage\nq\x0fX\x01\x00\x00\x001q\x10h\x06K\x04tq\x11Q" +
	"K\x00K\x02K\x02\x86q\x12K\x02K\x01\x86q\x13\x89h\n)Rq\x14tq\x15Rq\x16" +
	"u."

func openBytes(b []byte, opts Options) (*Checkpoint, error) {
	return OpenReader(bytes.NewReader(b), int64(len(b)), "test.ckpt", opts)
}

func mustOpen(t *testing.T, b []byte, opts Options) *Checkpoint {
	t.Helper()
	c, err := openBytes(b, opts)
	require.NoError(t, err)
	return c
}

func values(t *testing.T, c *Checkpoint, name string) []float32 {
	t.Helper()
	x, err := c.Load(name, tensor.NewCPU())
	require.NoError(t, err)
	v, err := x.Float32s()
	require.NoError(t, err)
	return v
}

func TestTorchSaveBytes(t *testing.T) {
	a := f32Storage("0", 1, 2)
	b := f16Storage("1", 1, 2, 3, 4)
	obj := dct("a", contiguousTensor(a, 2), "b", contiguousTensor(b, 2, 2))
	// The test pickler writes what torch writes...
	require.Equal(t, []byte(torchSaveTwoTensors), dumps(obj))

	// ...and the reader reads it.
	c := mustOpen(t, torchZip(t, "archive", []byte(torchSaveTwoTensors), a, b), Options{})
	require.Equal(t, "zip", c.Format())
	require.Equal(t, []string{"a", "b"}, c.Names())
	info, ok := c.Info("a")
	require.True(t, ok)
	require.Equal(t, safetensors.F32, info.DType)
	require.Equal(t, []int{2}, info.Shape)
	info, ok = c.Info("b")
	require.True(t, ok)
	require.Equal(t, safetensors.F16, info.DType)
	require.Equal(t, []int{2, 2}, info.Shape)
	require.Equal(t, []float32{1, 2}, values(t, c, "a"))
	require.Equal(t, []float32{1, 2, 3, 4}, values(t, c, "b"))

	x, err := c.Load("b", tensor.NewCPU())
	require.NoError(t, err)
	require.Equal(t, tensor.F16, x.DType())
	_, ok = c.Info("c")
	require.False(t, ok)
	_, err = c.Load("c", tensor.NewCPU())
	require.ErrorContains(t, err, `no tensor "c"`)
	require.NoError(t, c.Close())
}

func TestZipLayoutIsAligned(t *testing.T) {
	// The builder aligns records as torch does, so the reader's in-place path
	// is the one exercised by these tests.
	a := f32Storage("0", 1, 2, 3)
	z := torchZip(t, "archive", dumps(dct("a", contiguousTensor(a, 3))), a)
	zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	require.NoError(t, err)
	for _, f := range zr.File {
		off, err := f.DataOffset()
		require.NoError(t, err)
		require.Zero(t, off%64, f.Name)
		require.Equal(t, zip.Store, f.Method)
	}
}

func TestStateDictDTypes(t *testing.T) {
	sts := []*pyStorage{
		f32Storage("0", 1.5, -2, 3.25),
		f16Storage("1", 0.5, -1, 65504),
		bf16Storage("2", 1, -2.5, 256),
		f64Storage("3", 0.125, -7, 1e10),
		intStorage("LongStorage", "4", 8, -3, 0, 1<<40),
		intStorage("IntStorage", "5", 4, -70000, 5, 1),
		intStorage("ShortStorage", "6", 2, -300, 2, 3),
		intStorage("CharStorage", "7", 1, -5, 4, 127),
		intStorage("ByteStorage", "8", 1, 255, 0, 7),
		intStorage("BoolStorage", "9", 1, 1, 0, 1),
	}
	want := []struct {
		name string
		dt   safetensors.DType
		v    []float32
	}{
		{"f32", safetensors.F32, []float32{1.5, -2, 3.25}},
		{"f16", safetensors.F16, []float32{0.5, -1, 65504}},
		{"bf16", safetensors.BF16, []float32{1, -2.5, 256}},
		{"f64", safetensors.F64, []float32{0.125, -7, 1e10}},
		{"i64", safetensors.I64, []float32{-3, 0, 1 << 40}},
		{"i32", safetensors.I32, []float32{-70000, 5, 1}},
		{"i16", safetensors.I16, []float32{-300, 2, 3}},
		{"i8", safetensors.I8, []float32{-5, 4, 127}},
		{"u8", safetensors.U8, []float32{255, 0, 7}},
		{"bool", safetensors.Bool, []float32{1, 0, 1}},
	}
	sd := od()
	for i, w := range want {
		sd.items = append(sd.items, pyItem{w.name, contiguousTensor(sts[i], 3)})
	}
	sd.metadata = od("", dct("version", 1))
	c := mustOpen(t, torchZip(t, "sd-v1-5", dumps(sd), sts...), Options{})
	require.Len(t, c.Names(), len(want))
	for _, w := range want {
		info, ok := c.Info(w.name)
		require.True(t, ok, w.name)
		require.Equal(t, w.dt, info.DType, w.name)
		require.Equal(t, []int{3}, info.Shape, w.name)
		require.Equal(t, w.v, values(t, c, w.name), w.name)
	}
	// BUILD's _metadata is an attribute, not an entry.
	_, ok := c.Info("_metadata")
	require.False(t, ok)
}

func TestStridesAndOffsets(t *testing.T) {
	// A storage holding 0..23.
	vals := make([]float32, 24)
	for i := range vals {
		vals[i] = float32(i)
	}
	st := f32Storage("0", vals...)
	h := f16Storage("1", vals...)
	cases := []struct {
		name         string
		st           *pyStorage
		offset       int
		size, stride []int
	}{
		{"transposed", st, 0, []int{3, 4}, []int{1, 3}}, // a [4,3] tensor's .t()
		{"slice", st, 3, []int{4}, []int{2}},            // x[3::2][:4]
		{"offset_contiguous", st, 5, []int{2, 3}, []int{3, 1}},
		{"permute3d", st, 1, []int{2, 3, 2}, []int{1, 8, 4}}, // permuted, with an offset
		{"broadcast_dim", st, 0, []int{1, 7}, []int{0, 1}},   // arange(7).expand(1, -1): position_ids
		{"row_gaps", st, 2, []int{3, 2}, []int{6, 1}},        // rows with gaps
		{"scalar", st, 9, []int{}, []int{}},
		{"f16_transposed", h, 2, []int{2, 5}, []int{1, 2}},
	}
	sd := od()
	var sts []*pyStorage
	for _, tc := range cases {
		sd.items = append(sd.items, pyItem{tc.name, &pyTensor{st: tc.st, offset: tc.offset, size: tc.size, stride: tc.stride}})
		sts = append(sts, tc.st)
	}
	c := mustOpen(t, torchZip(t, "archive", dumps(dct("state_dict", sd)), sts...), Options{})
	for _, tc := range cases {
		// Expected: element i (row-major over size) is storage[offset + sum(idx*stride)].
		n := 1
		for _, d := range tc.size {
			n *= d
		}
		want := make([]float32, n)
		for i := range n {
			pos, rem := tc.offset, i
			for d := len(tc.size) - 1; d >= 0; d-- {
				pos += (rem % tc.size[d]) * tc.stride[d]
				rem /= tc.size[d]
			}
			want[i] = vals[pos]
		}
		require.Equal(t, want, values(t, c, tc.name), tc.name)
		info, _ := c.Info(tc.name)
		require.Equal(t, tc.size, info.Shape, tc.name)
	}
}

func TestNestedStateDictAndMetadata(t *testing.T) {
	w := f32Storage("0", 1, 2, 3, 4)
	inner := od("model.diffusion_model.w", contiguousTensor(w, 2, 2), "first_stage_model.b", &pyTensor{st: w, offset: 2, size: []int{2}, stride: []int{1}})
	obj := dct("epoch", 6, "global_step", 470000, "pytorch-lightning_version", "1.4.2", "lr", 1e-4, "ok", true,
		"state_dict", dct("state_dict", inner, "note", "inner"))
	c := mustOpen(t, torchZip(t, "archive", dumps(obj), w), Options{})
	require.Equal(t, []string{"first_stage_model.b", "model.diffusion_model.w"}, c.Names())
	require.Equal(t, []float32{3, 4}, values(t, c, "first_stage_model.b"))
	require.Equal(t, map[string]string{
		"epoch": "6", "global_step": "470000", "pytorch-lightning_version": "1.4.2", "lr": "0.0001", "ok": "True", "note": "inner",
	}, c.Metadata())

	// A flat dict with nested containers gets dotted names; scalars are skipped.
	flat := dct("model", dct("w", contiguousTensor(w, 4), "n", 3), "layers", &pyList{items: []any{contiguousTensor(w, 2, 2), nil}}, "step", 5)
	c = mustOpen(t, torchZip(t, "archive", dumps(flat), w), Options{})
	require.Equal(t, []string{"layers.0", "model.w"}, c.Names())
	require.Empty(t, c.Metadata())
}

// lightningCheckpoint is shaped like an SD 1.x .ckpt from PyTorch Lightning.
func lightningCheckpoint(sd any, st ...*pyStorage) (any, []*pyStorage) {
	opt := f32Storage("9", 0.25, 0.5)
	obj := dct(
		"epoch", 6,
		"global_step", 470000,
		"pytorch-lightning_version", "1.4.2",
		"state_dict", sd,
		"callbacks", dct(pyGlobal{"pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint"},
			dct("monitor", nil, "best_model_score", nil, "best_model_path", "/logs/checkpoints/last.ckpt")),
		"optimizer_states", &pyList{items: []any{dct(
			"state", dct(0, dct("step", 10, "exp_avg", contiguousTensor(opt, 2))),
			"param_groups", &pyList{items: []any{dct("lr", 1e-4, "betas", pyTuple{0.9, 0.999}, "params", &pyList{items: []any{0}})}},
		)}},
		"lr_schedulers", &pyList{},
		"hparams", &pyObject{cls: pyGlobal{"argparse", "Namespace"}, state: dct("base_lr", 1e-4, "name", "sd")},
		"np_scalar", &pyReduce{fn: pyGlobal{"numpy.core.multiarray", "scalar"}, args: pyTuple{
			&pyReduce{fn: pyGlobal{"numpy", "dtype"}, args: pyTuple{"f8", false, true}},
			[]byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f},
		}},
		"frozen", &pySet{items: []any{"a", "b"}, frozen: true},
		"size", &pyReduce{fn: pyGlobal{"torch", "Size"}, args: pyTuple{pyTuple{2, 3}}},
	)
	return obj, append(st, opt)
}

func TestLightningCheckpointStrictAndLenient(t *testing.T) {
	w := f16Storage("0", 1, 2, 3, 4)
	sd := od("model.w", &pyTensor{st: w, size: []int{2, 2}, stride: []int{2, 1}, param: true})
	obj, sts := lightningCheckpoint(sd, w)
	file := torchZip(t, "archive", dumps(obj), sts...)

	_, err := openBytes(file, Options{})
	require.ErrorIs(t, err, ErrRefused)
	require.ErrorContains(t, err, "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint")
	require.ErrorContains(t, err, "test.ckpt")
	require.ErrorContains(t, err, "archive/data.pkl")

	c := mustOpen(t, file, Options{Lenient: true})
	require.Equal(t, []string{"model.w"}, c.Names())
	require.Equal(t, []float32{1, 2, 3, 4}, values(t, c, "model.w"))
	require.Equal(t, "470000", c.Metadata()["global_step"])
	require.Equal(t, "1.4.2", c.Metadata()["pytorch-lightning_version"])

	// A placeholder inside the state dict is an error even in lenient mode.
	bad := od("model.w", contiguousTensor(w, 4), "model.obj", &pyObject{cls: pyGlobal{"mymodule", "Thing"}, state: dct("x", 1)})
	obj, sts = lightningCheckpoint(bad, w)
	_, err = openBytes(torchZip(t, "archive", dumps(obj), sts...), Options{Lenient: true})
	require.ErrorIs(t, err, ErrRefused)
	require.ErrorContains(t, err, `"model.obj"`)
	require.ErrorContains(t, err, "mymodule.Thing")

	// So is a state dict that is itself an object (a pickled nn.Module).
	obj, sts = lightningCheckpoint(&pyObject{cls: pyGlobal{"ldm.models.diffusion.ddpm", "LatentDiffusion"}}, w)
	_, err = openBytes(torchZip(t, "archive", dumps(obj), sts...), Options{Lenient: true})
	require.ErrorIs(t, err, ErrRefused)
	require.ErrorContains(t, err, "ldm.models.diffusion.ddpm.LatentDiffusion")
}

func TestOtherRebuildFunctions(t *testing.T) {
	h := f16Storage("0", 1, 2, 3, 4, 5, 6)
	raw := &pyStorage{typ: "UntypedStorage", key: "1", numel: 12, data: h.data} // same bytes, untyped
	f8 := &pyStorage{typ: "UntypedStorage", key: "2", numel: 4, data: []byte{0x38, 0x40, 0x44, 0x48}}
	shared := contiguousTensor(h, 6)
	sd := od(
		"param", &pyTensor{st: h, size: []int{3}, stride: []int{1}, param: true},
		"with_state", &pyTensor{st: h, offset: 3, size: []int{3}, stride: []int{1}, withState: true},
		"v3", &pyTensor{st: raw, offset: 1, size: []int{2, 2}, stride: []int{1, 2}, v3dtype: "float16"},
		"f8", &pyTensor{st: f8, size: []int{4}, stride: []int{1}, v3dtype: "float8_e4m3fn"},
		"tied.a", shared,
		"tied.b", shared,
	)
	c := mustOpen(t, torchZip(t, "archive", dumps(sd), h, raw, f8), Options{})
	require.Equal(t, []float32{1, 2, 3}, values(t, c, "param"))
	require.Equal(t, []float32{4, 5, 6}, values(t, c, "with_state"))
	require.Equal(t, []float32{2, 4, 3, 5}, values(t, c, "v3"))
	require.Equal(t, values(t, c, "tied.a"), values(t, c, "tied.b"))
	info, _ := c.Info("v3")
	require.Equal(t, safetensors.F16, info.DType)
	info, _ = c.Info("f8")
	require.Equal(t, safetensors.F8E4M3, info.DType)
	require.Equal(t, []int{4}, info.Shape)
	_, err := c.Load("f8", tensor.NewCPU())
	require.ErrorContains(t, err, `tensor "f8"`)
	require.ErrorContains(t, err, "F8_E4M3")
}

func TestDeflatedAndBigEndian(t *testing.T) {
	a := f32Storage("0", 1, -2, 3, 4.5)
	pkl := dumps(od("w", &pyTensor{st: a, offset: 1, size: []int{3}, stride: []int{1}}))
	z := buildZip(t, []zipEntry{
		{name: "x/data.pkl", data: pkl, deflate: true},
		{name: "x/data/0", data: a.data, deflate: true},
	})
	c := mustOpen(t, z, Options{})
	require.Equal(t, []float32{-2, 3, 4.5}, values(t, c, "w"))

	// byteorder "big": storages hold big-endian elements.
	be := make([]byte, len(a.data))
	for i := 0; i < len(be); i += 4 {
		binary.BigEndian.PutUint32(be[i:], binary.LittleEndian.Uint32(a.data[i:]))
	}
	z = buildZip(t, []zipEntry{{name: "x/data.pkl", data: pkl}, {name: "x/byteorder", data: []byte("big")}, {name: "x/data/0", data: be}})
	c = mustOpen(t, z, Options{})
	require.Equal(t, []float32{-2, 3, 4.5}, values(t, c, "w"))

	z = buildZip(t, []zipEntry{{name: "x/data.pkl", data: pkl}, {name: "x/byteorder", data: []byte("middle")}, {name: "x/data/0", data: a.data}})
	_, err := openBytes(z, Options{})
	require.ErrorIs(t, err, ErrFormat)
	require.ErrorContains(t, err, "x/byteorder")
}

func TestStorageBounds(t *testing.T) {
	a := f32Storage("0", 1, 2)
	cases := map[string]struct {
		tensor *pyTensor
		st     *pyStorage // what the archive holds
		want   string
	}{
		"tensor longer than storage": {&pyTensor{st: a, size: []int{3}, stride: []int{1}}, a, `storage "0"`},
		"offset past the end":        {&pyTensor{st: a, offset: 2, size: []int{1}, stride: []int{1}}, a, "needs more than the 2 F32 elements"},
		"stride past the end":        {&pyTensor{st: a, size: []int{2, 2}, stride: []int{2, 1}}, a, "needs more"},
		"huge size":                  {&pyTensor{st: a, size: []int{1 << 40, 1 << 40}, stride: []int{1 << 40, 1}}, a, "test.ckpt"},
		"huge stride":                {&pyTensor{st: a, size: []int{2}, stride: []int{math.MaxInt64}}, a, "needs more"},
		"negative stride":            {&pyTensor{st: a, size: []int{2}, stride: []int{-1}}, a, "negative"},
		"record shorter than declared": {contiguousTensor(&pyStorage{typ: "FloatStorage", key: "0", numel: 10}, 2),
			&pyStorage{typ: "FloatStorage", key: "0", data: a.data}, "declares 40 bytes of F32 but archive/data/0 holds 8"},
		"missing record": {contiguousTensor(&pyStorage{typ: "FloatStorage", key: "7", numel: 2}, 2), a, `storage "7" has no record archive/data/7`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := openBytes(torchZip(t, "archive", dumps(od("w", tc.tensor)), tc.st), Options{})
			require.ErrorIs(t, err, ErrFormat)
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, "test.ckpt")
		})
	}

	// An expanded view (stride 0) of more elements than its storage opens, but
	// is refused when loaded rather than materialised.
	c := mustOpen(t, torchZip(t, "archive", dumps(od("w", &pyTensor{st: a, size: []int{2, 1000}, stride: []int{1, 0}})), a), Options{})
	info, _ := c.Info("w")
	require.Equal(t, []int{2, 1000}, info.Shape)
	_, err := c.Load("w", tensor.NewCPU())
	require.ErrorIs(t, err, ErrFormat)
	require.ErrorContains(t, err, "expanded")
}

func TestLegacyFormat(t *testing.T) {
	root := f32Storage("94001", 0, 1, 2, 3, 4, 5)
	view := &pyStorage{typ: "FloatStorage", key: "94001", numel: 6, view: pyTuple{"94002", 2, 3}}
	h := f16Storage("94010", 1, 2, 3, 4)
	sd := od("w", contiguousTensor(root, 2, 3), "v", contiguousTensor(view, 3), "h", &pyTensor{st: h, size: []int{2, 2}, stride: []int{1, 2}})
	sd.metadata = od("", dct("version", 1))
	file := legacyFile(dct("state_dict", sd, "epoch", 3), root, h)
	c := mustOpen(t, file, Options{})
	require.Equal(t, "legacy", c.Format())
	require.Equal(t, []string{"h", "v", "w"}, c.Names())
	require.Equal(t, []float32{0, 1, 2, 3, 4, 5}, values(t, c, "w"))
	require.Equal(t, []float32{2, 3, 4}, values(t, c, "v"))
	require.Equal(t, []float32{1, 3, 2, 4}, values(t, c, "h"))
	require.Equal(t, map[string]string{"epoch": "3"}, c.Metadata())

	// Every truncation is an error, never a panic.
	for n := 0; n < len(file); n++ {
		_, err := openBytes(file[:n], Options{})
		require.Error(t, err, "truncated to %d bytes", n)
	}

	// A storage whose size header disagrees with its persistent id.
	bad := bytes.Clone(file)
	i := bytes.LastIndex(bad, h.data) - 8
	binary.LittleEndian.PutUint64(bad[i:], 5)
	_, err := openBytes(bad, Options{})
	require.ErrorIs(t, err, ErrFormat)
	require.ErrorContains(t, err, `storage "94010" holds 5 elements`)

	// Not the magic number.
	_, err = openBytes(append([]byte{opProto, 2, opBinInt1, 5, opStop}, file[15:]...), Options{})
	require.ErrorIs(t, err, ErrFormat)
	require.ErrorContains(t, err, "magic number")

	// A listed key that no tensor uses.
	other := legacyFile(dct("w", contiguousTensor(root, 6)), root, h)
	_, err = openBytes(other, Options{})
	require.ErrorContains(t, err, `storage "94010" is listed but no tensor uses it`)
}

func TestMaliciousPickles(t *testing.T) {
	cases := map[string]struct {
		pkl  []byte
		name string
	}{
		"os.system":            {dumps(&pyReduce{fn: pyGlobal{"os", "system"}, args: pyTuple{"echo pwned"}}), "os.system"},
		"posix.system":         {[]byte("cposix\nsystem\n(S'echo pwned'\ntR."), "posix.system"},
		"builtins.eval":        {dumps(&pyReduce{fn: pyGlobal{"builtins", "eval"}, args: pyTuple{"print(1)"}}), "builtins.eval"},
		"builtins.exec":        {[]byte("c__builtin__\nexec\n(Vimport os\ntR."), "builtins.exec"},
		"getattr gadget":       {[]byte("\x80\x02c__builtin__\ngetattr\nq\x00."), "builtins.getattr"},
		"subprocess.Popen":     {[]byte("\x80\x04\x95\x21\x00\x00\x00\x00\x00\x00\x00\x8c\nsubprocess\x94\x8c\x05Popen\x94\x93\x94\x8c\x02ls\x94\x85\x94R\x94."), "subprocess.Popen"},
		"INST os.system":       {[]byte("(S'id'\nios\nsystem\n."), "os.system"},
		"nested in state dict": {dumps(dct("state_dict", dct("w", &pyReduce{fn: pyGlobal{"os", "system"}, args: pyTuple{"rm -rf /"}}))), "os.system"},
		"torch.load":           {dumps(&pyReduce{fn: pyGlobal{"torch", "load"}, args: pyTuple{"other.pt"}}), "torch.load"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			for _, lenient := range []bool{false, true} {
				_, err := newUnpickler(&bytesInput{b: tc.pkl}, lenient, nil).load()
				if name == "torch.load" && lenient {
					// Unknown (not known-dangerous): a placeholder, never called.
					require.NoError(t, err)
					continue
				}
				require.ErrorIs(t, err, ErrRefused, "lenient=%v", lenient)
				require.ErrorContains(t, err, tc.name)
			}
			// Through a whole checkpoint, too.
			_, err := openBytes(torchZip(t, "archive", tc.pkl), Options{})
			require.ErrorIs(t, err, ErrRefused)
			require.ErrorContains(t, err, tc.name)
		})
	}
	// torch.load as a value in the state dict is refused by name in lenient mode.
	_, err := openBytes(torchZip(t, "archive", dumps(dct("w", &pyReduce{fn: pyGlobal{"torch", "load"}, args: pyTuple{"x"}}))), Options{Lenient: true})
	require.ErrorIs(t, err, ErrRefused)
	require.ErrorContains(t, err, "torch.load")
}

func TestOpenErrors(t *testing.T) {
	tarHeader := make([]byte, 1024)
	copy(tarHeader, "storages")
	copy(tarHeader[257:], "ustar")
	a := f32Storage("0", 1)
	cases := map[string]struct {
		file []byte
		want string
	}{
		"empty":        {nil, "neither"},
		"text":         {[]byte("hello, world"), "neither"},
		"safetensors":  {[]byte("\x10\x00\x00\x00\x00\x00\x00\x00{\"__metadata__\":{}}"), "safetensors"},
		"tar":          {tarHeader, "tar archive"},
		"bare pickle":  {dumps(dct("a", 1)), "not torch's magic number"},
		"no data.pkl":  {buildZip(t, []zipEntry{{name: "archive/data/0", data: a.data}}), "without <folder>/data.pkl"},
		"two pickles":  {buildZip(t, []zipEntry{{name: "a/data.pkl", data: dumps(dct())}, {name: "b/data.pkl", data: dumps(dct())}}), "two pickles"},
		"torchscript":  {buildZip(t, []zipEntry{{name: "m/data.pkl", data: dumps(dct())}, {name: "m/constants.pkl", data: dumps(pyTuple{})}}), "TorchScript"},
		"list at top":  {torchZip(t, "archive", dumps(&pyList{items: []any{contiguousTensor(a, 1)}}), a), "the checkpoint is a list"},
		"bad state":    {torchZip(t, "archive", dumps(dct("state_dict", &pyList{})), a), `"state_dict" entry is a list`},
		"broken zip":   {[]byte("PK\x03\x04 this is not a zip"), "not a readable zip"},
		"bad key type": {torchZip(t, "archive", dumps(dct("w", dct(1.5, contiguousTensor(a, 1)))), a), `state dict key under "w" is a float`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := openBytes(tc.file, Options{Lenient: true})
			require.ErrorIs(t, err, ErrFormat)
			require.ErrorContains(t, err, "test.ckpt")
			require.ErrorContains(t, err, tc.want)
		})
	}
	_, err := Open(filepath.Join(t.TempDir(), "missing.ckpt"), Options{})
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestOpenFileAndConcurrentLoads(t *testing.T) {
	vals := make([]float32, 64)
	for i := range vals {
		vals[i] = float32(i) / 8
	}
	var sts []*pyStorage
	sd := od()
	for i := range 8 {
		st := f16Storage(string(rune('0'+i)), vals...)
		sts = append(sts, st)
		sd.items = append(sd.items, pyItem{string(rune('a' + i)), &pyTensor{st: st, offset: i, size: []int{4, 8}, stride: []int{1, 4}}})
	}
	path := filepath.Join(t.TempDir(), "model.ckpt")
	require.NoError(t, os.WriteFile(path, torchZip(t, "model", dumps(dct("state_dict", sd)), sts...), 0o644))
	c, err := Open(path, Options{})
	require.NoError(t, err)
	want := map[string][]float32{}
	for _, n := range c.Names() {
		want[n] = values(t, c, n)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, n := range c.Names() {
				x, err := c.Load(n, tensor.NewCPU())
				if err != nil {
					errs <- err
					return
				}
				v, err := x.Float32s()
				if err != nil {
					errs <- err
					return
				}
				if !slicesEqual(v, want[n]) {
					errs <- os.ErrInvalid
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, c.Close())
	_, err = c.Load("a", tensor.NewCPU())
	require.Error(t, err) // the file is closed
}

func slicesEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestUnknownStorageType(t *testing.T) {
	c64 := &pyStorage{typ: "ComplexFloatStorage", key: "5", numel: 2, data: make([]byte, 16)}
	a := f32Storage("0", 1, 2)
	extra := dct("state_dict", od("w", contiguousTensor(a, 2)), "spectrum", contiguousTensor(c64, 2))
	file := torchZip(t, "archive", dumps(extra), a, c64)
	_, err := openBytes(file, Options{})
	require.ErrorIs(t, err, ErrRefused)
	require.ErrorContains(t, err, "torch.ComplexFloatStorage")
	c := mustOpen(t, file, Options{Lenient: true})
	require.Equal(t, []string{"w"}, c.Names())

	inside := od("w", contiguousTensor(a, 2), "z", contiguousTensor(c64, 2))
	_, err = openBytes(torchZip(t, "archive", dumps(inside), a, c64), Options{Lenient: true})
	require.ErrorIs(t, err, ErrRefused)
	require.ErrorContains(t, err, `state dict entry "z" is object made by torch.ComplexFloatStorage`)
}

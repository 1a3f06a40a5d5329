package pickle

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/x448/float16"
)

// This file holds a small pickler that writes what CPython's pickler writes at
// protocol 2 (torch.save's default) for the objects torch.save meets in a
// checkpoint, and builders for torch's zip and legacy layouts. Python objects
// are modelled by the py* types below.

type (
	pyTuple []any
	pyList  struct{ items []any }
	pyDict  struct{ items []pyItem } // a plain dict, in insertion order
	pyItem  struct{ k, v any }
	// pyODict is a collections.OrderedDict; with metadata, it carries the
	// _metadata attribute that nn.Module.state_dict() sets.
	pyODict struct {
		items    []pyItem
		metadata *pyODict
	}
	pySet struct {
		items  []any
		frozen bool
	}
	// pyGlobal is a reference to a class or function.
	pyGlobal struct{ module, name string }
	// pyObject is an instance of a plain class: NEWOBJ, then BUILD with its state.
	pyObject struct {
		cls   pyGlobal
		state any
	}
	// pyReduce is an arbitrary call: fn(*args).
	pyReduce struct {
		fn   any
		args pyTuple
	}
	// pyStorage is a torch storage: its class name ("FloatStorage"), key,
	// element count and bytes.
	pyStorage struct {
		typ   string
		key   string
		numel int
		data  []byte
		// legacy view metadata: (view key, offset, size), or nil
		view pyTuple
	}
	// pyTensor is a tensor as torch.save reduces it.
	pyTensor struct {
		st             *pyStorage
		offset         int
		size, stride   []int
		param          bool   // an nn.Parameter: wrapped in _rebuild_parameter
		v3dtype        string // set: _rebuild_tensor_v3 with this torch dtype, over an untyped storage
		withState      bool   // _rebuild_from_type_v2 (a tensor with Python attributes)
		requiresGrad   bool
		legacyPersisID bool // 6-field persistent ids of the legacy format
	}
)

func od(kv ...any) *pyODict {
	d := &pyODict{}
	for i := 0; i < len(kv); i += 2 {
		d.items = append(d.items, pyItem{kv[i], kv[i+1]})
	}
	return d
}

func dct(kv ...any) *pyDict {
	d := &pyDict{}
	for i := 0; i < len(kv); i += 2 {
		d.items = append(d.items, pyItem{kv[i], kv[i+1]})
	}
	return d
}

// pyWriter pickles py* values. Like CPython it memoizes every container,
// string and global (BINPUT) and refers to them again with BINGET; strings
// are memoized by value, as the interned literals torch uses ("storage",
// "cpu") are.
type pyWriter struct {
	buf    bytes.Buffer
	memo   map[any]int
	legacy bool // persistent ids in the legacy (6-field) form
}

func newPyWriter() *pyWriter { return &pyWriter{memo: map[any]int{}} }

// dumps pickles v at protocol 2, as pickle.dumps(v, 2) with torch's
// persistent_id.
func dumps(v any) []byte {
	w := newPyWriter()
	w.dump(v)
	return w.buf.Bytes()
}

func (w *pyWriter) dump(v any) {
	w.buf.Write([]byte{opProto, 2})
	w.save(v)
	w.buf.WriteByte(opStop)
}

func (w *pyWriter) memoize(key any) {
	i := len(w.memo)
	if key == nil {
		key = new(int) // a fresh identity that is never looked up again
	}
	w.memo[key] = i
	if i < 256 {
		w.buf.Write([]byte{opBinPut, byte(i)})
	} else {
		w.buf.WriteByte(opLongBinPut)
		binary.Write(&w.buf, binary.LittleEndian, uint32(i))
	}
}

func (w *pyWriter) get(i int) {
	if i < 256 {
		w.buf.Write([]byte{opBinGet, byte(i)})
	} else {
		w.buf.WriteByte(opLongBinGet)
		binary.Write(&w.buf, binary.LittleEndian, uint32(i))
	}
}

func (w *pyWriter) int(n int) {
	switch {
	case n >= 0 && n <= 0xff:
		w.buf.Write([]byte{opBinInt1, byte(n)})
	case n >= 0 && n <= 0xffff:
		w.buf.Write([]byte{opBinInt2, byte(n), byte(n >> 8)})
	case n >= math.MinInt32 && n <= math.MaxInt32:
		w.buf.WriteByte(opBinInt)
		binary.Write(&w.buf, binary.LittleEndian, int32(n))
	default:
		// LONG1: the shortest little-endian two's complement.
		var b []byte
		for v := int64(n); ; v >>= 8 {
			b = append(b, byte(v))
			if (v >= -128 && v < 128) && (v>>7 == 0 || v>>7 == -1) {
				break
			}
		}
		w.buf.Write([]byte{opLong1, byte(len(b))})
		w.buf.Write(b)
	}
}

func (w *pyWriter) str(s string) {
	w.buf.WriteByte(opBinUnicode)
	binary.Write(&w.buf, binary.LittleEndian, uint32(len(s)))
	w.buf.WriteString(s)
}

func (w *pyWriter) global(g pyGlobal) {
	if i, ok := w.memo[g]; ok {
		w.get(i)
		return
	}
	mod := g.module
	if mod == "builtins" { // protocol 2 writes Python 2 names
		mod = "__builtin__"
	}
	fmt.Fprintf(&w.buf, "c%s\n%s\n", mod, g.name)
	w.memoize(g)
}

// tuple writes a tuple as save_tuple does; items are saved by the caller's fn.
func (w *pyWriter) tuple(t pyTuple) {
	if len(t) == 0 {
		w.buf.WriteByte(opEmptyTuple)
		return
	}
	if len(t) > 3 {
		w.buf.WriteByte(opMark)
	}
	for _, it := range t {
		w.save(it)
	}
	if len(t) <= 3 {
		w.buf.WriteByte(opTuple1 + byte(len(t)-1))
	} else {
		w.buf.WriteByte(opTuple)
	}
	w.memoize(nil)
}

// setitems writes dict items as batch_dict does: one item with SETITEM, more
// in MARK ... SETITEMS batches of 1000.
func (w *pyWriter) setitems(items []pyItem) {
	if len(items) == 1 {
		w.save(items[0].k)
		w.save(items[0].v)
		w.buf.WriteByte(opSetItem)
		return
	}
	for len(items) > 0 {
		n := min(len(items), 1000)
		w.buf.WriteByte(opMark)
		for _, it := range items[:n] {
			w.save(it.k)
			w.save(it.v)
		}
		w.buf.WriteByte(opSetItems)
		items = items[n:]
	}
}

func (w *pyWriter) appends(items []any) {
	if len(items) == 1 {
		w.save(items[0])
		w.buf.WriteByte(opAppend)
		return
	}
	for len(items) > 0 {
		n := min(len(items), 1000)
		w.buf.WriteByte(opMark)
		for _, it := range items[:n] {
			w.save(it)
		}
		w.buf.WriteByte(opAppends)
		items = items[n:]
	}
}

func (w *pyWriter) save(v any) {
	switch v.(type) {
	case *pyList, *pyDict, *pyODict, *pySet, *pyObject, *pyReduce, *pyTensor:
		if i, ok := w.memo[v]; ok { // the same object again
			w.get(i)
			return
		}
	}
	switch v := v.(type) {
	case nil:
		w.buf.WriteByte(opNone)
	case bool:
		if v {
			w.buf.WriteByte(opNewTrue)
		} else {
			w.buf.WriteByte(opNewFalse)
		}
	case int:
		w.int(v)
	case float64:
		w.buf.WriteByte(opBinFloat)
		binary.Write(&w.buf, binary.BigEndian, v)
	case string:
		if i, ok := w.memo[v]; ok {
			w.get(i)
			return
		}
		w.str(v)
		w.memoize(v)
	case []byte:
		// Protocol 2 has no bytes opcode: save_bytes writes a call.
		if len(v) == 0 {
			w.global(pyGlobal{"builtins", "bytes"})
			w.buf.WriteByte(opEmptyTuple)
		} else {
			w.global(pyGlobal{"_codecs", "encode"})
			runes := make([]rune, len(v))
			for i, c := range v {
				runes[i] = rune(c)
			}
			w.tuple(pyTuple{string(runes), "latin1"})
		}
		w.buf.WriteByte(opReduce)
		w.memoize(nil)
	case pyTuple:
		w.tuple(v)
	case *pyList:
		w.buf.WriteByte(opEmptyList)
		w.memoize(v)
		if len(v.items) > 0 {
			w.appends(v.items)
		}
	case *pyDict:
		w.buf.WriteByte(opEmptyDict)
		w.memoize(v)
		if len(v.items) > 0 {
			w.setitems(v.items)
		}
	case *pyODict:
		// OrderedDict.__reduce__: (OrderedDict, (), state, None, iter(items)).
		w.global(pyGlobal{"collections", "OrderedDict"})
		w.buf.WriteByte(opEmptyTuple)
		w.buf.WriteByte(opReduce)
		w.memoize(v)
		if len(v.items) > 0 {
			w.setitems(v.items)
		}
		if v.metadata != nil {
			w.save(dct("_metadata", v.metadata))
			w.buf.WriteByte(opBuild)
		}
	case *pySet:
		// save_set below protocol 4: (set, (list(items),)).
		name := "set"
		if v.frozen {
			name = "frozenset"
		}
		w.global(pyGlobal{"builtins", name})
		w.tuple(pyTuple{&pyList{items: v.items}})
		w.buf.WriteByte(opReduce)
		w.memoize(v)
	case pyGlobal:
		w.global(v)
	case *pyObject:
		// copyreg.__reduce_ex__ at protocol 2: cls.__new__(cls), then BUILD.
		w.global(v.cls)
		w.buf.WriteByte(opEmptyTuple)
		w.buf.WriteByte(opNewObj)
		w.memoize(v)
		if v.state != nil {
			w.save(v.state)
			w.buf.WriteByte(opBuild)
		}
	case *pyReduce:
		w.save(v.fn)
		w.tuple(v.args)
		w.buf.WriteByte(opReduce)
		w.memoize(v)
	case *pyStorage:
		// torch's persistent_id; the storage itself is not memoized.
		typ := pyGlobal{"torch", v.typ}
		pid := pyTuple{"storage", typ, v.key, "cpu", v.numel}
		if w.legacy {
			var view any
			if v.view != nil {
				view = v.view
			}
			pid = append(pid, view)
		}
		w.tuple(pid)
		w.buf.WriteByte(opBinPersID)
	case *pyTensor:
		w.tensor(v)
	default:
		panic(fmt.Sprintf("pyWriter: cannot save %T", v))
	}
}

func (w *pyWriter) tensor(t *pyTensor) {
	if t.param {
		// Parameter.__reduce_ex__: (_rebuild_parameter, (data, requires_grad, OrderedDict())).
		w.global(pyGlobal{"torch._utils", "_rebuild_parameter"})
		inner := *t
		inner.param = false
		w.tuple(pyTuple{&inner, true, od()})
		w.buf.WriteByte(opReduce)
		w.memoize(t)
		return
	}
	size := make(pyTuple, len(t.size))
	for i, s := range t.size {
		size[i] = s
	}
	stride := make(pyTuple, len(t.stride))
	for i, s := range t.stride {
		stride[i] = s
	}
	fn := pyGlobal{"torch._utils", "_rebuild_tensor_v2"}
	args := pyTuple{t.st, t.offset, size, stride, t.requiresGrad, od()}
	if t.v3dtype != "" {
		fn = pyGlobal{"torch._utils", "_rebuild_tensor_v3"}
		args = append(args, pyGlobal{"torch", t.v3dtype})
	}
	if t.withState {
		// Tensor.__reduce_ex__ with Python state: (_rebuild_from_type_v2, (func, type, args, state)).
		w.global(pyGlobal{"torch._tensor", "_rebuild_from_type_v2"})
		w.tuple(pyTuple{fn, pyGlobal{"torch", "Tensor"}, args, dct("note", "x")})
	} else {
		w.global(fn)
		w.tuple(args)
	}
	w.buf.WriteByte(opReduce)
	w.memoize(t)
}

// zipEntry is one record of a zip archive.
type zipEntry struct {
	name    string
	data    []byte
	deflate bool
}

// buildZip writes entries as torch's PyTorchFileWriter does: stored, with the
// data of each record aligned to 64 bytes by an "FB" extra field; entries
// marked deflate are compressed instead (as a re-zipped checkpoint may be).
func buildZip(t testing.TB, entries []zipEntry) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		if e.deflate {
			fw, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Deflate})
			require.NoError(t, err)
			_, err = fw.Write(e.data)
			require.NoError(t, err)
			continue
		}
		require.NoError(t, zw.Flush())
		pad := (64 - (buf.Len()+30+len(e.name)+4)%64) % 64
		extra := make([]byte, 4+pad)
		copy(extra, "FB")
		binary.LittleEndian.PutUint16(extra[2:], uint16(pad))
		for i := 4; i < len(extra); i++ {
			extra[i] = 'Z'
		}
		fw, err := zw.CreateRaw(&zip.FileHeader{
			Name: e.name, Method: zip.Store, Extra: extra,
			CRC32:              crc32.ChecksumIEEE(e.data),
			CompressedSize64:   uint64(len(e.data)),
			UncompressedSize64: uint64(len(e.data)),
		})
		require.NoError(t, err)
		_, err = fw.Write(e.data)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// torchZip lays out a checkpoint as torch.save does: <folder>/data.pkl,
// <folder>/byteorder, <folder>/data/<key> in key order, <folder>/version.
func torchZip(t testing.TB, folder string, pkl []byte, storages ...*pyStorage) []byte {
	entries := []zipEntry{{name: folder + "/data.pkl", data: pkl}, {name: folder + "/byteorder", data: []byte("little")}}
	sorted := slices.Clone(storages)
	slices.SortFunc(sorted, func(a, b *pyStorage) int { return compareStrings(a.key, b.key) })
	for _, s := range slices.CompactFunc(sorted, func(a, b *pyStorage) bool { return a.key == b.key }) {
		entries = append(entries, zipEntry{name: folder + "/data/" + s.key, data: s.data})
	}
	entries = append(entries, zipEntry{name: folder + "/version", data: []byte("3\n")},
		zipEntry{name: folder + "/.data/serialization_id", data: []byte("1234567890123456789012345678901234567890")})
	return buildZip(t, entries)
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// legacyFile lays out a checkpoint as torch's _legacy_save does.
func legacyFile(obj any, storages ...*pyStorage) []byte {
	var out bytes.Buffer
	// MAGIC_NUMBER as LONG1 (10 bytes), PROTOCOL_VERSION as BININT2.
	out.Write([]byte{opProto, 2, opLong1, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, opStop})
	out.Write([]byte{opProto, 2, opBinInt2, 0xe9, 0x03, opStop})
	out.Write(dumps(dct("protocol_version", 1001, "little_endian", true,
		"type_sizes", dct("short", 2, "int", 4, "long", 8))))
	w := newPyWriter()
	w.legacy = true
	w.dump(obj)
	out.Write(w.buf.Bytes())
	var keys []any
	seen := map[string]bool{}
	sorted := slices.Clone(storages)
	slices.SortFunc(sorted, func(a, b *pyStorage) int { return compareStrings(a.key, b.key) })
	for _, s := range sorted {
		if !seen[s.key] {
			seen[s.key] = true
			keys = append(keys, s.key)
		}
	}
	out.Write(dumps(&pyList{items: keys}))
	for _, s := range sorted {
		if !seen[s.key] {
			continue
		}
		delete(seen, s.key)
		binary.Write(&out, binary.LittleEndian, int64(s.numel))
		out.Write(s.data)
	}
	return out.Bytes()
}

// Storage constructors: the bytes torch writes for each dtype.

func f32Storage(key string, v ...float32) *pyStorage {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return &pyStorage{typ: "FloatStorage", key: key, numel: len(v), data: b}
}

func f16Storage(key string, v ...float32) *pyStorage {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], float16.Fromfloat32(x).Bits())
	}
	return &pyStorage{typ: "HalfStorage", key: key, numel: len(v), data: b}
}

func bf16Storage(key string, v ...float32) *pyStorage {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(math.Float32bits(x)>>16))
	}
	return &pyStorage{typ: "BFloat16Storage", key: key, numel: len(v), data: b}
}

func f64Storage(key string, v ...float64) *pyStorage {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return &pyStorage{typ: "DoubleStorage", key: key, numel: len(v), data: b}
}

func intStorage(typ, key string, size int, v ...int64) *pyStorage {
	b := make([]byte, size*len(v))
	for i, x := range v {
		for k := 0; k < size; k++ {
			b[size*i+k] = byte(uint64(x) >> (8 * k))
		}
	}
	return &pyStorage{typ: typ, key: key, numel: len(v), data: b}
}

// contiguousTensor views a whole storage with the given shape.
func contiguousTensor(st *pyStorage, shape ...int) *pyTensor {
	stride := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		stride[i] = s
		s *= shape[i]
	}
	return &pyTensor{st: st, size: shape, stride: stride}
}

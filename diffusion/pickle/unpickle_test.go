package pickle

import (
	"bytes"
	"encoding/binary"
	"math/big"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func unpickle(b []byte, lenient bool) (any, error) {
	return newUnpickler(&bytesInput{b: b}, lenient, nil).load()
}

// plain converts unpickled values to Go values that compare with
// require.Equal: dicts to maps, tuples and lists to slices, big ints to their
// decimal text.
func plain(v any) any {
	switch v := v.(type) {
	case tuple:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = plain(x)
		}
		return out
	case *list:
		return plain(tuple(v.items))
	case *dict:
		m := map[any]any{}
		for i, k := range v.keys {
			m[k] = plain(v.vals[i])
		}
		return m
	case *set:
		return map[string]any{"frozen": v.frozen, "items": plain(tuple(v.items))}
	case *big.Int:
		return v.String()
	}
	return v
}

func cat(parts ...string) []byte { return []byte(strings.Join(parts, "")) }

func le64(n int) string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(n))
	return string(b[:])
}

func TestProtocol0(t *testing.T) {
	// What pickle.dumps(obj, protocol=0) writes for
	// {"name": "value", "n": 42, "f": 1.5, "l": [True, None, 123456789012345678901234567890],
	//  "t": (1, -2), "s": b"it's A" (Python 2 str), "u": "caf\xe9 \u20ac"}.
	p := "(dp0\nVname\np1\nVvalue\np2\nsVn\np3\nI42\nsVf\np4\nF1.5\ns" +
		"Vl\np5\n(lp6\nI01\naNaL123456789012345678901234567890L\nas" +
		"Vt\np7\n(I1\nI-2\ntp8\ns" +
		"Vs\np9\nS'it\\'s \\x41'\np10\ns" +
		"Vu\np11\nVcaf\xe9 \\u20ac\np12\ns" +
		"Vagain\np13\ng8\ns."
	v, err := unpickle([]byte(p), false)
	require.NoError(t, err)
	require.Equal(t, map[any]any{
		"name": "value", "n": int64(42), "f": 1.5,
		"l":     []any{true, nil, "123456789012345678901234567890"},
		"t":     []any{int64(1), int64(-2)},
		"s":     "it's A",
		"u":     "café €",
		"again": []any{int64(1), int64(-2)},
	}, plain(v))
}

func TestProtocol4(t *testing.T) {
	body := cat(
		"}\x94(",
		"\x8c\x01a\x94", "\x8f\x94(K\x01K\x02\x90", // 'a': {1, 2}
		"\x8c\x01b\x94", "(K\x03\x91\x94", // 'b': frozenset({3})
		"\x8c\x01c\x94", "C\x02hi\x94", // 'c': b'hi'
		"\x8c\x01d\x94", "\x8d"+le64(3)+"xyz\x94", // 'd': 'xyz' (BINUNICODE8)
		"\x8c\x01e\x94", "\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)\x81\x94\x8c\x01k\x94\x88s", // 'e': OrderedDict(k=True) by NEWOBJ
		"\x8c\x01f\x94", "\x96"+le64(1)+"z\x94", // 'f': bytearray(b'z')
		"\x8c\x01g\x94", "h\x01", // 'g': memo 1 = 'a'
		"\x8c\x01h\x94", "\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01", // 'h': 2**64 (LONG1)
		"\x8c\x01i\x94", "\x8a\x02\x00\xff", // 'i': -256
		"\x8c\x01j\x94", "G\x3f\xf8\x00\x00\x00\x00\x00\x00", // 'j': 1.5
		"u.")
	p := cat("\x80\x04\x95", le64(len(body)), string(body))
	v, err := unpickle(p, false)
	require.NoError(t, err)
	require.Equal(t, map[any]any{
		"a": map[string]any{"frozen": false, "items": []any{int64(1), int64(2)}},
		"b": map[string]any{"frozen": true, "items": []any{int64(3)}},
		"c": []byte("hi"),
		"d": "xyz",
		"e": map[any]any{"k": true},
		"f": []byte("z"),
		"g": "a",
		"h": "18446744073709551616",
		"i": int64(-256),
		"j": 1.5,
	}, plain(v))
}

func TestDictSemantics(t *testing.T) {
	// A repeated key keeps its first position and its last value, as in Python.
	v, err := unpickle(cat("\x80\x02}(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00bK\x02X\x01\x00\x00\x00aK\x03u."), false)
	require.NoError(t, err)
	d := v.(*dict)
	require.Equal(t, []any{"a", "b"}, d.keys)
	require.Equal(t, []any{int64(3), int64(2)}, d.vals)

	// OrderedDict built from a list of pairs (protocol 0 style), and set(list).
	v, err = unpickle(cat("ccollections\nOrderedDict\n((lp0\n(Vx\nI1\ntp1\na(Vy\nI2\ntp2\natR."), false)
	require.NoError(t, err)
	require.Equal(t, map[any]any{"x": int64(1), "y": int64(2)}, plain(v))
	v, err = unpickle(cat("c__builtin__\nset\n((lp0\nI7\naI8\natR."), false)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"frozen": false, "items": []any{int64(7), int64(8)}}, plain(v))
	v, err = unpickle(cat("\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00\xc3\xa9X\x06\x00\x00\x00latin1\x86R."), false)
	require.NoError(t, err)
	require.Equal(t, []byte{0xe9}, v)
}

func TestMalformedPickles(t *testing.T) {
	long := "\x80\x02]q\x00"
	cases := map[string]struct {
		p    []byte
		want string
	}{
		"empty":               {nil, "without STOP"},
		"no STOP":             {cat("\x80\x02N"), "without STOP"},
		"STOP on empty stack": {cat("\x80\x02."), "stack underflow"},
		"memo out of range":   {cat("\x80\x02Nq\x00h\x05."), "memo key 5 is not defined"},
		"long memo get":       {cat("\x80\x02j\xff\xff\xff\xff."), "memo key 4294967295"},
		"text memo get":       {cat("g12\n."), "memo key 12"},
		"bad text memo":       {cat("Np-1\n."), "memo index"},
		"PUT on empty":        {cat("\x80\x02q\x00."), "stack underflow"},
		"SETITEM underflow":   {cat("\x80\x02}s."), "stack underflow"},
		"TUPLE without MARK":  {cat("\x80\x02Nt."), "no MARK"},
		"TUPLE3 underflow":    {cat("\x80\x02NN\x87."), "stack underflow"},
		"pop below MARK":      {cat("\x80\x02N(0s."), "stack underflow"},
		"odd SETITEMS":        {cat("\x80\x02}(Nu."), "odd number"},
		"APPEND to a dict":    {cat("\x80\x02}Na."), "appending to a dict"},
		"SETITEM on a list":   {cat("\x80\x02]NNs."), "setting items of a list"},
		"BUILD on a list":     {cat("\x80\x02]Nb."), "BUILD on a list"},
		"ADDITEMS frozenset":  {cat("\x80\x04(\x91(K\x01\x90."), "frozenset"},
		"REDUCE non-tuple":    {cat("\x80\x02ccollections\nOrderedDict\nNR."), "want a tuple"},
		"call a str":          {cat("\x80\x02X\x01\x00\x00\x00a)R."), "cannot be called"},
		"STACK_GLOBAL ints":   {cat("\x80\x04K\x01K\x02\x93."), "want two str"},
		"protocol 6":          {cat("\x80\x06N."), "unsupported pickle protocol 6"},
		"unknown opcode":      {cat("\x80\x02\xff."), "unknown opcode 0xff"},
		"NEXT_BUFFER":         {cat("\x80\x05\x97."), "out-of-band"},
		"BINSTRING negative":  {cat("T\xff\xff\xff\xff."), "negative length"},
		"LONG4 negative":      {cat("\x80\x02\x8b\xff\xff\xff\xff."), "negative length"},
		"FLOAT text":          {cat("Fnope\n."), "not a number"},
		"INT text":            {cat("I12x\n."), "not an integer"},
		"too many digits":     {cat("L", strings.Repeat("9", 5000), "L\n."), "more than 4300 digits"},
		"unquoted STRING":     {cat("Sabc\n."), "quoted"},
		"bad \\x":             {cat("S'\\x4'\n."), "\\x escape"},
		"bad \\u":             {cat("Vab\\u12\n."), "\\u escape"},
		"persistent id":       {cat("\x80\x02NQ."), "persistent id"},
		"OrderedDict args":    {cat("\x80\x02ccollections\nOrderedDict\nK\x01\x85R."), "collections.OrderedDict with arguments (int)"},
		"OrderedDict pairs":   {cat("\x80\x02ccollections\nOrderedDict\n]K\x01a\x85R."), "want a (key, value) pair"},
		"codecs encoding":     {cat("\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R."), "encoding \"rot13\""},
		"bytes(n)":            {cat("\x80\x02c__builtin__\nbytes\nJ\x00\x00\x00\x40\x85R."), "builtins.bytes with arguments (int)"},
		"torch.Size of strs":  {cat("\x80\x02ctorch\nSize\nX\x01\x00\x00\x00a\x85\x85R."), "want ints"},
		"NEWOBJ of function":  {cat("\x80\x02ctorch._utils\n_rebuild_tensor_v2\n)\x81."), "NEWOBJ of the function"},
		"rebuild arity":       {cat("\x80\x02ctorch._utils\n_rebuild_tensor_v2\nNNN\x87R."), "3 arguments, want [6 7]"},
		"rebuild of None":     {cat("\x80\x02ctorch._utils\n_rebuild_tensor\n(NK\x00))tR."), "storage argument is a None"},
		"parameter of int":    {cat("\x80\x02ctorch._utils\n_rebuild_parameter\nK\x01\x88}\x87R."), "want a tensor"},
		"from_type bad type":  {cat("\x80\x02ctorch._tensor\n_rebuild_from_type_v2\n(ctorch._utils\n_rebuild_tensor\nccollections\nOrderedDict\n)}tR."), "want torch.Tensor"},
		"call torch.Tensor":   {cat("\x80\x02ctorch\nTensor\n)R."), "torch.Tensor"},
		"call a storage type": {cat("\x80\x02ctorch\nFloatStorage\n)R."), "cannot be called"},
		"EXT1":                {cat("\x80\x02\x82\x01."), "extension registry"},
		"deep MARKs":          {cat("\x80\x02", strings.Repeat("(", 2000), "."), "more than 1000 nested MARKs"},
		"truncated list":      {cat(long, "(NNN"), "without STOP"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := unpickle(tc.p, false)
			require.Error(t, err)
			require.ErrorContains(t, err, tc.want)
			if name != "EXT1" {
				require.ErrorIs(t, err, ErrFormat)
			} else {
				require.ErrorIs(t, err, ErrRefused)
			}
		})
	}
}

func TestTruncationsOfTorchPickle(t *testing.T) {
	storages := func(pid any) (any, error) {
		st := &rootStorage{key: "k", dtype: "F32", nbytes: 64}
		return &storage{root: st, dtype: st.dtype, nbytes: st.nbytes}, nil
	}
	p := []byte(torchSaveTwoTensors)
	v, err := newUnpickler(&bytesInput{b: p}, false, storages).load()
	require.NoError(t, err)
	require.Len(t, v.(*dict).keys, 2)
	for n := range len(p) {
		_, err := newUnpickler(&bytesInput{b: p[:n]}, false, storages).load()
		require.ErrorIs(t, err, ErrFormat, "truncated to %d bytes", n)
	}
}

// allocated returns the bytes allocated while f runs.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

func TestHugeLengthsAllocateNothing(t *testing.T) {
	cases := map[string][]byte{
		"BINUNICODE 4 GiB":  cat("\x80\x02X\xff\xff\xff\xffabc."),
		"BINBYTES8 2^62":    cat("\x80\x04\x8e", le64(1<<62), "abc."),
		"BINUNICODE8 2^63+": cat("\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\xffabc."),
		"BYTEARRAY8":        cat("\x80\x05\x96", le64(1<<40), "."),
		"LONG4 2 GiB":       cat("\x80\x02\x8b\xff\xff\xff\x7f\x00."),
		"BINSTRING 2 GiB":   cat("T\xff\xff\xff\x7fx."),
		"FRAME 1 TiB":       cat("\x80\x04\x95", le64(1<<40), "N."),
		"SHORT_BINBYTES":    cat("\x80\x03C\xffab."),
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = unpickle(p, false) })
			require.ErrorIs(t, err, ErrFormat)
			require.ErrorContains(t, err, "remain")
			require.Less(t, n, uint64(1<<20), "allocated %d bytes", n)
		})
	}
}

func TestRepeatedCopiesAreBounded(t *testing.T) {
	// A list of 10000 Nones, then set(list) again and again through the memo:
	// each call would copy 10000 items for 6 bytes of input.
	var b bytes.Buffer
	b.WriteString("\x80\x02]q\x00(")
	b.WriteString(strings.Repeat("N", 10000))
	b.WriteString("ec__builtin__\nset\nq\x01")
	for range 2000 {
		b.WriteString("h\x01h\x00\x85R0")
	}
	b.WriteString("N.")
	var err error
	n := allocated(func() { _, err = unpickle(b.Bytes(), false) })
	require.ErrorIs(t, err, ErrFormat)
	require.ErrorContains(t, err, "copies more container elements")
	require.Less(t, n, uint64(64<<20))

	// The same long key hashed again and again.
	b.Reset()
	b.WriteString("\x80\x02X")
	binary.Write(&b, binary.LittleEndian, uint32(1<<20))
	b.WriteString(strings.Repeat("k", 1<<20))
	b.WriteString("q\x00}q\x01")
	for range 200000 {
		b.WriteString("h\x01h\x00Ns0")
	}
	b.WriteString("N.")
	_, err = unpickle(b.Bytes(), false)
	require.ErrorContains(t, err, "copies more container elements")
}

func TestStateDictWalkIsBounded(t *testing.T) {
	c := func() *Checkpoint {
		return &Checkpoint{name: "x", entries: map[string]*tensorValue{}, meta: map[string]string{}}
	}
	// Nested 100000 lists deep: fine to unpickle (no recursion), refused when flattened.
	p := cat("\x80\x02}X\x01\x00\x00\x00w", strings.Repeat("]", 100000), strings.Repeat("a", 99999), "s.")
	v, err := unpickle(p, false)
	require.NoError(t, err)
	err = c().collect(v, int64(len(p)))
	require.ErrorIs(t, err, ErrFormat)
	require.ErrorContains(t, err, "nested more than 64 levels")

	// A list that contains itself.
	p = cat("\x80\x02}X\x01\x00\x00\x00w]q\x00h\x00as.")
	v, err = unpickle(p, false)
	require.NoError(t, err)
	require.ErrorContains(t, c().collect(v, int64(len(p))), "cyclic")

	// Shared dicts: d[i+1] = {"a": d[i], "b": d[i]}, 60 levels: 2^60 paths.
	d := dct("a", nil)
	for range 60 {
		d = dct("a", d, "b", d)
	}
	p = dumps(d)
	v, err = unpickle(p, false)
	require.NoError(t, err)
	require.ErrorContains(t, c().collect(v, int64(len(p))), "more entries than its pickle can hold")

	// One long key over many entries: the names would take gigabytes.
	inner := dct()
	for i := range 5000 {
		inner.items = append(inner.items, pyItem{i, nil})
	}
	p = dumps(dct(strings.Repeat("k", 100000), inner))
	v, err = unpickle(p, false)
	require.NoError(t, err)
	var cerr error
	n := allocated(func() { cerr = c().collect(v, int64(len(p))) })
	require.ErrorContains(t, cerr, "flattened names")
	require.Less(t, n, uint64(16<<20))
}

func TestLenientPlaceholders(t *testing.T) {
	// Calls, NEWOBJ, BUILD, SETITEMS and APPENDS on a placeholder are dropped.
	p := cat("\x80\x02}(X\x01\x00\x00\x00a",
		"cnumpy\ndtype\nX\x02\x00\x00\x00f8\x85Rq\x00(K\x03X\x01\x00\x00\x00<tb", // np.dtype('f8') with BUILD
		"X\x01\x00\x00\x00b", "cargparse\nNamespace\n)\x81}(NNub(NNe", // an object, its state and items
		"X\x01\x00\x00\x00c", "ctorch\nHalfStorage\n", // a storage class as a value
		"u.")
	_, err := unpickle(p, false)
	require.ErrorIs(t, err, ErrRefused)
	require.ErrorContains(t, err, "numpy.dtype")
	v, err := unpickle(p, true)
	require.NoError(t, err)
	d := v.(*dict)
	require.Equal(t, "object made by numpy.dtype", typeName(d.vals[0]))
	require.Equal(t, "object made by argparse.Namespace", typeName(d.vals[1]))
	require.Equal(t, "torch.HalfStorage", typeName(d.vals[2]))
}

func TestOrderedDictFromDictAndStringEscapes(t *testing.T) {
	v, err := unpickle(cat("\x80\x02ccollections\nOrderedDict\n}(K\x01K\x02K\x03K\x04u\x85R."), false)
	require.NoError(t, err)
	require.Equal(t, map[any]any{int64(1): int64(2), int64(3): int64(4)}, plain(v))

	v, err = unpickle(cat(`S"a\tb\\\n\101\x7a\q\'"`, "\n."), false)
	require.NoError(t, err)
	require.Equal(t, "a\tb\\\nAz\\q'", v)
	v, err = unpickle(cat(`V\\u0041\u00e9\U0001F600`, "\n."), false)
	require.NoError(t, err)
	require.Equal(t, `\\u0041é😀`, v)
}

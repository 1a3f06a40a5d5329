package pickle

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/sdgo/sdgo/tensor"
)

// zeroRecord stands for a storage record of n zero bytes.
type zeroRecord struct{ n int64 }

func (z zeroRecord) size() int64 { return z.n }

func (z zeroRecord) read(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > z.n || n > z.n-off {
		return nil, formatErr("outside the record")
	}
	return make([]byte, n), nil
}

// fuzzStorages resolves zip-style persistent ids to zero-filled storages of the
// declared size, without allocating them.
func fuzzStorages() func(any) (any, error) {
	storages := map[string]*storage{}
	return func(pid any) (any, error) {
		t, kind, err := persistentID(pid)
		if err != nil {
			return nil, err
		}
		if kind != "storage" || len(t) != 5 {
			return nil, formatErr("not a storage id")
		}
		typ, key, nbytes, err := storageFields(t)
		if err != nil || typ == nil {
			return placeholderOr(t[1], err)
		}
		if st, ok := storages[key]; ok {
			return st, nil
		}
		root := &rootStorage{key: key, dtype: typ.dtype, nbytes: nbytes, rec: zeroRecord{nbytes}}
		st := &storage{root: root, dtype: typ.dtype, nbytes: nbytes}
		storages[key] = st
		return st, nil
	}
}

func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

func FuzzUnpickle(f *testing.F) {
	f.Add([]byte(torchSaveTwoTensors))
	w := f16Storage("0", 1, 2, 3, 4)
	obj, _ := lightningCheckpoint(od("w", &pyTensor{st: w, size: []int{2, 2}, stride: []int{1, 2}, param: true}), w)
	f.Add(dumps(obj))
	f.Add(dumps(od("v3", &pyTensor{st: &pyStorage{typ: "UntypedStorage", key: "1", numel: 8}, size: []int{2}, stride: []int{1}, v3dtype: "float16", withState: true})))
	f.Add([]byte("(dp0\nVname\np1\nVvalue\np2\nsVl\np5\n(lp6\nI01\naNaL123456789012345678901234567890L\nas."))
	f.Add([]byte("\x80\x04\x95\x21\x00\x00\x00\x00\x00\x00\x00\x8c\nsubprocess\x94\x8c\x05Popen\x94\x93\x94\x8c\x02ls\x94\x85\x94R\x94."))
	f.Add([]byte("cposix\nsystem\n(S'echo pwned'\ntR."))
	f.Add([]byte("\x80\x02]q\x00h\x00a."))
	f.Add([]byte("\x80\x04\x8f\x94(K\x01K\x02\x90(K\x03\x91\x96\x01\x00\x00\x00\x00\x00\x00\x00z."))
	f.Fuzz(func(t *testing.T, b []byte) {
		before := totalAlloc()
		for _, lenient := range []bool{false, true} {
			v, err := newUnpickler(&bytesInput{b: b}, lenient, fuzzStorages()).load()
			if err != nil {
				continue
			}
			c := &Checkpoint{name: "fuzz", entries: map[string]*tensorValue{}, meta: map[string]string{}}
			if c.collect(v, int64(len(b))) != nil {
				continue
			}
			for _, name := range c.names {
				tv := c.entries[name]
				es := int64(tv.dtype.Size())
				if tv.numel*es > 1<<20 || (tv.maxIdx-tv.offset+1)*es > 1<<20 {
					continue
				}
				raw, err := c.bytes(tv)
				if err == nil && int64(len(raw)) != tv.numel*es {
					t.Fatalf("tensor %q: %d bytes for %d elements of %s", name, len(raw), tv.numel, tv.dtype)
				}
			}
		}
		if n := totalAlloc() - before; n > 64<<20+1024*uint64(len(b)) {
			t.Fatalf("allocated %d bytes for %d bytes of input", n, len(b))
		}
	})
}

func FuzzCheckpoint(f *testing.F) {
	a := f32Storage("0", 1, 2, 3, 4, 5, 6)
	h := f16Storage("1", 1, 2, 3, 4)
	sd := od("a", &pyTensor{st: a, offset: 1, size: []int{2, 2}, stride: []int{1, 2}}, "b", contiguousTensor(h, 4))
	f.Add(torchZip(f, "archive", dumps(dct("state_dict", sd, "epoch", 1)), a, h))
	f.Add(legacyFile(sd, a, h))
	f.Add(buildZip(f, []zipEntry{
		{name: "x/data.pkl", data: dumps(sd), deflate: true},
		{name: "x/data/0", data: a.data, deflate: true},
		{name: "x/data/1", data: h.data},
	}))
	f.Add([]byte("PK\x05\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		before := totalAlloc()
		for _, lenient := range []bool{false, true} {
			c, err := OpenReader(bytes.NewReader(b), int64(len(b)), "fuzz", Options{Lenient: lenient})
			if err != nil {
				continue
			}
			for _, name := range c.Names() {
				info, ok := c.Info(name)
				if !ok {
					t.Fatalf("listed tensor %q has no info", name)
				}
				x, err := c.Load(name, tensor.NewCPU())
				if err == nil {
					if got := x.Shape(); len(got) != len(info.Shape) {
						t.Fatalf("tensor %q: shape %v, info says %v", name, got, info.Shape)
					}
				}
			}
		}
		// Deflate expands at most 1032 times.
		if n := totalAlloc() - before; n > 64<<20+2100*uint64(len(b)) {
			t.Fatalf("allocated %d bytes for %d bytes of input", n, len(b))
		}
	})
}

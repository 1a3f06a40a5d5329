package pickle

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/sdgo/sdgo/diffusion/weights"
	"github.com/sdgo/sdgo/tensor"
)

const (
	maxPickleSize = 1 << 30 // bytes of data.pkl
	maxNesting    = 64      // levels of containers flattened in the state dict
	legacyVersion = 1001    // torch's PROTOCOL_VERSION of the legacy format
)

// legacyMagic is torch's MAGIC_NUMBER, the first pickle of a legacy file.
func legacyMagic() *big.Int {
	n, _ := new(big.Int).SetString("1950a86a20f9469cfc6c", 16)
	return n
}

// Options controls how a checkpoint is read. The zero value is strict.
type Options struct {
	// Lenient turns unknown globals into opaque placeholders instead of
	// errors, so that training checkpoints whose non-tensor entries hold
	// Python objects (PyTorch Lightning callbacks, hyper-parameters, NumPy
	// scalars) still give their tensors. Nothing is executed either way; a
	// placeholder inside the state dict is still an error, and the globals
	// listed in the package documentation are refused in both modes.
	Lenient bool
}

// Checkpoint is a PyTorch checkpoint opened for reading: a weights.Source
// over the tensors of its state dict. Tensors are read from the file only when
// loaded; Load may be called concurrently.
type Checkpoint struct {
	name    string
	file    *os.File // closed by Close; nil for OpenReader
	format  string
	swap    bool // storages are big-endian
	entries map[string]*tensorValue
	names   []string
	meta    map[string]string
}

var _ weights.Source = (*Checkpoint)(nil)

// Open opens a checkpoint written by torch.save (zip or legacy format) and
// reads its pickle; tensor data stays in the file until loaded.
func Open(path string, opts Options) (*Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pickle: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("pickle: %w", err)
	}
	c, err := OpenReader(f, fi.Size(), path, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	c.file = f
	return c, nil
}

// OpenReader reads a checkpoint of the given size from r; name is used in
// errors. r must stay readable until the Checkpoint is no longer used; Close
// does not close it.
func OpenReader(r io.ReaderAt, size int64, name string, opts Options) (*Checkpoint, error) {
	c := &Checkpoint{name: name, entries: make(map[string]*tensorValue), meta: make(map[string]string)}
	if err := c.read(r, size, opts); err != nil {
		return nil, fmt.Errorf("pickle: %s: %w", name, err)
	}
	return c, nil
}

func (c *Checkpoint) read(r io.ReaderAt, size int64, opts Options) error {
	if size < 0 {
		return formatErr("negative size %d", size)
	}
	head := make([]byte, min(size, 512))
	if n, err := r.ReadAt(head, 0); n < len(head) {
		return fmt.Errorf("reading the header: %w", err)
	}
	var (
		root       any
		pickleSize int64
		err        error
	)
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")) || bytes.HasPrefix(head, []byte("PK\x05\x06")):
		c.format = "zip"
		root, pickleSize, err = c.readZip(r, size, opts)
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return formatErr("a tar archive: the checkpoint format of torch before 0.4, which is not supported (load and re-save it with a newer torch)")
	case len(head) > 0 && (head[0] == opProto || head[0] == opLong):
		c.format = "legacy"
		root, pickleSize, err = c.readLegacy(r, size, opts)
	case len(head) >= 9 && head[8] == '{':
		return formatErr("a safetensors file, not a PyTorch checkpoint")
	default:
		return formatErr("neither a torch.save zip archive nor a legacy torch.save pickle")
	}
	if err != nil {
		return err
	}
	return c.collect(root, pickleSize)
}

// readZip reads the zip format of torch >= 1.6.
func (c *Checkpoint) readZip(r io.ReaderAt, size int64, opts Options) (any, int64, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, 0, formatErr("not a readable zip archive: %v", err)
	}
	var pkl *zip.File
	for _, f := range zr.File {
		if dir, rest, ok := strings.Cut(f.Name, "/"); ok && dir != "" && rest == "data.pkl" {
			if pkl != nil {
				return nil, 0, formatErr("two pickles in the archive, %s and %s", pkl.Name, f.Name)
			}
			pkl = f
		}
	}
	if pkl == nil {
		return nil, 0, formatErr("a zip archive without <folder>/data.pkl: not a torch.save checkpoint")
	}
	prefix := strings.TrimSuffix(pkl.Name, "data.pkl")
	records := make(map[string]*zip.File)
	for _, f := range zr.File {
		rest, ok := strings.CutPrefix(f.Name, prefix)
		if !ok {
			continue
		}
		switch key, isData := strings.CutPrefix(rest, "data/"); {
		case isData && key != "":
			if _, dup := records[key]; dup {
				return nil, 0, formatErr("two records named %s", f.Name)
			}
			records[key] = f
		case rest == "constants.pkl":
			return nil, 0, formatErr("a TorchScript archive (torch.jit.save), not a torch.save checkpoint")
		case rest == "byteorder":
			b, err := readEntry(f, 16)
			if err != nil {
				return nil, 0, fmt.Errorf("%s: %w", f.Name, err)
			}
			switch string(b) {
			case "little":
			case "big":
				c.swap = true
			default:
				return nil, 0, formatErr("%s is %q, want \"little\" or \"big\"", f.Name, b)
			}
		}
	}
	if pkl.UncompressedSize64 > maxPickleSize {
		return nil, 0, formatErr("%s declares %d bytes, more than the limit of %d", pkl.Name, pkl.UncompressedSize64, maxPickleSize)
	}
	data, err := readEntry(pkl, maxPickleSize)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", pkl.Name, err)
	}
	storages := make(map[string]*storage)
	load := func(pid any) (any, error) {
		t, kind, err := persistentID(pid)
		if err != nil {
			return nil, err
		}
		if kind != "storage" || len(t) != 5 {
			return nil, formatErr("persistent id %s with %d fields, want ('storage', storage type, key, location, numel)", describe(t[0]), len(t))
		}
		typ, key, nbytes, err := storageFields(t)
		if err != nil || typ == nil {
			return placeholderOr(t[1], err)
		}
		if st, ok := storages[key]; ok {
			return st, nil // as torch: the first type given to a key is kept
		}
		f, ok := records[key]
		if !ok {
			return nil, formatErr("storage %q has no record %sdata/%s", key, prefix, key)
		}
		rec, err := zipRecord(f, r, size)
		if err != nil {
			return nil, err
		}
		if nbytes > rec.size() {
			return nil, formatErr("storage %q declares %d bytes of %s but %s holds %d", key, nbytes, typ.dtype, f.Name, rec.size())
		}
		root := &rootStorage{key: key, dtype: typ.dtype, nbytes: nbytes, rec: rec}
		st := &storage{root: root, dtype: typ.dtype, nbytes: nbytes}
		storages[key] = st
		return st, nil
	}
	v, err := newUnpickler(&bytesInput{b: data}, opts.Lenient, load).load()
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", pkl.Name, err)
	}
	return v, int64(len(data)), nil
}

// readLegacy reads the stream format of torch < 1.6.
func (c *Checkpoint) readLegacy(r io.ReaderAt, size int64, opts Options) (any, int64, error) {
	in := newStreamInput(r, 0, size)
	magic, err := newUnpickler(in, false, nil).load()
	if err != nil {
		return nil, 0, fmt.Errorf("legacy format, magic number: %w", err)
	}
	if m, ok := magic.(*big.Int); !ok || m.Cmp(legacyMagic()) != 0 {
		return nil, 0, formatErr("a pickle whose first object is %s, not torch's magic number: not a torch.save checkpoint", describe(magic))
	}
	version, err := newUnpickler(in, false, nil).load()
	if err != nil {
		return nil, 0, fmt.Errorf("legacy format, protocol version: %w", err)
	}
	if v, ok := version.(int64); !ok || v != legacyVersion {
		return nil, 0, formatErr("legacy format protocol version %s, want %d", describe(version), legacyVersion)
	}
	if _, err := newUnpickler(in, false, nil).load(); err != nil {
		return nil, 0, fmt.Errorf("legacy format, system information: %w", err)
	}

	roots := make(map[string]*rootStorage)
	whole := make(map[string]*storage)
	views := make(map[string]*storage)
	load := func(pid any) (any, error) {
		t, kind, err := persistentID(pid)
		if err != nil {
			return nil, err
		}
		switch {
		case kind == "module" && len(t) == 4:
			// ('module', class, source file, source): a pickled nn.Module class,
			// which can only be a placeholder or was already refused.
			return t[1], nil
		case kind != "storage" || len(t) != 6:
			return nil, formatErr("persistent id %s with %d fields, want ('storage', storage type, key, location, numel, view)", describe(t[0]), len(t))
		}
		typ, key, nbytes, err := storageFields(t)
		if err != nil || typ == nil {
			return placeholderOr(t[1], err)
		}
		root, ok := roots[key]
		if !ok {
			root = &rootStorage{key: key, dtype: typ.dtype, nbytes: nbytes}
			roots[key] = root
			whole[key] = &storage{root: root, dtype: typ.dtype, nbytes: nbytes}
		}
		if t[5] == nil {
			return whole[key], nil
		}
		view, ok := t[5].(tuple)
		if !ok || len(view) != 3 {
			return nil, formatErr("storage %q view is %s, want (key, offset, size)", key, describe(t[5]))
		}
		vkey, ok1 := view[0].(string)
		off, ok2 := view[1].(int64)
		n, ok3 := view[2].(int64)
		if !ok1 || !ok2 || !ok3 {
			return nil, formatErr("storage %q view is not (str, int, int)", key)
		}
		if v, ok := views[vkey]; ok {
			return v, nil
		}
		es := int64(typ.dtype.Size())
		if off < 0 || n < 0 || off > root.nbytes/es || n > root.nbytes/es-off {
			return nil, formatErr("storage view %q of %d elements at %d lies outside storage %q of %d bytes", vkey, n, off, key, root.nbytes)
		}
		v := &storage{root: root, dtype: typ.dtype, byteOf: off * es, nbytes: n * es}
		views[vkey] = v
		return v, nil
	}
	start := in.offset()
	root, err := newUnpickler(in, opts.Lenient, load).load()
	if err != nil {
		return nil, 0, fmt.Errorf("legacy format, main pickle: %w", err)
	}
	pickleSize := in.offset() - start
	keysValue, err := newUnpickler(in, false, nil).load()
	if err != nil {
		return nil, 0, fmt.Errorf("legacy format, storage keys: %w", err)
	}
	keys, ok := sequence(keysValue)
	if !ok {
		return nil, 0, formatErr("legacy storage keys are a %s, want a list", typeName(keysValue))
	}
	pos := in.offset()
	for _, k := range keys {
		key, ok := k.(string)
		if !ok {
			return nil, 0, formatErr("a legacy storage key is a %s, want a str", typeName(k))
		}
		rs, ok := roots[key]
		if !ok {
			return nil, 0, formatErr("storage %q is listed but no tensor uses it", key)
		}
		if rs.rec != nil {
			return nil, 0, formatErr("storage %q is listed twice", key)
		}
		var hdr [8]byte
		if size-pos < 8 {
			return nil, 0, formatErr("storage %q: the file ends at %d, before its size", key, size)
		}
		if _, err := r.ReadAt(hdr[:], pos); err != nil {
			return nil, 0, fmt.Errorf("storage %q: %w", key, err)
		}
		numel := int64(binary.LittleEndian.Uint64(hdr[:]))
		es := int64(rs.dtype.Size())
		if numel < 0 || numel > math.MaxInt64/es || numel*es != rs.nbytes {
			return nil, 0, formatErr("storage %q holds %d elements of %s, its persistent id declares %d bytes", key, numel, rs.dtype, rs.nbytes)
		}
		if rs.nbytes > size-pos-8 {
			return nil, 0, formatErr("storage %q: %d bytes at offset %d, but the file ends at %d", key, rs.nbytes, pos+8, size)
		}
		rs.rec = sectionRecord{r: r, base: pos + 8, n: rs.nbytes}
		pos += 8 + rs.nbytes
	}
	return root, pickleSize, nil
}

// persistentID checks the common shape of torch's persistent ids: a tuple
// whose first item names its kind.
func persistentID(pid any) (tuple, string, error) {
	t, ok := pid.(tuple)
	if !ok || len(t) == 0 {
		return nil, "", formatErr("persistent id is %s, want a tuple", describe(pid))
	}
	switch k := t[0].(type) {
	case string:
		return t, k, nil
	case []byte:
		return t, string(k), nil
	}
	return nil, "", formatErr("persistent id kind is %s, want a str", describe(t[0]))
}

// storageFields reads (kind, storage type, key, location, numel, ...). A nil
// type without error means that the storage type is a placeholder.
func storageFields(t tuple) (*storageType, string, int64, error) {
	typ, ok := t[1].(storageType)
	if !ok {
		if _, isOpaque := t[1].(*opaque); isOpaque {
			return nil, "", 0, nil
		}
		return nil, "", 0, formatErr("persistent id storage type is %s, want a torch storage class", describe(t[1]))
	}
	key, ok := t[2].(string)
	if !ok {
		return nil, "", 0, formatErr("persistent id key is %s, want a str", describe(t[2]))
	}
	numel, ok := t[4].(int64)
	es := int64(typ.dtype.Size())
	if !ok || numel < 0 || numel > math.MaxInt64/es {
		return nil, "", 0, formatErr("storage %q size is %s, want a non-negative int", key, describe(t[4]))
	}
	return &typ, key, numel * es, nil
}

// placeholderOr returns a placeholder storage for a placeholder storage type
// (lenient mode), or err.
func placeholderOr(typ any, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	o := typ.(*opaque)
	return &opaque{module: o.module, name: o.name, instance: true}, nil
}

// collect finds the state dict and records its tensors under flattened names.
func (c *Checkpoint) collect(root any, pickleSize int64) error {
	d, ok := root.(*dict)
	if !ok {
		return notDict("the checkpoint", root)
	}
	for {
		v, ok := d.get("state_dict")
		if !ok {
			break
		}
		c.addMeta(d)
		if d, ok = v.(*dict); !ok {
			return notDict(`the "state_dict" entry`, v)
		}
	}
	w := walker{c: c, nodes: pickleSize + 64, nameBytes: 8*pickleSize + 1<<20}
	if err := w.walk(d, "", 0); err != nil {
		return err
	}
	c.names = make([]string, 0, len(c.entries))
	for n := range c.entries {
		c.names = append(c.names, n)
	}
	sort.Strings(c.names)
	return nil
}

func notDict(what string, v any) error {
	if o, ok := v.(*opaque); ok {
		return refusedErr("%s is an object of %s, which is not allowed", what, o)
	}
	return formatErr("%s is a %s, want a dict of tensors", what, typeName(v))
}

// walker flattens the state dict. The nodes it visits and the bytes of the
// names it makes are bounded by the size of the pickle (a legitimate one spends
// at least a byte on every tensor and container, and more on their names), so
// shared or cyclic containers cannot make it run away.
type walker struct {
	c                *Checkpoint
	nodes, nameBytes int64
}

func (w *walker) walk(v any, name string, depth int) error {
	c := w.c
	if w.nodes--; w.nodes < 0 {
		return formatErr("the state dict has more entries than its pickle can hold (shared or cyclic containers)")
	}
	if depth > maxNesting {
		return formatErr("state dict entry %q is nested more than %d levels deep (or is cyclic)", name, maxNesting)
	}
	var err error
	child := func(k string) string {
		if w.nameBytes -= int64(len(name) + 1 + len(k)); w.nameBytes < 0 {
			err = formatErr("the flattened names of the state dict take more bytes than its pickle can justify (shared containers)")
			return ""
		}
		if name == "" {
			return k
		}
		return name + "." + k
	}
	switch v := v.(type) {
	case *tensorValue:
		if _, dup := c.entries[name]; dup {
			return formatErr("two tensors are named %q", name)
		}
		if v.st.root.rec == nil {
			return formatErr("tensor %q: storage %q has no data in the file", name, v.st.root.key)
		}
		c.entries[name] = v
	case *dict:
		for i, k := range v.keys {
			var ks string
			switch k := k.(type) {
			case string:
				ks = k
			case int64:
				ks = strconv.FormatInt(k, 10)
			default:
				return formatErr("state dict key under %q is a %s, want a str", name, typeName(k))
			}
			n := child(ks)
			if err != nil {
				return err
			}
			if err := w.walk(v.vals[i], n, depth+1); err != nil {
				return err
			}
		}
	case *list, tuple:
		items, _ := sequence(v)
		for i, it := range items {
			n := child(strconv.Itoa(i))
			if err != nil {
				return err
			}
			if err := w.walk(it, n, depth+1); err != nil {
				return err
			}
		}
	case *opaque:
		return refusedErr("state dict entry %q is %s, which is not allowed", name, typeName(v))
	}
	// Anything else (None, numbers, strings, sets, dtypes) is not a tensor.
	return nil
}

// addMeta records the scalar entries of a wrapper dict (global_step, epoch,
// pytorch-lightning_version, ...).
func (c *Checkpoint) addMeta(d *dict) {
	for i, k := range d.keys {
		ks, ok := k.(string)
		if !ok || ks == "state_dict" {
			continue
		}
		if _, seen := c.meta[ks]; seen {
			continue
		}
		if s, ok := formatScalar(d.vals[i]); ok {
			c.meta[ks] = s
		}
	}
}

// formatScalar writes a scalar as Python's str() would.
func formatScalar(v any) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "None", true
	case bool:
		if v {
			return "True", true
		}
		return "False", true
	case int64:
		return strconv.FormatInt(v, 10), true
	case *big.Int:
		if v.BitLen() > 1<<14 {
			return "0x" + v.Text(16), true
		}
		return v.String(), true
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), true
	case string:
		return v, true
	}
	return "", false
}

// Format returns "zip" (torch >= 1.6) or "legacy".
func (c *Checkpoint) Format() string { return c.format }

// Metadata returns the scalar entries stored beside the state dict (for a
// Lightning checkpoint: epoch, global_step, pytorch-lightning_version), as
// Python would print them. It is empty for a bare state dict.
func (c *Checkpoint) Metadata() map[string]string {
	m := make(map[string]string, len(c.meta))
	for k, v := range c.meta {
		m[k] = v
	}
	return m
}

// Names returns the tensor names, sorted.
func (c *Checkpoint) Names() []string { return slices.Clone(c.names) }

// Info describes a tensor: its stored dtype and shape.
func (c *Checkpoint) Info(name string) (weights.Info, bool) {
	t, ok := c.entries[name]
	if !ok {
		return weights.Info{}, false
	}
	return weights.Info{DType: t.dtype, Shape: slices.Clone(t.shape)}, true
}

// Load reads a tensor onto b, as a contiguous tensor. F32, F16 and BF16 keep
// their dtype; F64 and integer types become F32.
func (c *Checkpoint) Load(name string, b tensor.Backend) (*tensor.Tensor, error) {
	t, ok := c.entries[name]
	if !ok {
		return nil, fmt.Errorf("pickle: %s: no tensor %q", c.name, name)
	}
	raw, err := c.bytes(t)
	if err != nil {
		return nil, fmt.Errorf("pickle: %s: tensor %q: %w", c.name, name, err)
	}
	out, err := weights.FromBytes(b, t.dtype, t.shape, raw)
	if err != nil {
		return nil, fmt.Errorf("pickle: %s: tensor %q: %w", c.name, name, err)
	}
	return out, nil
}

// bytes returns a tensor's elements, contiguous, little-endian.
func (c *Checkpoint) bytes(t *tensorValue) ([]byte, error) {
	es := int64(t.dtype.Size())
	if t.numel == 0 {
		return []byte{}, nil
	}
	if capacity := t.st.nbytes / es; t.numel > capacity {
		return nil, formatErr("%d elements viewing a storage of %d (an expanded tensor): refusing to allocate more elements than the file holds", t.numel, capacity)
	}
	lo := t.st.byteOf + t.offset*es
	n := (t.maxIdx - t.offset + 1) * es
	if n > math.MaxInt || t.numel*es > math.MaxInt {
		return nil, formatErr("%d bytes do not fit in memory on this platform", n)
	}
	src, err := t.st.root.rec.read(lo, n)
	if err != nil {
		return nil, fmt.Errorf("storage %q: %w", t.st.root.key, err)
	}
	out := src
	if n != t.numel*es || !contiguous(t.shape, t.stride) {
		out = gather(src, int(es), t.shape, t.stride, t.numel)
	}
	if c.swap && es > 1 {
		for i := 0; i < len(out); i += int(es) {
			slices.Reverse(out[i : i+int(es)])
		}
	}
	return out, nil
}

// contiguous reports whether strides are row-major for shape (dimensions of
// size 1 may have any stride).
func contiguous(shape, stride []int) bool {
	want := 1
	for i := len(shape) - 1; i >= 0; i-- {
		if shape[i] != 1 && stride[i] != want {
			return false
		}
		want *= shape[i]
	}
	return true
}

// gather copies a strided view (element 0 of src is the view's first element)
// into a contiguous buffer.
func gather(src []byte, es int, shape, stride []int, numel int64) []byte {
	out := make([]byte, int(numel)*es)
	rank := len(shape)
	if rank == 0 {
		copy(out, src[:es])
		return out
	}
	idx := make([]int, rank)
	inner, innerStride := shape[rank-1], stride[rank-1]
	o, base := 0, 0
	for {
		if innerStride == 1 {
			o += copy(out[o:], src[base*es:(base+inner)*es])
		} else {
			for j, p := 0, base; j < inner; j, p = j+1, p+innerStride {
				o += copy(out[o:o+es], src[p*es:p*es+es])
			}
		}
		k := rank - 2
		for ; k >= 0; k-- {
			idx[k]++
			base += stride[k]
			if idx[k] < shape[k] {
				break
			}
			base -= shape[k] * stride[k]
			idx[k] = 0
		}
		if k < 0 {
			return out
		}
	}
}

// Close closes the file opened by Open.
func (c *Checkpoint) Close() error {
	if c.file == nil {
		return nil
	}
	err := c.file.Close()
	c.file = nil
	return err
}

// record is the stored bytes of one storage.
type record interface {
	size() int64
	// read returns bytes [off, off+n) of the record.
	read(off, n int64) ([]byte, error)
}

// sectionRecord is a record stored as is in the file (a legacy storage, or a
// zip entry stored without compression): it is read in place.
type sectionRecord struct {
	r       io.ReaderAt
	base, n int64
}

func (s sectionRecord) size() int64 { return s.n }

func (s sectionRecord) read(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > s.n || n > s.n-off {
		return nil, formatErr("bytes [%d, %d) lie outside a record of %d", off, off+n, s.n)
	}
	b := make([]byte, n)
	if k, err := s.r.ReadAt(b, s.base+off); k < len(b) {
		return nil, fmt.Errorf("reading %d bytes at %d: %w", n, s.base+off, err)
	}
	return b, nil
}

// zipFileRecord is a compressed zip entry, decompressed up to what is read.
type zipFileRecord struct{ f *zip.File }

func (z zipFileRecord) size() int64 { return int64(z.f.UncompressedSize64) }

func (z zipFileRecord) read(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > z.size() || n > z.size()-off {
		return nil, formatErr("bytes [%d, %d) lie outside %s of %d", off, off+n, z.f.Name, z.size())
	}
	rc, err := z.f.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", z.f.Name, err)
	}
	defer rc.Close()
	if _, err := io.CopyN(io.Discard, rc, off); err != nil {
		return nil, fmt.Errorf("%s: %w", z.f.Name, err)
	}
	// ReadAll grows with the data that arrives, not with the declared size.
	b, err := io.ReadAll(io.LimitReader(rc, n))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", z.f.Name, err)
	}
	if int64(len(b)) != n {
		return nil, formatErr("%s ends after %d bytes, want %d", z.f.Name, off+int64(len(b)), off+n)
	}
	return b, nil
}

// zipRecord makes the record of a storage entry.
func zipRecord(f *zip.File, r io.ReaderAt, size int64) (record, error) {
	if f.UncompressedSize64 > math.MaxInt64 {
		return nil, formatErr("%s declares %d bytes", f.Name, f.UncompressedSize64)
	}
	switch f.Method {
	case zip.Store:
		off, err := f.DataOffset()
		if err != nil {
			return nil, formatErr("%s: %v", f.Name, err)
		}
		n := int64(f.UncompressedSize64)
		if f.CompressedSize64 != f.UncompressedSize64 || off < 0 || off > size || n > size-off {
			return nil, formatErr("%s: %d stored bytes at offset %d do not fit in the file of %d", f.Name, n, off, size)
		}
		return sectionRecord{r: r, base: off, n: n}, nil
	case zip.Deflate:
		return zipFileRecord{f}, nil
	}
	return nil, formatErr("%s uses zip compression method %d (want stored or deflated)", f.Name, f.Method)
}

// readEntry reads a whole zip entry of at most limit bytes.
func readEntry(f *zip.File, limit int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, formatErr("%v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, formatErr("%v", err)
	}
	if int64(len(b)) > limit {
		return nil, formatErr("more than %d bytes", limit)
	}
	return b, nil
}

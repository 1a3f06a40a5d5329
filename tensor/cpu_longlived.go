package tensor

import (
	"runtime"
	"sync"
	"unsafe"
)

// longLivedMinBytes is the smallest buffer AllocLongLived maps outside the Go
// heap: a mapping costs a page at least, and small tensors (biases, norms) do
// not move the garbage collector's pacing.
const longLivedMinBytes = 256 << 10

// AllocLongLived returns storage for n elements of dt meant to live as long as a
// model: weights. Buffers of 256 KiB and more are mapped outside the Go heap
// (anonymous memory on unix), because the garbage collector lets the heap grow
// by as much as is live before collecting: with 1.7 GB of SD 1.5 UNet weights on
// the heap, the temporaries of a denoising step could pile up to another 1.7 GB
// before a collection. Outside the heap the weights cost exactly their size and
// the collector paces itself on the activations alone.
//
// The memory is unmapped when the storage is freed (Tensor.Release of the last
// view) or, failing that, once the storage is unreachable. The backend's
// operations keep their operands reachable while they run (runtime.KeepAlive),
// so a model dropped in the middle of a call does not pull its weights from
// under it. Elsewhere, and on platforms without anonymous mappings, it is Alloc.
func (c *CPU) AllocLongLived(dt DType, n int) (Storage, error) {
	if !dt.Valid() {
		return nil, dtypeErr("AllocLongLived", "%v", dt)
	}
	if n < 0 || n > maxElements {
		return nil, rangeErr("AllocLongLived", "%d elements", n)
	}
	size := n * dt.Size()
	if size < longLivedMinBytes || !canMapAnon {
		return c.Alloc(dt, n)
	}
	mem, err := mapAnon(size)
	if err != nil {
		// Out of address space or a map count limit: the heap still works.
		return c.Alloc(dt, n)
	}
	s := &CPUStorage{cpu: c, dt: dt, mapped: mem}
	c.count(int64(size))
	p := unsafe.Pointer(unsafe.SliceData(mem))
	if dt == F32 {
		s.F32 = unsafe.Slice((*float32)(p), n)
	} else {
		s.U16 = unsafe.Slice((*uint16)(p), n)
	}
	// The cleanup's argument is the mapping itself, which is not Go memory and
	// so does not keep s reachable.
	s.cleanup = runtime.AddCleanup(s, unmapAnon, mem)
	return s, nil
}

// NewLongLived returns an uninitialised tensor for data that lives as long as a
// model (weights): on the CPU, from AllocLongLived; on other backends, New.
func NewLongLived(b Backend, dt DType, shape ...int) (*Tensor, error) {
	c, ok := b.(*CPU)
	if !ok {
		return New(b, dt, shape...)
	}
	if !dt.Valid() {
		return nil, dtypeErr("NewLongLived", "%v", dt)
	}
	if err := checkShape("NewLongLived", shape); err != nil {
		return nil, err
	}
	s, err := c.AllocLongLived(dt, numel(shape))
	if err != nil {
		return nil, err
	}
	return wrap(s, append([]int(nil), shape...)), nil
}

// freeMapped unmaps a long-lived storage's memory; it reports whether s had any.
func (s *CPUStorage) freeMapped() bool {
	if s.mapped == nil {
		return false
	}
	s.cleanup.Stop()
	unmapAnon(s.mapped)
	s.mapped, s.F32, s.U16 = nil, nil, nil
	return true
}

// keepAlive keeps the tensors of a backend operation, and so their storages,
// reachable until the operation returns: the kernels work on slices of the
// storages, which do not keep a long-lived storage's mapping alive.
func keepAlive(ts ...*Tensor) { runtime.KeepAlive(ts) }

// Borrow returns storage that uses mem in place: n elements of dt, stored
// little-endian as the CPU holds them, without a copy. It is for weights read
// from a memory-mapped checkpoint (safetensors.File.Share): they cost no copy
// and no heap, and the kernel can drop their pages and read them back from the
// file (Evict). mem must stay valid until release is called, which Free does,
// or a cleanup once the storage is unreachable; the operations keep their
// operands reachable while they run. mem may be read-only memory: the backend
// never writes to an operation's inputs. ok is false when mem cannot be used
// in place (a length that is not n elements, an address not aligned to the
// element size, a big-endian host); then the caller copies.
func (c *CPU) Borrow(dt DType, mem []byte, n int, release func()) (st Storage, ok bool) {
	if !dt.Valid() || n <= 0 || len(mem) != n*dt.Size() || !littleEndian ||
		uintptr(unsafe.Pointer(unsafe.SliceData(mem)))%uintptr(dt.Size()) != 0 {
		return nil, false
	}
	s := &CPUStorage{cpu: c, dt: dt, borrowed: mem}
	c.count(int64(len(mem)))
	p := unsafe.Pointer(unsafe.SliceData(mem))
	if dt == F32 {
		s.F32 = unsafe.Slice((*float32)(p), n)
	} else {
		s.U16 = unsafe.Slice((*uint16)(p), n)
	}
	rel := sync.OnceFunc(release)
	s.release = rel
	s.cleanup = runtime.AddCleanup(s, func(f func()) { f() }, rel)
	return s, true
}

// Evict tells the backend that a storage will not be read for a while. Borrowed
// storage (Borrow) gives its whole pages back to the system: for a file mapping
// they stay in the page cache and come back on the next read, so the tensor
// stays usable and the process's resident memory falls by its size. Other
// storage is left as it is.
func (c *CPU) Evict(st Storage) {
	s, ok := st.(*CPUStorage)
	if !ok || s.borrowed == nil {
		return
	}
	dropPages(s.borrowed)
}

// Evict calls the backend's Evict for t's storage when it has one (see
// CPU.Evict).
func Evict(t *Tensor) {
	if t == nil || t.buf == nil {
		return
	}
	if e, ok := t.Backend().(interface{ Evict(Storage) }); ok {
		e.Evict(t.buf.s)
	}
}

// freeBorrowed lets go of a borrowed storage's memory; it reports whether s had any.
func (s *CPUStorage) freeBorrowed() bool {
	if s.borrowed == nil {
		return false
	}
	s.cleanup.Stop()
	s.release()
	s.borrowed, s.release, s.F32, s.U16 = nil, nil, nil, nil
	return true
}

var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// BorrowTensor is Borrow for a tensor of the given shape.
func (c *CPU) BorrowTensor(dt DType, mem []byte, release func(), shape ...int) (*Tensor, bool) {
	if checkShape("BorrowTensor", shape) != nil {
		return nil, false
	}
	s, ok := c.Borrow(dt, mem, numel(shape), release)
	if !ok {
		return nil, false
	}
	return wrap(s, append([]int(nil), shape...)), true
}

const (
	// bigBytes is the smallest buffer Alloc maps outside the heap.
	bigBytes = 1 << 20
	// bigCacheLimit bounds the freed large buffers a CPU backend keeps. A SD 1.5
	// UNet step at 512x512 holds 180 MB of activations at most, and a step's
	// buffers come back in the same sizes every step, so most of them are found
	// here rather than mapped (and page-faulted) again.
	bigCacheLimit = 256 << 20
)

// mapCache is a CPU backend's free large buffers by capacity in bytes.
type mapCache struct {
	mu    sync.Mutex
	free  map[int][][]byte
	bytes int
}

// allocBig gives s a mapped buffer for n elements, from the cache or new; ok
// is false when the system refuses a mapping (the caller uses the heap).
func (c *CPU) allocBig(s *CPUStorage, n int) bool {
	_, capacity := sizeClass(n * s.dt.Size())
	c.big.mu.Lock()
	var mem []byte
	if l := c.big.free[capacity]; len(l) > 0 {
		mem = l[len(l)-1]
		c.big.free[capacity] = l[:len(l)-1]
		c.big.bytes -= capacity
	}
	c.big.mu.Unlock()
	if mem == nil {
		var err error
		if mem, err = mapAnon(capacity); err != nil {
			return false
		}
		adviseHuge(mem)
	}
	s.mapped, s.big = mem, true
	p := unsafe.Pointer(unsafe.SliceData(mem))
	if s.dt == F32 {
		s.F32 = unsafe.Slice((*float32)(p), n)
	} else {
		s.U16 = unsafe.Slice((*uint16)(p), n)
	}
	s.cleanup = runtime.AddCleanup(s, unmapAnon, mem)
	return true
}

// freeBig puts a large buffer back in the cache, or unmaps it when the cache
// is full.
func (c *CPU) freeBig(s *CPUStorage) {
	mem := s.mapped
	s.cleanup.Stop()
	s.mapped, s.big, s.F32, s.U16 = nil, false, nil, nil
	c.big.mu.Lock()
	if c.big.bytes+len(mem) <= bigCacheLimit {
		if c.big.free == nil {
			c.big.free = map[int][][]byte{}
		}
		c.big.free[len(mem)] = append(c.big.free[len(mem)], mem)
		c.big.bytes += len(mem)
		mem = nil
	}
	c.big.mu.Unlock()
	if mem != nil {
		unmapAnon(mem)
	}
}

//go:build darwin

package metal

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego/objc"
)

// Device is one Metal GPU: its command queue, the library compiled from the
// embedded MSL and a compute pipeline per kernel.
//
// Work is encoded into one command buffer per operation and committed without
// waiting; command buffers of one queue run in the order they were committed,
// and Metal tracks the buffers they share, so an operation sees the results of
// the ones before it. Synchronize (and Read, Write) waits for what was committed
// and reports the first command buffer that failed. A Device is safe for
// concurrent use: a mutex orders the encoding.
type Device struct {
	mu      sync.Mutex
	index   int
	name    string
	dev     objc.ID
	queue   objc.ID
	lib     objc.ID
	dummy   objc.ID // a small buffer bound where an optional operand is absent
	pipes   map[string]pipeline
	pending []objc.ID // committed command buffers, retained, oldest first
	closed  bool

	// free holds released buffers by size class for reuse (see newBuffer).
	allocMu sync.Mutex
	free    map[int][]objc.ID
	cached  int
}

// maxCached bounds the bytes of freed buffers kept for reuse.
const maxCached = 512 << 20

type pipeline struct {
	id         objc.ID
	maxThreads int
}

// maxPending bounds the command buffers in flight before an operation waits for
// the oldest.
const maxPending = 64

// Open opens Metal device index (0 is the system default device) and compiles
// the kernels. Without Metal the error wraps ErrNoDevice; a kernel that does not
// compile gives the compiler's message.
func Open(index int) (*Device, error) {
	if err := load(); err != nil {
		return nil, err
	}
	if index < 0 {
		return nil, fmt.Errorf("%w: device index %d", ErrNoDevice, index)
	}
	d := &Device{index: index, pipes: map[string]pipeline{}, free: map[int][]objc.ID{}}
	err := onThread(func() error {
		if index == 0 {
			d.dev = mtlCreateSystemDefaultDevice()
		} else {
			all := mtlCopyAllDevices()
			if all != 0 {
				if n := int(objc.Send[uint](all, sel.count)); index < n {
					d.dev = all.Send(sel.objectAtIndex, uint(index)).Send(sel.retain)
				}
				release(all)
			}
		}
		if d.dev == 0 {
			return fmt.Errorf("%w: device %d not found", ErrNoDevice, index)
		}
		d.name = goString(d.dev.Send(sel.name))
		// The GEMMs use simdgroup matrices, which Apple7 GPUs (M1) and later have.
		if !objc.Send[bool](d.dev, sel.supportsFamily, int(mtlGPUFamilyApple7)) {
			return fmt.Errorf("%w: %s is not an Apple7 GPU (M1 or later), which the kernels need", ErrUnsupported, d.name)
		}
		if d.queue = d.dev.Send(sel.newCommandQueue); d.queue == 0 {
			return fmt.Errorf("metal: %s: newCommandQueue failed", d.name)
		}
		if d.dummy = d.dev.Send(sel.newBufferWithLength, uint(256), uint(mtlResourceStorageModeShared)); d.dummy == 0 {
			return fmt.Errorf("metal: %s: newBufferWithLength failed", d.name)
		}
		return d.compile()
	})
	if err != nil {
		d.release()
		return nil, err
	}
	return d, nil
}

// onThread runs fn on a locked OS thread inside an autorelease pool.
func onThread(fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pool := newPool()
	defer pool.Send(sel.drain)
	return fn()
}

// compile builds the library from the embedded sources and a pipeline for every
// kernel of the table.
func (d *Device) compile() error {
	lib, err := d.compileSource(mslSource())
	if err != nil {
		return err
	}
	d.lib = lib
	var nserr objc.ID
	for _, k := range kernels {
		name := newString(k.name)
		fn := d.lib.Send(sel.newFunctionWithName, name)
		release(name)
		if fn == 0 {
			return fmt.Errorf("metal: kernel %s is not in the compiled library", k.name)
		}
		nserr = 0
		p := d.dev.Send(sel.newComputePipelineState, fn, unsafe.Pointer(&nserr))
		release(fn)
		if p == 0 {
			return fmt.Errorf("metal: pipeline for kernel %s: %s", k.name, errorText(nserr, "unknown error"))
		}
		d.pipes[k.name] = pipeline{id: p, maxThreads: int(objc.Send[uint](p, sel.maxTotalThreadsPerThreadgroup))}
		// The kernels assume SIMD-groups of 32 threads, as on every Apple GPU.
		if w := objc.Send[uint](p, sel.threadExecutionWidth); w != 32 {
			return fmt.Errorf("%w: kernel %s runs in SIMD-groups of %d threads on %s, the kernels assume 32", ErrUnsupported, k.name, w, d.name)
		}
	}
	return nil
}

// compileSource compiles MSL source into a library (owned: release it) for MSL
// languageVersion with fast math off; a failure carries the compiler's message.
// Call it inside onThread.
func (d *Device) compileSource(source string) (objc.ID, error) {
	src := newString(source)
	defer release(src)
	opts := classMTLCompileOptions.Send(sel.alloc).Send(sel.init)
	defer release(opts)
	opts.Send(sel.setLanguageVersion, uint(languageVersion))
	opts.Send(sel.setFastMathEnabled, false)
	var nserr objc.ID
	lib := d.dev.Send(sel.newLibraryWithSource, src, opts, unsafe.Pointer(&nserr))
	if lib == 0 {
		return 0, fmt.Errorf("metal: compiling the kernels for %s (MSL %d.%d): %s", d.name,
			languageVersion>>16, languageVersion&0xffff, errorText(nserr, "unknown error"))
	}
	return lib, nil
}

// Name returns the device's name, e.g. "Apple M2 Pro".
func (d *Device) Name() string { return d.name }

// Synchronize waits for every committed command buffer and returns the error of
// the first that failed.
func (d *Device) Synchronize() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.waitLocked(0)
}

// waitLocked waits until at most keep command buffers are pending.
func (d *Device) waitLocked(keep int) error {
	var first error
	for len(d.pending) > keep {
		cb := d.pending[0]
		d.pending = d.pending[1:]
		err := onThread(func() error {
			cb.Send(sel.waitUntilCompleted)
			if objc.Send[uint](cb, sel.status) == mtlCommandBufferStatusError {
				return fmt.Errorf("metal: %s: command buffer failed: %s", d.name, errorText(cb.Send(sel.error), "unknown error"))
			}
			return nil
		})
		release(cb)
		if first == nil {
			first = err
		}
	}
	return first
}

// Close waits for the queued work and releases the device.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	err := d.waitLocked(0)
	d.release()
	d.closed = true
	return err
}

func (d *Device) release() {
	d.dropCache()
	d.allocMu.Lock()
	d.free = nil
	d.allocMu.Unlock()
	for _, p := range d.pipes {
		release(p.id)
	}
	d.pipes = nil
	release(d.lib)
	release(d.dummy)
	release(d.queue)
	release(d.dev)
	d.lib, d.dummy, d.queue, d.dev = 0, 0, 0, 0
}

// newBuffer returns a shared-storage buffer of sizeClass(n) bytes: a freed one
// of that size when there is one, else a new one. Reusing a buffer that
// committed work still reads is safe: the queue runs command buffers in order
// and Metal tracks the buffers they share.
func (d *Device) newBuffer(n int) (objc.ID, int, error) {
	size := sizeClass(n)
	d.allocMu.Lock()
	if l := d.free[size]; len(l) > 0 {
		b := l[len(l)-1]
		d.free[size] = l[:len(l)-1]
		d.cached -= size
		d.allocMu.Unlock()
		return b, size, nil
	}
	d.allocMu.Unlock()
	b := d.dev.Send(sel.newBufferWithLength, uint(size), uint(mtlResourceStorageModeShared))
	if b == 0 {
		// Let the cached buffers go and try once more.
		d.dropCache()
		b = d.dev.Send(sel.newBufferWithLength, uint(size), uint(mtlResourceStorageModeShared))
	}
	if b == 0 {
		return 0, 0, fmt.Errorf("metal: %s: allocating %d bytes failed (out of memory?)", d.name, size)
	}
	return b, size, nil
}

// freeBuffer keeps a buffer of size bytes (from newBuffer) for reuse, or
// releases it when the cache is full.
func (d *Device) freeBuffer(b objc.ID, size int) {
	d.allocMu.Lock()
	if d.free != nil && d.cached+size <= maxCached {
		d.free[size] = append(d.free[size], b)
		d.cached += size
		d.allocMu.Unlock()
		return
	}
	d.allocMu.Unlock()
	release(b)
}

// dropCache releases the buffers kept for reuse.
func (d *Device) dropCache() {
	d.allocMu.Lock()
	defer d.allocMu.Unlock()
	for _, l := range d.free {
		for _, b := range l {
			release(b)
		}
	}
	if d.free != nil {
		d.free = map[int][]objc.ID{}
	}
	d.cached = 0
}

// contents returns the CPU address of a shared buffer.
func contents(buf objc.ID) unsafe.Pointer {
	return objc.Send[unsafe.Pointer](buf, sel.contents)
}

var errClosed = errors.New("metal: device closed")

// encoder is one operation being encoded: a command buffer with one compute
// encoder, and the temporary buffers to release once it is committed.
type encoder struct {
	d     *Device
	cb    objc.ID
	ce    objc.ID
	temps []tempBuffer
}

type tempBuffer struct {
	id   objc.ID
	size int // 0: not from the cache, released rather than kept
}

// upload returns a new buffer holding data, released once the operation is
// committed. It never comes from the cache: the CPU writes it now, and a cached
// buffer may still be in use by work on the queue.
func (e *encoder) upload(data []byte) (objc.ID, error) {
	b := e.d.dev.Send(sel.newBufferWithLength, uint(max(len(data), 16)), uint(mtlResourceStorageModeShared))
	if b == 0 {
		return 0, fmt.Errorf("metal: %s: allocating %d bytes failed (out of memory?)", e.d.name, len(data))
	}
	e.temps = append(e.temps, tempBuffer{b, 0})
	copy(unsafe.Slice((*byte)(contents(b)), len(data)), data)
	return b, nil
}

// run encodes an operation with fn into a new command buffer and commits it.
// When fn fails nothing is committed.
func (d *Device) run(fn func(e *encoder) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errClosed
	}
	if err := d.waitLocked(maxPending - 1); err != nil {
		return err
	}
	return onThread(func() error {
		e := &encoder{d: d}
		defer func() {
			for _, t := range e.temps {
				if t.size == 0 {
					release(t.id)
				} else {
					d.freeBuffer(t.id, t.size)
				}
			}
		}()
		e.cb = d.queue.Send(sel.commandBuffer)
		if e.cb == 0 {
			return fmt.Errorf("metal: %s: commandBuffer failed", d.name)
		}
		e.ce = e.cb.Send(sel.computeCommandEncoder)
		if e.ce == 0 {
			return fmt.Errorf("metal: %s: computeCommandEncoder failed", d.name)
		}
		err := fn(e)
		e.ce.Send(sel.endEncoding)
		if err != nil {
			return err
		}
		e.cb.Send(sel.retain)
		e.cb.Send(sel.commit)
		d.pending = append(d.pending, e.cb)
		return nil
	})
}

// temp allocates a buffer that is handed back once the operation is committed
// (whatever reuses it runs after this operation).
func (e *encoder) temp(n int) (objc.ID, error) {
	b, size, err := e.d.newBuffer(n)
	if err != nil {
		return 0, err
	}
	e.temps = append(e.temps, tempBuffer{b, size})
	return b, nil
}

// dispatch encodes kernel name over grid threadgroups of threads threads, with
// bufs bound at indices 0.. (0 binds a dummy buffer) and p as the parameter
// struct after them. The table in msl.go must agree: the number of buffers and
// the parameter words are checked here.
func (e *encoder) dispatch(name string, grid [3]int, threads int, p *params, bufs ...objc.ID) error {
	k := kernelByName(name)
	if k == nil {
		return fmt.Errorf("metal: kernel %s is not in the table", name)
	}
	if p.err != nil {
		return fmt.Errorf("metal: %s: %w", name, p.err)
	}
	if len(bufs) != k.buffers() || len(p.w) != k.words {
		return fmt.Errorf("metal: %s: %d buffers and %d parameter words, the kernel takes %d and %d",
			name, len(bufs), len(p.w), k.buffers(), k.words)
	}
	pl, ok := e.d.pipes[name]
	if !ok {
		return fmt.Errorf("metal: kernel %s has no pipeline", name)
	}
	if threads > pl.maxThreads {
		return fmt.Errorf("%w: kernel %s takes at most %d threads per threadgroup on %s, want %d",
			ErrUnsupported, name, pl.maxThreads, e.d.name, threads)
	}
	for _, g := range grid {
		if g <= 0 {
			return nil // nothing to do
		}
	}
	e.ce.Send(sel.setComputePipelineState, pl.id)
	for i, b := range bufs {
		if b == 0 {
			b = e.d.dummy
		}
		e.ce.Send(sel.setBuffer, b, uint(0), uint(i))
	}
	pb := p.bytes()
	e.ce.Send(sel.setBytes, unsafe.Pointer(&pb[0]), uint(len(pb)), uint(len(bufs)))
	runtime.KeepAlive(pb)
	e.ce.Send(sel.dispatchThreadgroups,
		mtlSize{uint(grid[0]), uint(grid[1]), uint(grid[2])},
		mtlSize{uint(threads), 1, 1})
	return nil
}

// dispatch1D runs name over n elements, one thread each.
func (e *encoder) dispatch1D(name string, n int, p *params, bufs ...objc.ID) error {
	if n <= 0 {
		return nil
	}
	return e.dispatch(name, [3]int{(n + threads1D - 1) / threads1D, 1, 1}, threads1D, p, bufs...)
}

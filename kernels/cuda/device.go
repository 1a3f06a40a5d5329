package cuda

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// Device is one CUDA device opened through the driver API: its primary context,
// one stream on which every copy and kernel of this package runs in order, the
// kernel modules loaded from the embedded PTX, and a caching allocator.
//
// # Threads and the context
//
// A CUDA context is current per OS thread, and Go moves goroutines between
// threads; without care the second driver call on a goroutine can run on another
// thread and fail with CUDA_ERROR_INVALID_CONTEXT (201). Every method of Device
// (and of Backend) therefore runs its driver calls in one critical section that
// takes the device's mutex, locks the goroutine to its OS thread
// (runtime.LockOSThread) and makes the context current with cuCtxSetCurrent,
// which costs a thread-local store; the thread is unlocked when the section
// ends. This keeps calls from any goroutine valid without a dedicated
// goroutine and channel hop per call, and the mutex serialises use of the single
// stream and the allocator. Work is asynchronous on the stream: methods return
// once it is queued, except those that read results back (Backend.Read) or
// Synchronize.
//
// A Device is safe for concurrent use.
type Device struct {
	drv   *driver
	index int
	dev   int32
	name  string
	major int
	minor int
	sms   int
	total uint64

	mu      sync.Mutex
	closed  bool
	ctx     uintptr
	stream  uintptr
	cache   *memCache
	modules map[string]uintptr // PTX file -> CUmodule
	funcs   map[string]uintptr // kernel name -> CUfunction
	blas    *cublas            // nil when cuBLAS is absent
	blasErr error              // why cuBLAS is not used
	lt      *cublasLt          // loaded at first use (cublasLt); nil when absent
	ltErr   error              // why cuBLASLt is not used
	ltTried bool
}

// Device attributes (CUdevice_attribute).
const (
	attrMultiprocessorCount = 16
	attrComputeMajor        = 75
	attrComputeMinor        = 76
)

// Open opens CUDA device index (0 for the first GPU). Without a usable driver it
// returns an error wrapping ErrNoDriver that says what was tried.
func Open(index int) (*Device, error) {
	drv, err := getDriver()
	if err != nil {
		return nil, err
	}
	return openDevice(drv, index)
}

func openDevice(drv *driver, index int) (*Device, error) {
	var n int32
	if err := drv.check("cuDeviceGetCount", drv.cuDeviceGetCount(&n)); err != nil {
		return nil, err
	}
	if index < 0 || index >= int(n) {
		return nil, fmt.Errorf("cuda: device %d out of range (%d devices)", index, n)
	}
	d := &Device{drv: drv, index: index, modules: map[string]uintptr{}, funcs: map[string]uintptr{}}
	if err := drv.check("cuDeviceGet", drv.cuDeviceGet(&d.dev, int32(index))); err != nil {
		return nil, err
	}
	var name [256]byte
	if err := drv.check("cuDeviceGetName", drv.cuDeviceGetName(&name[0], int32(len(name)), d.dev)); err != nil {
		return nil, err
	}
	d.name = goString(&name[0])
	for _, a := range []struct {
		attr int32
		dst  *int
	}{{attrComputeMajor, &d.major}, {attrComputeMinor, &d.minor}, {attrMultiprocessorCount, &d.sms}} {
		var v int32
		if err := drv.check("cuDeviceGetAttribute", drv.cuDeviceGetAttribute(&v, a.attr, d.dev)); err != nil {
			return nil, err
		}
		*a.dst = int(v)
	}
	if err := drv.check("cuDeviceTotalMem_v2", drv.cuDeviceTotalMem(&d.total, d.dev)); err != nil {
		return nil, err
	}
	if d.major < 8 {
		return nil, fmt.Errorf("cuda: %s has compute capability %d.%d; the embedded PTX needs 8.0 or newer: %w", d.name, d.major, d.minor, ErrUnsupported)
	}
	// The cache may hold up to a quarter of the device's memory.
	d.cache = newMemCache(d.total / 4)

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := drv.check("cuDevicePrimaryCtxRetain", drv.cuDevicePrimaryCtxRetain(&d.ctx, d.dev)); err != nil {
		return nil, err
	}
	if err := drv.check("cuCtxSetCurrent", drv.cuCtxSetCurrent(d.ctx)); err != nil {
		drv.cuDevicePrimaryCtxRelease(d.dev)
		return nil, err
	}
	const streamNonBlocking = 1
	if err := drv.check("cuStreamCreate", drv.cuStreamCreate(&d.stream, streamNonBlocking)); err != nil {
		drv.cuDevicePrimaryCtxRelease(d.dev)
		return nil, err
	}
	d.blas, d.blasErr = loadCublas(d)
	return d, nil
}

// Name returns the device's name, e.g. "NVIDIA H100 80GB HBM3".
func (d *Device) Name() string { return d.name }

// Index returns the device ordinal Open was given.
func (d *Device) Index() int { return d.index }

// ComputeCapability returns the major and minor compute capability (9, 0 for an H100).
func (d *Device) ComputeCapability() (major, minor int) { return d.major, d.minor }

// Multiprocessors returns the number of streaming multiprocessors.
func (d *Device) Multiprocessors() int { return d.sms }

// TotalMemory returns the device's memory in bytes.
func (d *Device) TotalMemory() uint64 { return d.total }

// DriverVersion returns the CUDA version of the driver, e.g. 12040 for 12.4.
func (d *Device) DriverVersion() int { return d.drv.version }

// DriverPath returns the driver library that was loaded.
func (d *Device) DriverPath() string { return d.drv.path }

// BLAS describes the GEMM library in use: the cuBLAS file loaded, or why the
// embedded PTX GEMM is used instead.
func (d *Device) BLAS() string {
	if d.blas != nil {
		return "cuBLAS " + d.blas.path
	}
	return "PTX GEMM (" + d.blasErr.Error() + ")"
}

func (d *Device) String() string {
	return fmt.Sprintf("cuda:%d (%s, sm_%d%d, %d MiB)", d.index, d.name, d.major, d.minor, d.total>>20)
}

var errClosed = errors.New("cuda: device is closed")

// do runs fn with the device's context current on a locked OS thread, holding
// the device's mutex (see Device).
func (d *Device) do(fn func() error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errClosed
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := d.drv.check("cuCtxSetCurrent", d.drv.cuCtxSetCurrent(d.ctx)); err != nil {
		return err
	}
	return fn()
}

// Synchronize waits until the work queued on the device's stream is done and
// returns the first asynchronous error, if any.
func (d *Device) Synchronize() error {
	return d.do(d.syncLocked)
}

func (d *Device) syncLocked() error {
	return d.drv.check("cuStreamSynchronize", d.drv.cuStreamSynchronize(d.stream))
}

// Stats returns the allocator's counters.
func (d *Device) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cache == nil {
		return Stats{}
	}
	return d.cache.stats
}

// SetCacheLimit bounds the bytes the allocator keeps for reuse (a quarter of the
// device's memory by default); 0 frees every cached block.
func (d *Device) SetCacheLimit(bytes uint64) error {
	return d.do(func() error {
		if err := d.syncLocked(); err != nil {
			return err
		}
		return d.freeBlocks(d.cache.setLimit(bytes))
	})
}

// malloc returns n bytes of device memory (rounded up; 512-byte aligned), from
// the free lists when possible. When the device is out of memory it waits for
// the stream, frees the cached blocks and tries once more. Caller holds do.
func (d *Device) malloc(n uint64) (uint64, error) {
	size := roundBytes(n)
	if p, ok := d.cache.take(size); ok {
		return p, nil
	}
	var p uint64
	r := d.drv.cuMemAlloc(&p, size)
	if r == errOutOfMemory && d.cache.stats.Cached > 0 {
		if err := d.syncLocked(); err != nil {
			return 0, err
		}
		if err := d.freeBlocks(d.cache.drain()); err != nil {
			return 0, err
		}
		r = d.drv.cuMemAlloc(&p, size)
	}
	if err := d.drv.check("cuMemAlloc_v2", r); err != nil {
		return 0, fmt.Errorf("allocating %d bytes on %s (%d in use, %d cached): %w", size, d.name, d.cache.stats.InUse, d.cache.stats.Cached, err)
	}
	d.cache.stats.DriverAlloc++
	d.cache.used(p, size)
	return p, nil
}

// release hands the block at p back to the free lists; blocks the cache cannot
// keep go back to the driver once the stream has finished with them. Caller
// holds do.
func (d *Device) release(p uint64) error {
	evict, ok := d.cache.put(p)
	if !ok || len(evict) == 0 {
		return nil
	}
	if err := d.syncLocked(); err != nil {
		return err
	}
	return d.freeBlocks(evict)
}

func (d *Device) freeBlocks(bs []block) error {
	var first error
	for _, b := range bs {
		if err := d.drv.check("cuMemFree_v2", d.drv.cuMemFree(b.ptr)); err != nil && first == nil {
			first = err
		}
		d.cache.stats.DriverFree++
	}
	return first
}

// function returns the kernel name, loading the module that defines it at first
// use. Caller holds do.
func (d *Device) function(name string) (uintptr, error) {
	if f, ok := d.funcs[name]; ok {
		return f, nil
	}
	file, ok := kernelFile(name)
	if !ok {
		return 0, fmt.Errorf("cuda: no embedded kernel %q", name)
	}
	m, ok := d.modules[file]
	if !ok {
		var err error
		if m, err = d.drv.loadModule(ptxImage(file)); err != nil {
			return 0, fmt.Errorf("loading %s: %w", file, err)
		}
		d.modules[file] = m
	}
	var f uintptr
	if err := d.drv.check("cuModuleGetFunction", d.drv.cuModuleGetFunction(&f, m, name)); err != nil {
		return 0, fmt.Errorf("%s in %s: %w", name, file, err)
	}
	d.funcs[name] = f
	return f, nil
}

// launch queues kernel name on the stream. Caller holds do.
func (d *Device) launch(name string, grid, block [3]uint32, smem uint32, args *kernelArgs) error {
	f, err := d.function(name)
	if err != nil {
		return err
	}
	for _, g := range grid {
		if g == 0 {
			return nil // nothing to do
		}
	}
	ptrs := args.pointers()
	var pp unsafe.Pointer
	if len(ptrs) > 0 {
		pp = unsafe.Pointer(&ptrs[0])
	}
	r := d.drv.cuLaunchKernel(f, grid[0], grid[1], grid[2], block[0], block[1], block[2], smem, d.stream, pp, nil)
	runtime.KeepAlive(ptrs)
	runtime.KeepAlive(args)
	if err := d.drv.check("cuLaunchKernel", r); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Close waits for the stream, frees the device memory this package allocated
// (cached and live: storage still referenced must not be used afterwards),
// unloads the modules and releases the context. Close is idempotent.
func (d *Device) Close() error {
	var errs []error
	err := d.do(func() error {
		errs = append(errs, d.syncLocked())
		if d.lt != nil {
			errs = append(errs, d.lt.destroy(d))
			d.lt = nil
		}
		if d.blas != nil {
			d.blas.destroy()
		}
		errs = append(errs, d.freeBlocks(d.cache.drain()))
		for p := range d.cache.live {
			errs = append(errs, d.release(p))
		}
		errs = append(errs, d.freeBlocks(d.cache.drain()))
		for _, m := range d.modules {
			errs = append(errs, d.drv.check("cuModuleUnload", d.drv.cuModuleUnload(m)))
		}
		errs = append(errs, d.drv.check("cuStreamDestroy_v2", d.drv.cuStreamDestroy(d.stream)))
		errs = append(errs, d.drv.check("cuDevicePrimaryCtxRelease_v2", d.drv.cuDevicePrimaryCtxRelease(d.dev)))
		d.closed = true
		return nil
	})
	if errors.Is(err, errClosed) {
		return nil
	}
	return errors.Join(append(errs, err)...)
}

// Timer measures device time between two points of the stream with CUDA events.
type Timer struct {
	d          *Device
	start, end uintptr
}

// StartTimer records an event on the stream; Stop records another and returns the
// milliseconds between them once the stream reaches it.
func (d *Device) StartTimer() (*Timer, error) {
	t := &Timer{d: d}
	err := d.do(func() error {
		if err := d.drv.check("cuEventCreate", d.drv.cuEventCreate(&t.start, 0)); err != nil {
			return err
		}
		if err := d.drv.check("cuEventCreate", d.drv.cuEventCreate(&t.end, 0)); err != nil {
			d.drv.cuEventDestroy(t.start)
			return err
		}
		return d.drv.check("cuEventRecord", d.drv.cuEventRecord(t.start, d.stream))
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Stop returns the elapsed device time in milliseconds and frees the events.
func (t *Timer) Stop() (float32, error) {
	var ms float32
	err := t.d.do(func() error {
		defer t.d.drv.cuEventDestroy(t.start)
		defer t.d.drv.cuEventDestroy(t.end)
		if err := t.d.drv.check("cuEventRecord", t.d.drv.cuEventRecord(t.end, t.d.stream)); err != nil {
			return err
		}
		if err := t.d.drv.check("cuEventSynchronize", t.d.drv.cuEventSynchronize(t.end)); err != nil {
			return err
		}
		return t.d.drv.check("cuEventElapsedTime", t.d.drv.cuEventElapsedTime(&ms, t.start, t.end))
	})
	return ms, err
}

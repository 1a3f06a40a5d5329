package cuda

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// driver is libcuda.so.1 bound with purego: the handful of driver API functions
// this package calls, as Go function values. The versioned (_v2) symbols are
// bound where they exist, as cuda.h's macros would bind them.
//
// Handles are kept as the C types' bit patterns: CUcontext, CUstream, CUevent,
// CUmodule and CUfunction as uintptr (C pointers, never Go memory), CUdeviceptr as
// uint64, CUdevice as int32.
type driver struct {
	path    string // the library that was loaded
	version int    // cuDriverGetVersion, e.g. 13000 for CUDA 13.0

	cuInit                    func(flags uint32) int32
	cuDriverGetVersion        func(v *int32) int32
	cuDeviceGetCount          func(n *int32) int32
	cuDeviceGet               func(dev *int32, ordinal int32) int32
	cuDeviceGetName           func(name *byte, n int32, dev int32) int32
	cuDeviceGetAttribute      func(v *int32, attr int32, dev int32) int32
	cuDeviceTotalMem          func(bytes *uint64, dev int32) int32
	cuDevicePrimaryCtxRetain  func(ctx *uintptr, dev int32) int32
	cuDevicePrimaryCtxRelease func(dev int32) int32
	cuCtxSetCurrent           func(ctx uintptr) int32
	cuCtxSynchronize          func() int32
	cuStreamCreate            func(s *uintptr, flags uint32) int32
	cuStreamSynchronize       func(s uintptr) int32
	cuStreamDestroy           func(s uintptr) int32
	cuEventCreate             func(e *uintptr, flags uint32) int32
	cuEventRecord             func(e, s uintptr) int32
	cuEventSynchronize        func(e uintptr) int32
	cuEventElapsedTime        func(ms *float32, start, end uintptr) int32
	cuEventDestroy            func(e uintptr) int32
	cuMemGetInfo              func(free, total *uint64) int32
	cuMemAlloc                func(p *uint64, size uint64) int32
	cuMemFree                 func(p uint64) int32
	cuMemcpyHtoDAsync         func(dst uint64, src unsafe.Pointer, n uint64, s uintptr) int32
	cuMemcpyDtoHAsync         func(dst unsafe.Pointer, src uint64, n uint64, s uintptr) int32
	cuMemcpyDtoDAsync         func(dst, src uint64, n uint64, s uintptr) int32
	cuMemsetD32Async          func(dst uint64, v uint32, n uint64, s uintptr) int32
	cuModuleLoadData          func(m *uintptr, image unsafe.Pointer) int32
	cuModuleLoadDataEx        func(m *uintptr, image unsafe.Pointer, n uint32, opts unsafe.Pointer, vals unsafe.Pointer) int32
	cuModuleUnload            func(m uintptr) int32
	cuModuleGetFunction       func(f *uintptr, m uintptr, name string) int32
	cuFuncSetAttribute        func(f uintptr, attr int32, v int32) int32
	cuLaunchKernel            func(f uintptr, gx, gy, gz, bx, by, bz, smem uint32, s uintptr, params unsafe.Pointer, extra unsafe.Pointer) int32
	cuGetErrorName            func(code int32, s **byte) int32
	cuGetErrorString          func(code int32, s **byte) int32
}

// symbol is one function to bind: the names to try, in order, and the Go
// function variable to bind the first one found to.
type symbol struct {
	names    []string
	fptr     any
	optional bool
}

// symbols lists what loadDriver binds.
func (d *driver) symbols() []symbol {
	return []symbol{
		{names: []string{"cuGetErrorName"}, fptr: &d.cuGetErrorName},
		{names: []string{"cuGetErrorString"}, fptr: &d.cuGetErrorString},
		{names: []string{"cuInit"}, fptr: &d.cuInit},
		{names: []string{"cuDriverGetVersion"}, fptr: &d.cuDriverGetVersion},
		{names: []string{"cuDeviceGetCount"}, fptr: &d.cuDeviceGetCount},
		{names: []string{"cuDeviceGet"}, fptr: &d.cuDeviceGet},
		{names: []string{"cuDeviceGetName"}, fptr: &d.cuDeviceGetName},
		{names: []string{"cuDeviceGetAttribute"}, fptr: &d.cuDeviceGetAttribute},
		{names: []string{"cuDeviceTotalMem_v2"}, fptr: &d.cuDeviceTotalMem},
		{names: []string{"cuDevicePrimaryCtxRetain"}, fptr: &d.cuDevicePrimaryCtxRetain},
		{names: []string{"cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"}, fptr: &d.cuDevicePrimaryCtxRelease},
		{names: []string{"cuCtxSetCurrent"}, fptr: &d.cuCtxSetCurrent},
		{names: []string{"cuCtxSynchronize"}, fptr: &d.cuCtxSynchronize},
		{names: []string{"cuStreamCreate"}, fptr: &d.cuStreamCreate},
		{names: []string{"cuStreamSynchronize"}, fptr: &d.cuStreamSynchronize},
		{names: []string{"cuStreamDestroy_v2"}, fptr: &d.cuStreamDestroy},
		{names: []string{"cuEventCreate"}, fptr: &d.cuEventCreate},
		{names: []string{"cuEventRecord"}, fptr: &d.cuEventRecord},
		{names: []string{"cuEventSynchronize"}, fptr: &d.cuEventSynchronize},
		{names: []string{"cuEventElapsedTime_v2", "cuEventElapsedTime"}, fptr: &d.cuEventElapsedTime},
		{names: []string{"cuEventDestroy_v2"}, fptr: &d.cuEventDestroy},
		{names: []string{"cuMemGetInfo_v2"}, fptr: &d.cuMemGetInfo},
		{names: []string{"cuMemAlloc_v2"}, fptr: &d.cuMemAlloc},
		{names: []string{"cuMemFree_v2"}, fptr: &d.cuMemFree},
		{names: []string{"cuMemcpyHtoDAsync_v2"}, fptr: &d.cuMemcpyHtoDAsync},
		{names: []string{"cuMemcpyDtoHAsync_v2"}, fptr: &d.cuMemcpyDtoHAsync},
		{names: []string{"cuMemcpyDtoDAsync_v2"}, fptr: &d.cuMemcpyDtoDAsync},
		{names: []string{"cuMemsetD32Async"}, fptr: &d.cuMemsetD32Async},
		{names: []string{"cuModuleLoadData"}, fptr: &d.cuModuleLoadData},
		{names: []string{"cuModuleLoadDataEx"}, fptr: &d.cuModuleLoadDataEx, optional: true},
		{names: []string{"cuModuleUnload"}, fptr: &d.cuModuleUnload},
		{names: []string{"cuModuleGetFunction"}, fptr: &d.cuModuleGetFunction},
		{names: []string{"cuFuncSetAttribute"}, fptr: &d.cuFuncSetAttribute, optional: true},
		{names: []string{"cuLaunchKernel"}, fptr: &d.cuLaunchKernel},
	}
}

// driverCandidates are the files tried for the driver library, in order: the
// loader's search path first, then where distributions and WSL put it when the
// loader is not configured for it.
func driverCandidates() []string {
	c := []string{"libcuda.so.1"}
	switch runtime.GOARCH {
	case "amd64":
		c = append(c, "/usr/lib/x86_64-linux-gnu/libcuda.so.1")
	case "arm64":
		c = append(c, "/usr/lib/aarch64-linux-gnu/libcuda.so.1")
	}
	return append(c, "/usr/lib64/libcuda.so.1", "/usr/lib/wsl/lib/libcuda.so.1")
}

// noDriverError says why no driver could be used; it wraps ErrNoDriver and the
// underlying error, if any.
type noDriverError struct {
	msg string
	err error
}

func (e *noDriverError) Error() string { return ErrNoDriver.Error() + ": " + e.msg }

func (e *noDriverError) Unwrap() []error {
	if e.err == nil {
		return []error{ErrNoDriver}
	}
	return []error{ErrNoDriver, e.err}
}

// loadDriver opens the first of candidates that loads, binds the driver API and
// calls cuInit. Every failure wraps ErrNoDriver.
func loadDriver(candidates []string) (*driver, error) {
	if !supported {
		_, err := dlopen("")
		return nil, err
	}
	var h uintptr
	var path string
	var lastErr error
	for _, c := range candidates {
		lib, err := dlopen(c)
		if err == nil {
			h, path = lib, c
			break
		}
		lastErr = err
	}
	if h == 0 {
		msg := fmt.Sprintf("libcuda.so.1 not found (tried %s)", strings.Join(candidates, ", "))
		if lastErr != nil {
			msg += ": " + lastErr.Error()
		}
		return nil, &noDriverError{msg: msg}
	}
	d := &driver{path: path}
	if err := bindSymbols(h, path, d.symbols()); err != nil {
		return nil, err
	}
	if r := d.cuInit(0); r != 0 {
		err := d.check("cuInit", r)
		return nil, &noDriverError{msg: fmt.Sprintf("%s loaded, but cuInit failed: %s", path, strings.TrimPrefix(err.Error(), "cuda: cuInit: ")), err: err}
	}
	var v int32
	if err := d.check("cuDriverGetVersion", d.cuDriverGetVersion(&v)); err != nil {
		return nil, err
	}
	d.version = int(v)
	return d, nil
}

// bindSymbols binds each of syms to the first of its names that lib h exports.
func bindSymbols(h uintptr, path string, syms []symbol) error {
	for _, s := range syms {
		var addr uintptr
		for _, n := range s.names {
			if a, err := dlsym(h, n); err == nil && a != 0 {
				addr = a
				break
			}
		}
		if addr == 0 {
			if s.optional {
				continue
			}
			return &noDriverError{msg: fmt.Sprintf("%s lacks %s (driver too old?)", path, strings.Join(s.names, " and "))}
		}
		bindFunc(s.fptr, addr)
	}
	return nil
}

var (
	defaultDriverOnce sync.Once
	defaultDriver     *driver
	defaultDriverErr  error
)

// getDriver loads the driver at first use (never at package initialisation) and
// returns the same result afterwards.
func getDriver() (*driver, error) {
	defaultDriverOnce.Do(func() {
		defaultDriver, defaultDriverErr = loadDriver(driverCandidates())
	})
	return defaultDriver, defaultDriverErr
}

// check turns a CUresult into nil or an *Error naming op.
func (d *driver) check(op string, r int32) error {
	if r == 0 {
		return nil
	}
	e := &Error{Op: op, Code: int(r)}
	if d != nil && d.cuGetErrorName != nil {
		var p *byte
		if d.cuGetErrorName(r, &p) == 0 {
			e.Name = goString(p)
		}
		p = nil
		if d.cuGetErrorString != nil && d.cuGetErrorString(r, &p) == 0 {
			e.Msg = goString(p)
		}
	}
	if e.Name == "" {
		e.Name = nameOr(resultNames, e.Code, "CUDA_ERROR")
	}
	return e
}

// goString copies the NUL-terminated C string at p (C memory, never Go memory).
func goString(p *byte) string {
	if p == nil {
		return ""
	}
	var b []byte
	for i := 0; i < 4096; i++ {
		c := *(*byte)(unsafe.Add(unsafe.Pointer(p), i))
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return string(b)
}

// DriverVersion loads the driver if needed and returns its CUDA version as
// cuDriverGetVersion gives it (e.g. 12040 for CUDA 12.4).
func DriverVersion() (int, error) {
	d, err := getDriver()
	if err != nil {
		return 0, err
	}
	return d.version, nil
}

// DeviceCount returns the number of CUDA devices.
func DeviceCount() (int, error) {
	d, err := getDriver()
	if err != nil {
		return 0, err
	}
	var n int32
	if err := d.check("cuDeviceGetCount", d.cuDeviceGetCount(&n)); err != nil {
		return 0, err
	}
	return int(n), nil
}

// JIT options of cuModuleLoadDataEx (CUjit_option).
const (
	jitErrorLogBuffer     = 5
	jitErrorLogBufferSize = 6
)

// jitValues is the optionValues array of cuModuleLoadDataEx for the error log
// options: a buffer and its size (passed as a pointer-sized value). Holding the
// buffer through a pointer keeps it on the heap, where it cannot move.
type jitValues struct {
	buf  *byte
	size uintptr
}

// loadModule JIT-compiles the NUL-terminated PTX image. When compilation fails,
// the error includes the JIT's error log.
func (d *driver) loadModule(img []byte) (uintptr, error) {
	var m uintptr
	if d.cuModuleLoadDataEx == nil {
		return m, d.check("cuModuleLoadData", d.cuModuleLoadData(&m, unsafe.Pointer(&img[0])))
	}
	buf := make([]byte, 16<<10)
	opts := &[2]int32{jitErrorLogBuffer, jitErrorLogBufferSize}
	vals := &jitValues{buf: &buf[0], size: uintptr(len(buf))}
	r := d.cuModuleLoadDataEx(&m, unsafe.Pointer(&img[0]), 2, unsafe.Pointer(opts), unsafe.Pointer(vals))
	if err := d.check("cuModuleLoadDataEx", r); err != nil {
		if log := strings.TrimSpace(string(buf[:max(0, bytesIndexZero(buf))])); log != "" {
			return 0, fmt.Errorf("%w; JIT log:\n%s", err, log)
		}
		return 0, err
	}
	return m, nil
}

func bytesIndexZero(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return len(b)
}

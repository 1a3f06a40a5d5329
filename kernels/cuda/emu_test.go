//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"os"
	"unsafe"

	"github.com/ebitengine/purego"
)

// When SDGO_EMU_LIB names the library testdata/emu/run.sh builds, the tests
// run against a fake driver: "device" memory is host memory and the kernels run
// in the library's host emulation of CUDA, so that the GPU tests check the
// kernels' logic and this package's Go side on a machine without a GPU. The
// fake driver is installed before any test opens the real one.
func init() {
	lib := os.Getenv("SDGO_EMU_LIB")
	if lib == "" {
		return
	}
	h, err := purego.Dlopen(lib, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		defaultDriverOnce.Do(func() { defaultDriverErr = fmt.Errorf("SDGO_EMU_LIB: %w", err) })
		return
	}
	var emuLaunch func(name string, gx, gy, gz, bx, by, bz, smem uint32, params unsafe.Pointer) int32
	var emuMalloc func(n uint64) uint64
	var emuFree func(p uint64)
	var emuMemcpy func(dst, src, n uint64)
	purego.RegisterLibFunc(&emuLaunch, h, "emu_launch")
	purego.RegisterLibFunc(&emuMalloc, h, "emu_malloc")
	purego.RegisterLibFunc(&emuFree, h, "emu_free")
	purego.RegisterLibFunc(&emuMemcpy, h, "emu_memcpy")
	var names []string
	d := &driver{path: lib, version: 12000}
	d.cuInit = func(uint32) int32 { return 0 }
	d.cuDriverGetVersion = func(v *int32) int32 { *v = 12000; return 0 }
	d.cuDeviceGetCount = func(n *int32) int32 { *n = 1; return 0 }
	d.cuDeviceGet = func(dev *int32, o int32) int32 { *dev = o; return 0 }
	d.cuDeviceGetName = func(name *byte, n int32, dev int32) int32 {
		copy(unsafe.Slice(name, n), "emulated\x00")
		return 0
	}
	d.cuDeviceGetAttribute = func(v *int32, attr, dev int32) int32 {
		switch attr {
		case attrComputeMajor:
			*v = 8
		case attrComputeMinor:
			*v = 0
		case attrMultiprocessorCount:
			*v = 4
		}
		return 0
	}
	d.cuDeviceTotalMem = func(b *uint64, dev int32) int32 { *b = 1 << 32; return 0 }
	d.cuDevicePrimaryCtxRetain = func(c *uintptr, dev int32) int32 { *c = 1; return 0 }
	d.cuDevicePrimaryCtxRelease = func(int32) int32 { return 0 }
	d.cuCtxSetCurrent = func(uintptr) int32 { return 0 }
	d.cuCtxSynchronize = func() int32 { return 0 }
	d.cuStreamCreate = func(s *uintptr, f uint32) int32 { *s = 1; return 0 }
	d.cuStreamSynchronize = func(uintptr) int32 { return 0 }
	d.cuStreamDestroy = func(uintptr) int32 { return 0 }
	d.cuEventCreate = func(e *uintptr, f uint32) int32 { *e = 1; return 0 }
	d.cuEventRecord = func(e, s uintptr) int32 { return 0 }
	d.cuEventSynchronize = func(uintptr) int32 { return 0 }
	d.cuEventElapsedTime = func(ms *float32, a, b uintptr) int32 { *ms = 0; return 0 }
	d.cuEventDestroy = func(uintptr) int32 { return 0 }
	d.cuMemGetInfo = func(f, t *uint64) int32 { *f, *t = 1<<32, 1<<32; return 0 }
	d.cuMemAlloc = func(p *uint64, n uint64) int32 { *p = emuMalloc(n); return 0 }
	d.cuMemFree = func(p uint64) int32 { emuFree(p); return 0 }
	d.cuMemcpyHtoDAsync = func(dst uint64, src unsafe.Pointer, n uint64, s uintptr) int32 {
		emuMemcpy(dst, uint64(uintptr(src)), n)
		return 0
	}
	d.cuMemcpyDtoHAsync = func(dst unsafe.Pointer, src uint64, n uint64, s uintptr) int32 {
		emuMemcpy(uint64(uintptr(dst)), src, n)
		return 0
	}
	d.cuMemcpyDtoDAsync = func(dst, src, n uint64, s uintptr) int32 { emuMemcpy(dst, src, n); return 0 }
	d.cuModuleLoadData = func(m *uintptr, img unsafe.Pointer) int32 { *m = 1; return 0 }
	d.cuModuleUnload = func(uintptr) int32 { return 0 }
	d.cuModuleGetFunction = func(f *uintptr, m uintptr, name string) int32 {
		names = append(names, name)
		*f = uintptr(len(names))
		return 0
	}
	d.cuLaunchKernel = func(f uintptr, gx, gy, gz, bx, by, bz, smem uint32, s uintptr, params, extra unsafe.Pointer) int32 {
		return emuLaunch(names[f-1], gx, gy, gz, bx, by, bz, smem, params)
	}
	defaultDriverOnce.Do(func() { defaultDriver = d })
	fakeCublas = func(*Device) (*cublas, error) { return emuCublas(), nil }
	// cuBLASLt: the host model of cublaslt_test.go, over the emulated memory.
	fakeCublasLt = func(*Device) (*cublasLt, error) { lt, _ := newFakeLt(); return lt, nil }
}

// emuCublas is a cuBLAS whose products run on the host (refGemm) over the
// emulator's "device" memory, so that the emulated tests check every cuBLAS
// call's arguments (operand order, transposes, leading dimensions, batch
// strides, dtypes, compute types) and results.
func emuCublas() *cublas {
	c := &cublas{path: "emulated cuBLAS (host GEMM)", handle: 1}
	c.cublasDestroy = func(uintptr) int32 { return 0 }
	c.cublasGemmEx = func(h uintptr, ta, tb, m, n, k int32, alpha unsafe.Pointer, a uint64, at, lda int32, b uint64, bt, ldb int32, beta unsafe.Pointer, cp uint64, ct, ldc, compute, algo int32) int32 {
		return refGemm{ta: ta, tb: tb, m: m, n: n, k: k, alpha: *(*float32)(alpha), beta: *(*float32)(beta),
			a: hostPtr(a), at: at, lda: lda, b: hostPtr(b), bt: bt, ldb: ldb, c: hostPtr(cp), ct: ct, ldc: ldc,
			batch: 1, compute: compute, algo: algo}.run()
	}
	c.cublasGemmStridedBatchedEx = func(h uintptr, ta, tb, m, n, k int32, alpha unsafe.Pointer, a uint64, at, lda int32, sa int64, b uint64, bt, ldb int32, sb int64, beta unsafe.Pointer, cp uint64, ct, ldc int32, sc int64, batch, compute, algo int32) int32 {
		return refGemm{ta: ta, tb: tb, m: m, n: n, k: k, alpha: *(*float32)(alpha), beta: *(*float32)(beta),
			a: hostPtr(a), at: at, lda: lda, sa: sa, b: hostPtr(b), bt: bt, ldb: ldb, sb: sb, c: hostPtr(cp), ct: ct, ldc: ldc, sc: sc,
			batch: batch, compute: compute, algo: algo}.run()
	}
	return c
}

// hostPtr turns an emulated device address (a host address) into a pointer.
func hostPtr(p uint64) unsafe.Pointer {
	u := uintptr(p)
	return *(*unsafe.Pointer)(unsafe.Pointer(&u))
}

package cuda

import (
	"math"
	"unsafe"
)

// maxRank is the number of dimensions the strided kernels index (the dims
// struct of the .cu sources); operands of higher rank after coalescing are
// split on the host.
const maxRank = 6

// dims is the C struct Dims of common.cuh: a shape and the element strides of up
// to three operands, passed to a kernel by value.
type dims struct {
	Rank    int64
	Shape   [maxRank]int64
	Strides [3][maxRank]int64
}

// kernelArgs packs the parameters of one cuLaunchKernel call: each value lies in
// its own 8-byte slot of one heap buffer (every parameter type this package
// passes needs at most 8-byte alignment, and a value narrower than its slot sits
// at the slot's start, as little-endian targets expect), and ptrs holds the
// address of each parameter, the void** that cuLaunchKernel reads. The buffer is
// referenced from ptrs, so it stays alive and in place as long as ptrs does.
type kernelArgs struct {
	slots []uint64
	index []int // the first slot of each parameter
}

func newArgs() *kernelArgs { return &kernelArgs{slots: make([]uint64, 0, 32)} }

func (a *kernelArgs) add(v uint64) *kernelArgs {
	a.index = append(a.index, len(a.slots))
	a.slots = append(a.slots, v)
	return a
}

// Ptr adds a device pointer (CUdeviceptr, 8 bytes).
func (a *kernelArgs) Ptr(p uint64) *kernelArgs { return a.add(p) }

// I64 adds a long long.
func (a *kernelArgs) I64(v int) *kernelArgs { return a.add(uint64(int64(v))) }

// I32 adds an int.
func (a *kernelArgs) I32(v int) *kernelArgs { return a.add(uint64(uint32(int32(v)))) }

// F32 adds a float.
func (a *kernelArgs) F32(v float32) *kernelArgs { return a.add(uint64(math.Float32bits(v))) }

// Dims adds a dims struct by value.
func (a *kernelArgs) Dims(d *dims) *kernelArgs {
	a.index = append(a.index, len(a.slots))
	a.slots = append(a.slots, uint64(d.Rank))
	for _, s := range d.Shape {
		a.slots = append(a.slots, uint64(s))
	}
	for _, st := range d.Strides {
		for _, s := range st {
			a.slots = append(a.slots, uint64(s))
		}
	}
	return a
}

// pointers returns the parameter addresses for cuLaunchKernel. The slots must
// not be appended to afterwards.
func (a *kernelArgs) pointers() []unsafe.Pointer {
	p := make([]unsafe.Pointer, len(a.index))
	for i, s := range a.index {
		p[i] = unsafe.Pointer(&a.slots[s])
	}
	return p
}

// Package metal runs sdgo's tensor operations on Apple GPUs through Metal,
// without cgo: Metal.framework and the Objective-C runtime are reached with
// github.com/ebitengine/purego (its objc package sends the messages), so a
// CGO_ENABLED=0 binary cross-compiled for darwin/arm64 uses the GPU of the Mac
// it runs on. On other systems the package still builds; opening a device fails
// with "metal: Metal needs macOS (this is GOOS/GOARCH)", wrapping ErrNoDevice.
//
// # Pieces
//
//   - The binding (objc_darwin.go): Metal.framework, Foundation and
//     CoreGraphics are opened at the first Open, never at package
//     initialisation; MTLCreateSystemDefaultDevice (device 0) and
//     MTLCopyAllDevices (the others) find the GPU.
//   - Device (device_darwin.go): the device, a command queue, the library and
//     one compute pipeline per kernel. The library is compiled from source with
//     newLibraryWithSource:options:error: and MTLCompileOptions.languageVersion
//     set to MSL 3.0 explicitly (a binary built without cgo carries no SDK
//     version, and Metal would otherwise fall back to an old language version),
//     fast math off. Compiler and command-buffer failures come back as errors
//     carrying NSError's localizedDescription. Each operation is one command
//     buffer, committed without waiting; Read, Write and Synchronize wait.
//   - Storage (storage_darwin.go): MTLBuffers in shared storage, which the CPU
//     reads and writes in place once the queued work has run. Freed buffers
//     are kept by size class (four per power of two) for reuse, up to 512 MiB.
//   - The kernels: Metal Shading Language sources (*.metal) in this directory,
//     embedded with go:embed on every system and compiled together at Open,
//     common.metal first: element-wise and copies (elementwise.metal), row
//     reductions (norm.metal), the GEMM and the implicit-GEMM convolution on
//     simdgroup_float8x8 matrices (gemm.metal) and flash-style attention with
//     an online softmax (attention.metal). msl.go holds the Go side's table of
//     kernel names, buffer indices and types and parameter-struct sizes.
//   - Backend (backend_darwin.go): tensor.Backend on a Device. Activations are
//     F32 and every sum accumulates in FP32; F16 and BF16 operands (weights,
//     gamma and beta, attention inputs, embedding tables) are widened as the
//     kernels read them, never converted whole.
//   - Precision (precision.go): Backend.SetPrecision(metal.FP16) runs MatMul,
//     Linear and Conv2d on half operands (simdgroup_half8x8) with FP32
//     accumulation; FP32, the default, stages them in float. FullPrecision
//     (tensor.FullPrecision) switches to FP32 for a force_upcast VAE.
//
// The backend needs an Apple7 GPU or later (M1 and later: simdgroup matrices,
// 32-thread SIMD-groups) and macOS 13 or later (MSL 3.0); Open says so
// otherwise.
//
// # Use
//
//	b, err := metal.OpenBackend(0)
//	if errors.Is(err, metal.ErrNoDevice) {
//		// not a Mac, or no GPU: use tensor.NewCPU()
//	}
//	defer b.Close()
//
// A program that imports the package (for its side effect is enough) can also
// open the device by name: tensor.OpenDevice("metal"), as `sd --device metal`
// does.
//
// # Tests
//
// On every system: msl_test.go parses the sources and checks them against the
// Go table (kernel names, [[buffer(n)]] indices and types, parameter struct
// sizes, shared constants, address spaces on every pointer); mslcxx_test.go
// compiles the sources with a C++ compiler against a stand-in metal_stdlib
// (testdata/mslshim) and runs every kernel on the CPU through a host emulation
// of threadgroups, barriers, simd reductions and simdgroup matrices
// (testdata/mslemu), comparing with plain loops. On a Mac, metal_darwin_test.go
// runs the shared conformance suite (tensor/backendtest) against the CPU
// backend; it skips without a device unless SDGO_METAL_REQUIRE=1.
package metal

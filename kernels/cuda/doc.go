// Package cuda runs sdgo's tensor operations on NVIDIA GPUs without cgo: the
// CUDA driver library (libcuda.so.1) is loaded at run time with
// github.com/ebitengine/purego, so a CGO_ENABLED=0 binary built on a machine
// without CUDA runs on one with a GPU, and on one without a GPU it still runs
// on the CPU.
//
// # Pieces
//
//   - The driver binding (driver.go): libcuda.so.1 is opened at the first call
//     of Open, DeviceCount or DriverVersion, never at package initialisation; the
//     versioned _v2 entry points are bound where they exist. Failures are *Error
//     values naming the function and the CUresult ("cuda: cuMemAlloc_v2:
//     CUDA_ERROR_OUT_OF_MEMORY (2): out of memory"); a missing or unusable driver
//     gives an error wrapping ErrNoDriver that says what was tried.
//   - Device (device.go): the primary context of one GPU, one stream, a caching
//     allocator (size-rounded free lists bounded to a quarter of the device's
//     memory; Stats), kernel modules loaded from the embedded PTX at first use.
//     See Device for how the context is kept current across goroutines.
//   - cuBLAS (cublas.go), loaded the same way when present ($CUDA_HOME/lib64,
//     /usr/local/cuda/lib64, /usr/local/cuda-*/lib64, then the loader path;
//     libcublas.so.13, .12, .11; Device.BLAS says which file) for the matrix
//     products, row-major through cublasGemmEx and cublasGemmStridedBatchedEx with
//     FP32 accumulation. Without it the embedded PTX GEMM runs them. SDGO_CUBLAS=off
//     turns cuBLAS off; SDGO_CUBLAS=/path/libcublas.so.12 picks a file.
//   - cuBLASLt (cublaslt.go): in TF32, FP16 and BF16 modes a MatMul with a bias
//     (every Linear layer) runs through cublasLtMatmul with the bias added in
//     the GEMM's epilogue (CUBLASLT_EPILOGUE_BIAS) instead of being copied into
//     the output first; libcublasLt (.so.13, .12, .11) is loaded at first use
//     from the directory of the libcublas in use, then the loader's path. The
//     descriptors and algorithm are kept per shape, the workspace (32 MiB) per
//     device. A product cuBLASLt cannot run falls back to the copy and
//     cublasGemmEx; FP32 mode never uses it. SDGO_CUBLASLT=off (read on each
//     product) turns it off; SDGO_CUBLASLT=/path/libcublasLt.so.12 picks a file.
//   - The kernels: CUDA C sources (*.cu) in this directory, compiled by
//     `make ptx` to PTX for compute_80, which the driver JIT-compiles for sm_80,
//     sm_90 and later GPUs. The .ptx files are committed and embedded; a test
//     checks that each one was built from the current source.
//   - Backend (backend.go, matmul.go): tensor.Backend on a Device.
//   - Precision (precision.go, mixed.cu): Backend.SetPrecision(cuda.FP16) (or
//     BF16) runs MatMul, Conv2d and Attention on the tensor cores with F16/BF16
//     operands, FP32 accumulation and F32 results (the products through cuBLAS,
//     convolutions and attention as below); cuda.TF32 lets F32 products use
//     TF32. FP32, the default, keeps every product FP32.
//   - Normalisations (norm.cu): group norm in two kernels, statistics over
//     chunks of each group (enough blocks to fill the GPU when the groups are
//     few and long, as in the VAE) combined in double, then the normalisation
//     four elements per thread; layer norm, softmax and moments one block per row.
//   - The timestep embedding (timestep.go, elementwise.cu) on the device, in
//     double precision like the CPU backend, so that the two agree bit for bit.
//   - Profiling (profile.go): Backend.SetProfiling times every operation with
//     CUDA events (each then waits for the device) and Profile reports the time
//     per operation and path; `sd bench --profile` prints it.
//   - Attention in FP16 and BF16 modes (flash_tc.go, attention.cu): one fused
//     tensor-core flash-attention kernel (mma.sync with F16/BF16 operands, FP32
//     accumulation and online softmax; K and V tiles double-buffered with
//     cp.async; variants for head dimensions 48, 64, 80 and 160, the smallest
//     that holds the head used) for head dimensions up to 160. q, k and v
//     views of the mode's dtype with 16-byte rows are read in place, others
//     (F32 activations) through a converted half copy; larger heads (the VAE's
//     512) take the GEMM, softmax, GEMM path (attnMixed). SDGO_CUDA_ATTENTION=gemm,
//     read on each call, forces that path for every shape.
//   - Convolution in FP16 and BF16 modes (conv.go, conv.cu): an implicit GEMM
//     on the tensor cores (mma.sync, FP32 accumulation) that gathers the F32
//     input's columns and rounds them to F16/BF16 as it loads its tiles, so no
//     im2col buffer exists; the weight is converted once per call unless it is
//     already of that dtype, the bias is added as the output is written. The
//     environment variable SDGO_CUDA_CONV, read on each call, chooses the path:
//     "implicit", "im2col" (im2col into a bounded temporary + cuBLAS GEMM, as
//     TF32 mode always does), or, unset or "auto", the implicit GEMM when its
//     grid has at least one block per multiprocessor and im2col otherwise (the
//     small late UNet levels, where cuBLAS is faster; see convImplicit).
//
// # Use
//
//	b, err := cuda.OpenBackend(0)
//	if errors.Is(err, cuda.ErrNoDriver) {
//		// no NVIDIA GPU here: use tensor.NewCPU()
//	}
//	defer b.Close()
//	x, _ := tensor.FromFloat32(b, data, 2, 4, 64, 64)
//	b.SetPrecision(cuda.FP16) // optional: tensor-core products (see Precision)
//
// # Tests
//
// Tests that need a GPU compare every operation with the CPU backend and skip
// when Open fails (set SDGO_CUDA_REQUIRE=1 to make that a failure); the others
// (PTX freshness, kernel signatures, loader errors, argument packing, the
// allocator's arithmetic, the row-major to column-major GEMM mapping) run
// everywhere. devicecheck.sh runs a prebuilt test binary on a GPU machine without
// Go. testdata/emu/run.sh runs the GPU tests without a GPU, against a host
// emulation of the kernels (needs g++ and the CUDA headers), with a host GEMM
// (refGemm) in place of cuBLAS that checks each call's arguments.
package cuda

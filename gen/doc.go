// Package gen holds sdgo's code generators. It is a module of its own so that the
// library never depends on them: avo (github.com/mmcloughlin/avo) writes the amd64
// kernels of kernels/asm, and gen/neon, which needs only the standard library, the
// arm64 ones; one program per output file:
//
//	gen/gemm  ->  kernels/asm/gemm_amd64.s, gemm_stub_amd64.go   (SGEMM micro-kernels)
//	gen/vec   ->  kernels/asm/vec_amd64.s,  vec_stub_amd64.go    (conversions, exp, activations, norms, BLAS-1)
//	gen/neon  ->  kernels/asm/kernels_arm64.s, kernels_stub_arm64.go  (all of the above, NEON)
//
// avo only targets amd64, so gen/neon writes the Plan 9 arm64 text itself, and emits
// the instructions Go's arm64 assembler lacks (most floating-point vector
// operations, FCVTL/FCVTN among them) as WORD directives with their encodings,
// each commented with the instruction; its test (go test ./neon, part of
// `make test-arm64`) assembles the output and checks every comment against the
// disassembler. The arm64 kernels are tested under qemu-aarch64 by `make test-arm64`.
//
// Run them with `go generate ./...` from the repository root (or `make generate`);
// the output is committed and `make test` checks that it is current.
package gen

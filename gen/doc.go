// Package gen holds sdgo's code generators. It is a module of its own so that the
// library never depends on them: avo (github.com/mmcloughlin/avo) writes the amd64
// kernels of kernels/asm, one program per output file:
//
//	gen/gemm  ->  kernels/asm/gemm_amd64.s, gemm_stub_amd64.go   (SGEMM micro-kernels)
//	gen/vec   ->  kernels/asm/vec_amd64.s,  vec_stub_amd64.go    (conversions, exp, activations, norms, BLAS-1)
//
// Run them with `go generate ./...` from the repository root (or `make generate`);
// the output is committed and `make test` checks that it is current.
package gen

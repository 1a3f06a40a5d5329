package asm

//go:generate sh -c "cd ../../gen && go run ./gemm -out ../kernels/asm/gemm_amd64.s -stubs ../kernels/asm/gemm_stub_amd64.go -pkg asm"
//go:generate sh -c "cd ../../gen && go run ./vec -out ../kernels/asm/vec_amd64.s -stubs ../kernels/asm/vec_stub_amd64.go -pkg asm"
//go:generate sh -c "cd ../../gen && go run ./neon -out ../kernels/asm/kernels_arm64.s -stubs ../kernels/asm/kernels_stub_arm64.go -pkg asm"

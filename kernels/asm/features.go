package asm

// Features names the kernel set this process runs: "avx2+fma+f16c" or "go".
func Features() string {
	if useAVX2 {
		return "avx2+fma+f16c"
	}
	return "go"
}

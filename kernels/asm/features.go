package asm

// Features names the kernel set this process runs: "avx2+fma+f16c" (amd64),
// "neon" (arm64) or "go" (the pure-Go references).
func Features() string {
	switch {
	case useAVX2:
		return "avx2+fma+f16c"
	case useNEON:
		return "neon"
	}
	return "go"
}

//go:build (!amd64 && !arm64) || noasm

package asm

const useAVX2 = false

const useNEON = false

//go:build !amd64 || noasm

package asm

const useAVX2 = false

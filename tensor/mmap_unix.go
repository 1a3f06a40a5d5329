//go:build unix

package tensor

import "syscall"

const canMapAnon = true

// mapAnon maps n bytes of zeroed, private, anonymous memory.
func mapAnon(n int) ([]byte, error) {
	return syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
}

// unmapAnon returns a mapping from mapAnon to the system.
func unmapAnon(b []byte) { _ = syscall.Munmap(b) }

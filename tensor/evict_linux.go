package tensor

import (
	"syscall"
	"unsafe"
)

// dropPages drops the whole pages inside b from the process's resident memory
// (madvise MADV_DONTNEED): a file mapping's pages are read again from the page
// cache on the next access.
func dropPages(b []byte) {
	page := uintptr(syscall.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	lo := (start + page - 1) &^ (page - 1)
	hi := (start + uintptr(len(b))) &^ (page - 1)
	if hi <= lo {
		return
	}
	_ = syscall.Madvise(b[lo-start:hi-start], syscall.MADV_DONTNEED)
}

// adviseHuge asks for transparent huge pages for a large anonymous mapping,
// where the system leaves that to madvise: 2 MiB pages cost one fault each
// rather than 512.
func adviseHuge(b []byte) { _ = syscall.Madvise(b, syscall.MADV_HUGEPAGE) }

//go:build !linux

package tensor

// dropPages does nothing where the standard library has no madvise: the
// system still reclaims a file mapping's clean pages under memory pressure.
func dropPages([]byte) {}

func adviseHuge([]byte) {}

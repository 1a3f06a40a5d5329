//go:build !unix && !windows

package hub

// isDiskFull cannot tell a full disk on this platform; the write error is
// reported as it is.
func isDiskFull(err error) bool { return false }

package hub

import (
	"errors"
	"syscall"
)

// isDiskFull reports whether err says the disk is full: ERROR_DISK_FULL or
// ERROR_HANDLE_DISK_FULL.
func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.Errno(112)) || errors.Is(err, syscall.Errno(39))
}

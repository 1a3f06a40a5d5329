//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockFile takes an exclusive flock(2) on path (creating it), waiting for
// another holder until ctx is done. It is the lock huggingface_hub's filelock
// takes on the same file, so sdgo and Python processes do not download the
// same blob at once. Where the filesystem has no locks (some network mounts)
// it goes on without one, as huggingface_hub's WeakFileLock does.
func lockFile(ctx context.Context, path string, log *slog.Logger) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	start := time.Now()
	nextLog := 10 * time.Second
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		case errors.Is(err, syscall.EINTR):
			continue
		case !errors.Is(err, syscall.EWOULDBLOCK):
			f.Close()
			log.Warn("hub: cannot lock, going on without", "path", path, "err", err)
			return func() {}, nil
		}
		if waited := time.Since(start); waited >= nextLog {
			log.Info("hub: waiting for another process downloading the same file", "lock", path, "waited", waited.Round(time.Second))
			nextLog += 10 * time.Second
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			f.Close()
			return nil, err
		}
	}
}

//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package hub

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSnapshotConcurrentCalls(t *testing.T) {
	// Several Snapshot calls at once on one cache (as several processes
	// would): each blob is downloaded once, and all of them succeed.
	srv, repo, c := fakeHub(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = c.Snapshot(context.Background(), "org/tiny", "main", nil)
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	checkSnapshot(t, c, repo.Head("main"), pipelinePlain)
	got := downloads(srv, repo.Head("main"))
	require.Equal(t, slices.Compact(slices.Clone(got)), got, "no file downloaded twice")
}

func TestLockFile(t *testing.T) {
	log := (&Client{}).logger()
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := lockFile(context.Background(), path, log)
	require.NoError(t, err)
	// A second taker waits, and gives up when its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	_, err = lockFile(ctx, path, log)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	// Released: it is taken at once.
	unlock()
	unlock2, err := lockFile(context.Background(), path, log)
	require.NoError(t, err)
	unlock2()
}

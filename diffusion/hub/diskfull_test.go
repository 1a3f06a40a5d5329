//go:build unix || windows

package hub

import (
	"context"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// fullDisk fails writes with ENOSPC once limit bytes were written through it.
type fullDisk struct {
	w     io.Writer
	limit *atomic.Int64
}

func (d fullDisk) Write(b []byte) (int, error) {
	left := d.limit.Add(-int64(len(b)))
	if left >= 0 {
		return d.w.Write(b)
	}
	n := max(0, len(b)+int(left))
	d.limit.Store(0)
	n, err := d.w.Write(b[:n])
	if err != nil {
		return n, err
	}
	return n, &fs.PathError{Op: "write", Path: "blob", Err: syscall.ENOSPC}
}

func TestSnapshotDiskFull(t *testing.T) {
	srv, repo, c := fakeHub(t)
	c.Concurrency = 1
	unet := fileOf(t, "unet/diffusion_pytorch_model.safetensors")
	var limit atomic.Int64
	limit.Store(1 << 40)
	c.wrapWriter = func(w io.Writer) io.Writer { return fullDisk{w, &limit} }
	srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, unet.ETag()) && r.Header.Get("Range") == "" {
			limit.Store(60_000) // the disk fills up during the UNet
		}
		return false
	})
	_, err := c.Snapshot(context.Background(), "org/tiny", "main", nil)
	require.ErrorIs(t, err, ErrDiskFull)
	require.ErrorIs(t, err, syscall.ENOSPC)
	require.ErrorContains(t, err, "unet/diffusion_pytorch_model.safetensors")
	require.ErrorContains(t, err, "free some space and run again")
	part := filepath.Join(c.CacheDir, "models--org--tiny", "blobs", unet.ETag()+".incomplete")
	st, err := os.Stat(part)
	require.NoError(t, err, "the partial file is kept")
	require.EqualValues(t, 60_000, st.Size())

	// Space freed: the download resumes.
	limit.Store(1 << 40)
	srv.ResetRequests()
	_, err = c.Snapshot(context.Background(), "org/tiny", "main", nil)
	require.NoError(t, err)
	checkSnapshot(t, c, repo.Head("main"), pipelinePlain)
	var ranges []string
	for _, r := range srv.Requests() {
		if r.Storage && strings.HasSuffix(r.Path, unet.ETag()) {
			ranges = append(ranges, r.Range)
		}
	}
	require.Equal(t, []string{"bytes=60000-"}, ranges)
}

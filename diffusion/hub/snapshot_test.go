package hub

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sdgo/sdgo/diffusion/hub/hubtest"
)

// checkSnapshot checks the cache holds exactly the files want of org/tiny at
// commit, laid out as huggingface_hub lays it out.
func checkSnapshot(t *testing.T, c *Client, commit string, want []string) {
	t.Helper()
	repoDir := filepath.Join(c.CacheDir, "models--org--tiny")
	snap := filepath.Join(repoDir, "snapshots", commit)
	var got []string
	require.NoError(t, filepath.WalkDir(snap, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(snap, p)
		got = append(got, filepath.ToSlash(rel))
		return nil
	}))
	require.Equal(t, sorted(want), sorted(got), "snapshot files")

	blobs := map[string]bool{}
	for _, p := range want {
		f := fileOf(t, p)
		pointer := filepath.Join(snap, filepath.FromSlash(p))
		st, err := os.Lstat(pointer)
		require.NoError(t, err)
		require.Equal(t, fs.ModeSymlink, st.Mode().Type(), "%s is a symlink", p)
		target, err := os.Readlink(pointer)
		require.NoError(t, err)
		require.False(t, filepath.IsAbs(target), "%s links relatively", p)
		require.Equal(t, filepath.FromSlash(strings.Repeat("../", strings.Count(p, "/")+2)+"blobs/"+f.ETag()), target, p)
		data, err := os.ReadFile(pointer)
		require.NoError(t, err)
		require.Equal(t, f.Data, data, p)
		blobs[f.ETag()] = true
	}
	entries, err := os.ReadDir(filepath.Join(repoDir, "blobs"))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.Equal(t, sorted(mapKeys(blobs)), sorted(names), "blobs are named by ETag, nothing partial")
}

func union(a, b []string) []string {
	return slices.Compact(sorted(append(slices.Clone(a), b...)))
}

func mapKeys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func readRef(t *testing.T, c *Client, rev string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.CacheDir, "models--org--tiny", "refs", filepath.FromSlash(rev)))
	require.NoError(t, err)
	return string(b)
}

// downloads returns the paths of the resolve requests, sorted.
func downloads(srv *hubtest.Server, commit string) []string {
	var ps []string
	for _, r := range srv.Requests() {
		if p, ok := strings.CutPrefix(r.Path, "/org/tiny/resolve/"+commit+"/"); ok {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	return ps
}

func TestSnapshotLayout(t *testing.T) {
	srv, repo, c := fakeHub(t)
	var progress []Progress
	c.Progress = func(p Progress) { progress = append(progress, p) }
	dir, err := c.Snapshot(context.Background(), "org/tiny", "", nil)
	require.NoError(t, err)
	commit := repo.Head("main")
	require.Equal(t, filepath.Join(c.CacheDir, "models--org--tiny", "snapshots", commit), dir)
	checkSnapshot(t, c, commit, pipelinePlain)
	require.Equal(t, commit, readRef(t, c, "main"), "refs/main holds the sha, nothing else")
	_, err = os.Stat(filepath.Join(c.CacheDir, "models--org--tiny", "trees", commit+".json"))
	require.NoError(t, err, "the file listing is cached")
	tag, err := os.ReadFile(filepath.Join(c.CacheDir, "CACHEDIR.TAG"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(tag), "Signature: 8a477f597d28d172789f06886806bc55\n"))

	// Each blob was fetched once: tokenizer_2's files share tokenizer's.
	want := slices.DeleteFunc(slices.Clone(pipelinePlain), func(p string) bool { return strings.HasPrefix(p, "tokenizer_2/") })
	require.Equal(t, sorted(want), downloads(srv, commit))
	for _, r := range srv.Requests() {
		if r.Storage {
			require.Empty(t, r.Range)
		}
		require.Empty(t, r.Authorization, "no token configured")
	}

	// Progress: the last report has everything, and Done never decreased.
	require.NotEmpty(t, progress)
	last := progress[len(progress)-1]
	var total int64
	for _, p := range pipelinePlain {
		total += int64(len(fileOf(t, p).Data))
	}
	require.Equal(t, Progress{Repo: "org/tiny", Commit: commit, Path: last.Path, Done: total, Total: total,
		FilesDone: len(pipelinePlain), Files: len(pipelinePlain)}, last)
	for i := 1; i < len(progress); i++ {
		require.GreaterOrEqual(t, progress[i].Done, progress[i-1].Done)
	}

	// Again: nothing is downloaded, only the branch is resolved.
	srv.ResetRequests()
	dir2, err := c.Snapshot(context.Background(), "org/tiny", "main", nil)
	require.NoError(t, err)
	require.Equal(t, dir, dir2)
	reqs := srv.Requests()
	require.Len(t, reqs, 1)
	require.Equal(t, "/api/models/org/tiny/revision/main", reqs[0].Path)

	// The fp16 variant adds its files to the same snapshot.
	srv.ResetRequests()
	_, err = c.Snapshot(context.Background(), "org/tiny", "main", &Options{Variant: "fp16"})
	require.NoError(t, err)
	require.Equal(t, []string{
		"unet/diffusion_pytorch_model.fp16.safetensors",
		"vae/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
		"vae/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
		"vae/diffusion_pytorch_model.safetensors.index.fp16.json",
	}, downloads(srv, commit))
	checkSnapshot(t, c, commit, union(pipelinePlain, pipelineFP16))
}

func TestSnapshotRevisions(t *testing.T) {
	srv, repo, c := fakeHub(t)
	first := repo.Head("main")
	files := append(pipelineFiles(), text("scheduler/extra.json", `{"x": 1}`))
	second := repo.Commit("main", files...)
	repo.Tag("v1", first)
	repo.Commit("dev", text("model_index.json", `{"_class_name": "X"}`))
	ctx := context.Background()

	// A commit needs no resolving and writes no ref.
	dir, err := c.Snapshot(ctx, "org/tiny", first, nil)
	require.NoError(t, err)
	require.Equal(t, first, filepath.Base(dir))
	for _, r := range srv.Requests() {
		require.NotContains(t, r.Path, "/revision/")
	}
	_, err = os.Stat(filepath.Join(c.CacheDir, "models--org--tiny", "refs"))
	require.ErrorIs(t, err, fs.ErrNotExist)
	checkSnapshot(t, c, first, pipelinePlain)

	// Once its listing is cached, a commit needs no request at all.
	srv.ResetRequests()
	_, err = c.Snapshot(ctx, "org/tiny", first, nil)
	require.NoError(t, err)
	require.Empty(t, srv.Requests())

	// A branch and a tag are resolved and recorded.
	dir, err = c.Snapshot(ctx, "org/tiny", "main", nil)
	require.NoError(t, err)
	require.Equal(t, second, filepath.Base(dir))
	require.Equal(t, second, readRef(t, c, "main"))
	dir, err = c.Snapshot(ctx, "org/tiny", "v1", nil)
	require.NoError(t, err)
	require.Equal(t, first, filepath.Base(dir))
	require.Equal(t, first, readRef(t, c, "v1"))
	// The second commit's new file; unchanged files reuse the blobs.
	data, err := os.ReadFile(filepath.Join(c.CacheDir, "models--org--tiny", "snapshots", second, "scheduler", "extra.json"))
	require.NoError(t, err)
	require.Equal(t, `{"x": 1}`, string(data))

	// A short commit hash is resolved like a branch.
	dir, err = c.Snapshot(ctx, "org/tiny", first[:10], nil)
	require.NoError(t, err)
	require.Equal(t, first, filepath.Base(dir))

	// A branch moved: the ref follows.
	third := repo.Commit("main", pipelineFiles()...)
	_, err = c.Snapshot(ctx, "org/tiny", "main", nil)
	require.NoError(t, err)
	require.Equal(t, third, readRef(t, c, "main"))

	// A revision with a slash is quoted in the URL and nested under refs/.
	repo.Tag("refs/pr/1", second)
	srv.ResetRequests()
	dir, err = c.Snapshot(ctx, "org/tiny", "refs/pr/1", nil)
	require.NoError(t, err)
	require.Equal(t, second, filepath.Base(dir))
	require.Equal(t, second, readRef(t, c, "refs/pr/1"))
}

func TestSnapshotPaginatedTree(t *testing.T) {
	srv, repo, c := fakeHub(t)
	srv.SetPageSize(4)
	_, err := c.Snapshot(context.Background(), "org/tiny", "main", nil)
	require.NoError(t, err)
	checkSnapshot(t, c, repo.Head("main"), pipelinePlain)
	pages := 0
	for _, r := range srv.Requests() {
		if strings.Contains(r.Path, "/tree/") {
			pages++
		}
	}
	require.Greater(t, pages, 5)
}

func TestSnapshotResume(t *testing.T) {
	srv, repo, c := fakeHub(t)
	commit := repo.Head("main")
	unet := fileOf(t, "unet/diffusion_pytorch_model.safetensors")
	blobs := filepath.Join(c.CacheDir, "models--org--tiny", "blobs")
	require.NoError(t, os.MkdirAll(blobs, 0o755))
	const have = 123_457
	require.NoError(t, os.WriteFile(filepath.Join(blobs, unet.ETag()+".incomplete"), unet.Data[:have], 0o644))

	_, err := c.Snapshot(context.Background(), "org/tiny", "main", nil)
	require.NoError(t, err)
	checkSnapshot(t, c, commit, pipelinePlain)
	var ranges []string
	for _, r := range srv.Requests() {
		if r.Storage && strings.HasSuffix(r.Path, unet.ETag()) {
			ranges = append(ranges, r.Range)
		}
	}
	require.Equal(t, []string{fmt.Sprintf("bytes=%d-", have)}, ranges, "only the remainder was asked for")
}

func TestSnapshotResumeIgnoredRange(t *testing.T) {
	// A server that ignores Range (200 with the whole file): start over.
	srv, repo, c := fakeHub(t)
	unet := fileOf(t, "unet/diffusion_pytorch_model.safetensors")
	blobs := filepath.Join(c.CacheDir, "models--org--tiny", "blobs")
	require.NoError(t, os.MkdirAll(blobs, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(blobs, unet.ETag()+".incomplete"), unet.Data[:1000], 0o644))
	srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, unet.ETag()) {
			w.Header().Set("Content-Length", fmt.Sprint(len(unet.Data)))
			w.Write(unet.Data)
			return true
		}
		return false
	})
	_, err := c.Snapshot(context.Background(), "org/tiny", "main", nil)
	require.NoError(t, err)
	checkSnapshot(t, c, repo.Head("main"), pipelinePlain)
}

func TestSnapshotChecksumMismatch(t *testing.T) {
	for _, p := range []string{"unet/diffusion_pytorch_model.safetensors", "unet/config.json"} {
		t.Run(p, func(t *testing.T) {
			srv, repo, c := fakeHub(t)
			f := fileOf(t, p)
			bad := slices.Clone(f.Data)
			bad[len(bad)/2] ^= 1
			srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
				lfsBlob := f.LFS && strings.HasSuffix(r.URL.Path, "/blobs/"+f.ETag())
				gitFile := !f.LFS && strings.HasSuffix(r.URL.Path, "/resolve/"+repo.Head("main")+"/"+p)
				if lfsBlob || gitFile {
					w.Header().Set("X-Repo-Commit", repo.Head("main"))
					w.Header().Set("ETag", `"`+f.ETag()+`"`)
					w.Write(bad)
					return true
				}
				return false
			})
			_, err := c.Snapshot(context.Background(), "org/tiny", "main", nil)
			require.ErrorIs(t, err, ErrChecksum)
			require.ErrorContains(t, err, p)
			require.ErrorContains(t, err, f.ETag())
			repoDir := filepath.Join(c.CacheDir, "models--org--tiny")
			_, err = os.Lstat(filepath.Join(repoDir, "snapshots", repo.Head("main"), filepath.FromSlash(p)))
			require.ErrorIs(t, err, fs.ErrNotExist, "nothing in the snapshot")
			_, err = os.Stat(filepath.Join(repoDir, "blobs", f.ETag()))
			require.ErrorIs(t, err, fs.ErrNotExist)
			_, err = os.Stat(filepath.Join(repoDir, "blobs", f.ETag()+".incomplete"))
			require.ErrorIs(t, err, fs.ErrNotExist, "the bad download is removed")

			// The server mended: the next call completes.
			srv.Intercept(nil)
			_, err = c.Snapshot(context.Background(), "org/tiny", "main", nil)
			require.NoError(t, err)
			checkSnapshot(t, c, repo.Head("main"), pipelinePlain)
		})
	}
}

func TestSnapshotOffline(t *testing.T) {
	srv, repo, c := fakeHub(t)
	ctx := context.Background()
	dir, err := c.Snapshot(ctx, "org/tiny", "main", nil)
	require.NoError(t, err)

	srv.ResetRequests()
	off := &Client{Endpoint: srv.URL, CacheDir: c.CacheDir, Offline: true}
	got, err := off.Snapshot(ctx, "org/tiny", "main", nil)
	require.NoError(t, err)
	require.Equal(t, dir, got)
	got, err = off.Snapshot(ctx, "org/tiny", repo.Head("main"), nil)
	require.NoError(t, err)
	require.Equal(t, dir, got)
	require.Empty(t, srv.Requests(), "offline sends nothing")

	// Misses: an unknown revision, an unknown repository, files never fetched.
	_, err = off.Snapshot(ctx, "org/tiny", "dev", nil)
	require.ErrorIs(t, err, ErrNotCached)
	require.ErrorContains(t, err, "org/tiny@dev is not in the cache")
	require.ErrorContains(t, err, "HF_HUB_OFFLINE")
	_, err = off.Snapshot(ctx, "org/other", "main", nil)
	require.ErrorIs(t, err, ErrNotCached)
	_, err = off.Snapshot(ctx, "org/tiny", "0123456789012345678901234567890123456789", nil)
	require.ErrorIs(t, err, ErrNotCached)
	_, err = off.Snapshot(ctx, "org/tiny", "main", &Options{Variant: "fp16"})
	require.ErrorIs(t, err, ErrNotCached)
	require.ErrorContains(t, err, "the cached snapshot of org/tiny@main lacks vae/diffusion_pytorch_model.safetensors.index.fp16.json")
	_, err = off.Snapshot(ctx, "org/tiny", "main", &Options{Include: []string{"unet/*"}})
	require.ErrorIs(t, err, ErrNotCached)
	require.ErrorContains(t, err, "lacks 4 of the files asked for (unet/diffusion_flax_model.msgpack, unet/diffusion_pytorch_model.bin, unet/diffusion_pytorch_model.fp16.bin and 1 more)")
	got, err = off.Snapshot(ctx, "org/tiny", "main", &Options{Include: []string{"unet/*.json"}})
	require.NoError(t, err)
	require.Equal(t, dir, got)

	// Without a cached listing the folder is taken as it is.
	require.NoError(t, os.RemoveAll(filepath.Join(c.CacheDir, "models--org--tiny", "trees")))
	got, err = off.Snapshot(ctx, "org/tiny", "main", &Options{Variant: "fp16"})
	require.NoError(t, err)
	require.Equal(t, dir, got)
	require.Empty(t, srv.Requests())
}

func TestSnapshotHubDownUsesCache(t *testing.T) {
	srv, _, c := fakeHub(t)
	ctx := context.Background()
	dir, err := c.Snapshot(ctx, "org/tiny", "main", nil)
	require.NoError(t, err)
	srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return true
	})
	c.MaxRetries = 2
	srv.ResetRequests()
	got, err := c.Snapshot(ctx, "org/tiny", "main", nil)
	require.NoError(t, err)
	require.Equal(t, dir, got)
	require.Len(t, srv.Requests(), 3, "three attempts, then the cache")

	// A commit whose listing is not cached: the listing request fails, the
	// cache answers.
	require.NoError(t, os.RemoveAll(filepath.Join(c.CacheDir, "models--org--tiny", "trees")))
	got, err = c.Snapshot(ctx, "org/tiny", filepath.Base(dir), nil)
	require.NoError(t, err)
	require.Equal(t, dir, got)

	// Not cached: both the Hub's error and the cache miss are told.
	_, err = c.Snapshot(ctx, "org/tiny", "dev", nil)
	require.ErrorIs(t, err, ErrNotCached)
	require.ErrorContains(t, err, "HTTP 503 Service Unavailable: down for maintenance")
	require.ErrorContains(t, err, "3 attempts")
}

func TestSnapshotAuth(t *testing.T) {
	srv, repo, c := fakeHub(t)
	srv.SetToken("hf_secret")
	ctx := context.Background()

	repo.SetGated(true)
	_, err := c.Snapshot(ctx, "org/tiny", "main", nil)
	require.ErrorIs(t, err, ErrGated)
	require.ErrorContains(t, err, "org/tiny is a gated repository")
	require.ErrorContains(t, err, "accept its conditions at "+srv.URL+"/org/tiny")
	require.ErrorContains(t, err, "set HF_TOKEN")
	require.ErrorContains(t, err, "HTTP 401")
	var he *HTTPError
	require.ErrorAs(t, err, &he)
	require.Equal(t, "GatedRepo", he.Code)

	c.Token = "hf_wrong"
	_, err = c.Snapshot(ctx, "org/tiny", "main", nil)
	require.ErrorIs(t, err, ErrAuth)
	require.ErrorContains(t, err, "rejected the token in HF_TOKEN")

	c.Token = "hf_secret"
	srv.ResetRequests()
	_, err = c.Snapshot(ctx, "org/tiny", "main", nil)
	require.NoError(t, err)
	checkSnapshot(t, c, repo.Head("main"), pipelinePlain)
	storage := 0
	for _, r := range srv.Requests() {
		if r.Storage {
			storage++
			require.Empty(t, r.Authorization, "no token to storage: %s", r.Path)
		} else {
			require.Equal(t, "Bearer hf_secret", r.Authorization, r.Path)
		}
	}
	require.Greater(t, storage, 0)

	repo.SetGated(false)
	repo.SetPrivate(true)
	c.Token = ""
	_, err = c.Snapshot(ctx, "org/tiny", "main", nil)
	require.ErrorIs(t, err, ErrRepoNotFound)
	require.ErrorContains(t, err, "repository org/tiny not found: check the name; if it is private, set HF_TOKEN")
	require.ErrorContains(t, err, "HTTP 401")
}

func TestSnapshotNotFound(t *testing.T) {
	srv, repo, c := fakeHub(t)
	ctx := context.Background()
	_, err := c.Snapshot(ctx, "org/nope", "main", nil)
	require.ErrorIs(t, err, ErrRepoNotFound)
	require.ErrorContains(t, err, "repository org/nope not found")

	_, err = c.Snapshot(ctx, "org/tiny", "nobranch", nil)
	require.ErrorIs(t, err, ErrRevisionNotFound)
	require.ErrorContains(t, err, `revision "nobranch" not found in org/tiny`)
	require.ErrorContains(t, err, "HTTP 404")

	// A file listed but missing when fetched.
	commit := repo.Head("main")
	srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/resolve/"+commit+"/unet/config.json") {
			w.Header().Set("X-Error-Code", "EntryNotFound")
			w.Header().Set("X-Error-Message", "unet/config.json does not exist")
			http.Error(w, "not found", http.StatusNotFound)
			return true
		}
		return false
	})
	_, err = c.Snapshot(ctx, "org/tiny", "main", nil)
	require.ErrorIs(t, err, ErrEntryNotFound)
	require.ErrorContains(t, err, `file "unet/config.json" not found in org/tiny at revision main`)

	// Bad names are refused before any request.
	srv.ResetRequests()
	for _, bad := range []string{"tiny", "org/tiny/x", "../etc", "org/ti--ny", "org/.tiny"} {
		_, err = c.Snapshot(ctx, bad, "main", nil)
		require.ErrorContains(t, err, "is not a repository id", bad)
	}
	for _, bad := range []string{"../x", "/abs", `a\b`, "a//b"} {
		_, err = c.Snapshot(ctx, "org/tiny", bad, nil)
		require.Error(t, err, bad)
	}
	_, err = c.Snapshot(ctx, "org/tiny", "main", &Options{Variant: "fp16", All: true})
	require.ErrorContains(t, err, "variant")
	require.Empty(t, srv.Requests())
}

func TestSnapshotRetries(t *testing.T) {
	srv, repo, c := fakeHub(t)
	unet := fileOf(t, "unet/diffusion_pytorch_model.safetensors")
	var revFails, blobFails atomic.Int32
	srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case strings.Contains(r.URL.Path, "/revision/") && revFails.Add(1) <= 2:
			http.Error(w, "oops", http.StatusInternalServerError)
			return true
		case strings.HasSuffix(r.URL.Path, unet.ETag()) && blobFails.Add(1) <= 1:
			w.Header().Set("Retry-After", "0")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return true
		}
		return false
	})
	_, err := c.Snapshot(context.Background(), "org/tiny", "main", nil)
	require.NoError(t, err)
	checkSnapshot(t, c, repo.Head("main"), pipelinePlain)
	require.EqualValues(t, 3, revFails.Load())
	require.EqualValues(t, 2, blobFails.Load())

	// A server that keeps failing: bounded attempts, then a clear error.
	srv2, repo2, c2 := fakeHub(t)
	c2.MaxRetries = 3
	srv2.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/resolve/") {
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return true
		}
		return false
	})
	_, err = c2.Snapshot(context.Background(), "org/tiny", "main", nil)
	require.ErrorContains(t, err, "fetching model_index.json from org/tiny@main failed (HTTP 502 Bad Gateway: bad gateway")
	require.ErrorContains(t, err, "gave up after 4 attempts")
	require.Len(t, downloads(srv2, repo2.Head("main")), 4)

	// A client error is not retried.
	srv3, _, c3 := fakeHub(t)
	srv3.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/tree/") {
			http.Error(w, "no", http.StatusBadRequest)
			return true
		}
		return false
	})
	_, err = c3.Snapshot(context.Background(), "org/tiny", "main", nil)
	require.ErrorContains(t, err, "HTTP 400")
	n := 0
	for _, r := range srv3.Requests() {
		if strings.Contains(r.Path, "/tree/") {
			n++
		}
	}
	require.Equal(t, 1, n)
}

func TestSnapshotConcurrencyBounded(t *testing.T) {
	srv, repo, c := fakeHub(t)
	c.Concurrency = 2
	var inFlight, peak atomic.Int32
	srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/resolve/") {
			n := inFlight.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(20 * time.Millisecond)
			inFlight.Add(-1)
		}
		return false
	})
	_, err := c.Snapshot(context.Background(), "org/tiny", "main", nil)
	require.NoError(t, err)
	checkSnapshot(t, c, repo.Head("main"), pipelinePlain)
	require.EqualValues(t, 2, peak.Load(), "two at a time, not more, not fewer")
}

func TestSnapshotCancel(t *testing.T) {
	srv, repo, c := fakeHub(t)
	unet := fileOf(t, "unet/diffusion_pytorch_model.safetensors")
	const sent = 50_000
	srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, unet.ETag()) {
			return false
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(unet.Data)))
		w.Write(unet.Data[:sent])
		w.(http.Flusher).Flush()
		<-r.Context().Done() // and hang
		return true
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	c.Progress = func(p Progress) {
		if p.Path == unet.Path && p.Done > 0 {
			once.Do(func() { time.AfterFunc(50*time.Millisecond, cancel) })
		}
	}
	start := time.Now()
	_, err := c.Snapshot(ctx, "org/tiny", "main", nil)
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, time.Since(start), 3*time.Second, "cancellation stops promptly")

	// The partial download stays for the next call, which completes it.
	st, err := os.Stat(filepath.Join(c.CacheDir, "models--org--tiny", "blobs", unet.ETag()+".incomplete"))
	require.NoError(t, err)
	require.EqualValues(t, sent, st.Size())
	srv.Intercept(nil)
	c.Progress = nil
	_, err = c.Snapshot(context.Background(), "org/tiny", "main", nil)
	require.NoError(t, err)
	checkSnapshot(t, c, repo.Head("main"), pipelinePlain)
}

func TestSnapshotStallResumes(t *testing.T) {
	srv, repo, c := fakeHub(t)
	c.Timeout = 300 * time.Millisecond
	unet := fileOf(t, "unet/diffusion_pytorch_model.safetensors")
	var calls atomic.Int32
	srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, unet.ETag()) || calls.Add(1) > 1 {
			return false
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(unet.Data)))
		w.Write(unet.Data[:70_000])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return true
	})
	_, err := c.Snapshot(context.Background(), "org/tiny", "main", nil)
	require.NoError(t, err)
	checkSnapshot(t, c, repo.Head("main"), pipelinePlain)
	var ranges []string
	for _, r := range srv.Requests() {
		if r.Storage && strings.HasSuffix(r.Path, unet.ETag()) {
			ranges = append(ranges, r.Range)
		}
	}
	require.Equal(t, []string{"", "bytes=70000-"}, ranges)
}

func TestSnapshotWithoutSymlinks(t *testing.T) {
	srv, repo, c := fakeHub(t)
	c.symlink = func(string, string) error {
		return &os.LinkError{Op: "symlink", Err: errors.New("A required privilege is not held by the client.")}
	}
	dir, err := c.Snapshot(context.Background(), "org/tiny", "main", nil)
	require.NoError(t, err)
	require.Equal(t, repo.Head("main"), filepath.Base(dir))
	for _, p := range pipelinePlain {
		st, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(p)))
		require.NoError(t, err)
		require.True(t, st.Mode().IsRegular(), p)
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		require.NoError(t, err)
		require.Equal(t, fileOf(t, p).Data, data, p)
	}
	// New blobs were moved into the snapshot; a shared one was copied.
	_, err = os.Stat(filepath.Join(c.CacheDir, "models--org--tiny", "blobs", fileOf(t, "unet/config.json").ETag()))
	require.ErrorIs(t, err, fs.ErrNotExist)

	srv.ResetRequests()
	_, err = c.Snapshot(context.Background(), "org/tiny", "main", nil)
	require.NoError(t, err)
	require.Empty(t, downloads(srv, repo.Head("main")), "the copies count as cached")
}

func TestSnapshotDamagedCache(t *testing.T) {
	// A snapshot entry whose blob was deleted, and a truncated blob: both are
	// fetched again.
	srv, repo, c := fakeHub(t)
	_, err := c.Snapshot(context.Background(), "org/tiny", "main", nil)
	require.NoError(t, err)
	blobs := filepath.Join(c.CacheDir, "models--org--tiny", "blobs")
	unet, cfg := fileOf(t, "unet/diffusion_pytorch_model.safetensors"), fileOf(t, "unet/config.json")
	require.NoError(t, os.Remove(filepath.Join(blobs, unet.ETag())))
	require.NoError(t, os.WriteFile(filepath.Join(blobs, cfg.ETag()), []byte("{"), 0o644))
	srv.ResetRequests()
	_, err = c.Snapshot(context.Background(), "org/tiny", "main", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"unet/config.json", "unet/diffusion_pytorch_model.safetensors"}, downloads(srv, repo.Head("main")))
	checkSnapshot(t, c, repo.Head("main"), pipelinePlain)
}

func TestSnapshotInconsistentHub(t *testing.T) {
	srv, repo, c := fakeHub(t)
	commit := repo.Head("main")
	srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/resolve/"+commit+"/model_index.json") {
			w.Header().Set("X-Repo-Commit", strings.Repeat("a", 40))
			w.Write([]byte(modelIndex))
			return true
		}
		return false
	})
	_, err := c.Snapshot(context.Background(), "org/tiny", "main", nil)
	require.ErrorContains(t, err, "asked for commit "+commit+", the Hub served commit aaaa")

	srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/resolve/"+commit+"/model_index.json") {
			w.Header().Set("ETag", `"`+strings.Repeat("b", 40)+`"`)
			w.Write([]byte(modelIndex))
			return true
		}
		return false
	})
	_, err = c.Snapshot(context.Background(), "org/tiny", "main", nil)
	require.ErrorContains(t, err, "model_index.json: the Hub gives ETag bbbb")

	srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/revision/") {
			w.Write([]byte(`{"sha": "main"}`))
			return true
		}
		return false
	})
	_, err = c.Snapshot(context.Background(), "org/tiny", "main", nil)
	require.ErrorContains(t, err, `no valid commit sha (got "main")`)

	srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/tree/") {
			w.Write([]byte(`{"error": "not a list"}`))
			return true
		}
		return false
	})
	c.CacheDir = t.TempDir() // no cached listing
	_, err = c.Snapshot(context.Background(), "org/tiny", "main", nil)
	require.ErrorContains(t, err, "not the JSON expected")

	// Tree entries that would escape the snapshot are dropped.
	srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/tree/") {
			fmt.Fprintf(w, `[{"type": "file", "path": "../../evil.json", "size": 2, "oid": "%s"}]`, strings.Repeat("c", 40))
			return true
		}
		return false
	})
	c.CacheDir = t.TempDir()
	_, err = c.Snapshot(context.Background(), "org/tiny", "main", &Options{All: true})
	require.ErrorContains(t, err, "nothing of org/tiny left")
}

func TestSnapshotEmptyFile(t *testing.T) {
	// An empty file needs no request: its blob id is that of no bytes.
	srv := hubtest.NewServer(t)
	repo := srv.AddRepo("org/vae", text("config.json", `{}`), text("added_tokens.json", ""),
		lfs("diffusion_pytorch_model.safetensors", 10))
	c := &Client{Endpoint: srv.URL, CacheDir: t.TempDir()}
	dir, err := c.Snapshot(context.Background(), "org/vae", "main", nil)
	require.NoError(t, err)
	st, err := os.Stat(filepath.Join(dir, "added_tokens.json"))
	require.NoError(t, err)
	require.Zero(t, st.Size())
	target, err := os.Readlink(filepath.Join(dir, "added_tokens.json"))
	require.NoError(t, err)
	require.Equal(t, filepath.FromSlash("../../blobs/e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"), target)
	for _, r := range srv.Requests() {
		require.NotContains(t, r.Path, "added_tokens", "no request for an empty file")
	}
	require.Equal(t, repo.Head("main"), filepath.Base(dir))
}

func TestSnapshotBadRanges(t *testing.T) {
	unetPath := "unet/diffusion_pytorch_model.safetensors"
	partialAt := func(t *testing.T, c *Client, n int) {
		f := fileOf(t, unetPath)
		blobs := filepath.Join(c.CacheDir, "models--org--tiny", "blobs")
		require.NoError(t, os.MkdirAll(blobs, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(blobs, f.ETag()+".incomplete"), f.Data[:n], 0o644))
	}
	for _, c := range []struct {
		name  string
		serve func(w http.ResponseWriter, data []byte)
	}{
		{"wrong Content-Range", func(w http.ResponseWriter, data []byte) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 10-%d/%d", len(data)-1, len(data)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[10:])
		}},
		{"416", func(w http.ResponseWriter, data []byte) {
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, repo, cl := fakeHub(t)
			unet := fileOf(t, unetPath)
			partialAt(t, cl, 5000)
			var calls atomic.Int32
			srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
				if strings.HasSuffix(r.URL.Path, unet.ETag()) && calls.Add(1) == 1 {
					c.serve(w, unet.Data)
					return true
				}
				return false
			})
			_, err := cl.Snapshot(context.Background(), "org/tiny", "main", nil)
			require.NoError(t, err)
			checkSnapshot(t, cl, repo.Head("main"), pipelinePlain)
			var ranges []string
			for _, r := range srv.Requests() {
				if r.Storage && strings.HasSuffix(r.Path, unet.ETag()) {
					ranges = append(ranges, r.Range)
				}
			}
			require.Equal(t, []string{"bytes=5000-", ""}, ranges, "the partial file is dropped, the file fetched whole")
		})
	}

	t.Run("too long", func(t *testing.T) {
		srv, _, cl := fakeHub(t)
		unet := fileOf(t, unetPath)
		srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
			if strings.HasSuffix(r.URL.Path, unet.ETag()) {
				w.Write(append(slices.Clone(unet.Data), "trailing"...))
				return true
			}
			return false
		})
		_, err := cl.Snapshot(context.Background(), "org/tiny", "main", nil)
		require.ErrorContains(t, err, "unet/diffusion_pytorch_model.safetensors: the server sent more than the 200000 bytes the file has")
		_, err = os.Stat(filepath.Join(cl.CacheDir, "models--org--tiny", "blobs", unet.ETag()+".incomplete"))
		require.ErrorIs(t, err, fs.ErrNotExist)
	})
}

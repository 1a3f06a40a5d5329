package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// repoCache is one repository's folder in the hub cache, laid out as
// huggingface_hub lays it out:
//
//	<cache>/models--org--name/
//	    blobs/<etag>                     file contents, named by ETag
//	    refs/<revision>                  the commit a branch or tag pointed at
//	    snapshots/<commit>/<path>        relative symlinks to ../../blobs/<etag>
//	    trees/<commit>.json              the commit's file listing
//	<cache>/.locks/models--org--name/<etag>.lock
type repoCache struct {
	root string // the hub cache
	dir  string // root/models--org--name
	repo string
}

func newRepoCache(root, repo string) repoCache {
	return repoCache{root: root, dir: filepath.Join(root, repoFolderName(repo)), repo: repo}
}

func (r repoCache) blobPath(etag string) string { return filepath.Join(r.dir, "blobs", etag) }

func (r repoCache) snapshotDir(commit string) string {
	return filepath.Join(r.dir, "snapshots", commit)
}

func (r repoCache) pointerPath(commit, p string) string {
	return filepath.Join(r.snapshotDir(commit), filepath.FromSlash(p))
}

func (r repoCache) lockPath(etag string) string {
	return filepath.Join(r.root, ".locks", repoFolderName(r.repo), etag+".lock")
}

func (r repoCache) refPath(rev string) string {
	return filepath.Join(r.dir, "refs", filepath.FromSlash(rev))
}

// readRef returns the commit refs/<rev> holds; "" if there is no such ref.
func (r repoCache) readRef(rev string) (string, error) {
	b, err := os.ReadFile(r.refPath(rev))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("hub: reading ref: %w", err)
	}
	commit := strings.TrimSpace(string(b))
	if !commitRe.MatchString(commit) {
		return "", fmt.Errorf("hub: %s holds %q, not a commit hash", r.refPath(rev), commit)
	}
	return commit, nil
}

// writeRef records that rev points at commit (nothing for a commit itself),
// replacing the file atomically and only if it changes.
func (r repoCache) writeRef(rev, commit string) error {
	if rev == commit {
		return nil
	}
	if old, err := r.readRef(rev); err == nil && old == commit {
		return nil
	}
	return writeFileAtomic(r.refPath(rev), []byte(commit))
}

// writeFileAtomic writes data to a temporary file beside path and renames it
// into place, so a reader sees the old content or the new, never a part.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("hub: writing %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("hub: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("hub: %w", err)
	}
	return nil
}

// treeCacheVersion is huggingface_hub's TREE_CACHE_FORMAT_VERSION.
const treeCacheVersion = 1

// treeCacheFile is the JSON of trees/<commit>.json.
type treeCacheFile struct {
	FormatVersion int                       `json:"format_version"`
	Files         map[string]treeCacheEntry `json:"files"`
}

type treeCacheEntry struct {
	Size      int64  `json:"size"`
	BlobID    string `json:"blob_id"`
	LFSSha256 string `json:"lfs_sha256,omitempty"`
	LFSSize   *int64 `json:"lfs_size,omitempty"`
	XetHash   string `json:"xet_hash,omitempty"`
}

func (r repoCache) treePath(commit string) string {
	return filepath.Join(r.dir, "trees", commit+".json")
}

// readTree returns the cached file listing of a commit; ok is false if there
// is none (or it is unreadable, or of another format version).
func (r repoCache) readTree(commit string) (tree []treeEntry, ok bool) {
	b, err := os.ReadFile(r.treePath(commit))
	if err != nil {
		return nil, false
	}
	var f treeCacheFile
	if err := json.Unmarshal(b, &f); err != nil || f.FormatVersion != treeCacheVersion || f.Files == nil {
		return nil, false
	}
	for p, e := range f.Files {
		te := treeEntry{Path: p, Size: e.Size, BlobID: e.BlobID, LFSSha256: e.LFSSha256, XetHash: e.XetHash}
		if e.LFSSize != nil {
			te.LFSSize = *e.LFSSize
		}
		tree = append(tree, te)
	}
	return tree, true
}

// writeTree caches a commit's file listing (a commit never changes, so the
// listing is valid forever).
func (r repoCache) writeTree(commit string, tree []treeEntry) error {
	f := treeCacheFile{FormatVersion: treeCacheVersion, Files: make(map[string]treeCacheEntry, len(tree))}
	for _, e := range tree {
		ce := treeCacheEntry{Size: e.Size, BlobID: e.BlobID, LFSSha256: e.LFSSha256, XetHash: e.XetHash}
		if e.LFSSha256 != "" {
			ce.LFSSize = &e.LFSSize
		}
		f.Files[e.Path] = ce
	}
	b, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	return writeFileAtomic(r.treePath(commit), b)
}

// cachedirTag is the CACHEDIR.TAG huggingface_hub writes at the cache's root,
// so that backup tools skip it.
const cachedirTag = "Signature: 8a477f597d28d172789f06886806bc55\n" +
	"# This file is a cache directory tag created by huggingface_hub.\n" +
	"# For information about cache directory tags, see:\n" +
	"#\thttps://bford.info/cachedir/\n"

func writeCachedirTag(root string) {
	p := filepath.Join(root, "CACHEDIR.TAG")
	if _, err := os.Stat(p); err == nil {
		return
	}
	_ = writeFileAtomic(p, []byte(cachedirTag)) // best effort, as in huggingface_hub
}

// copyFile copies src to dst through a temporary file, so dst is never
// half-written.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".*.tmp")
	if err != nil {
		return err
	}
	_, cerr := io.Copy(tmp, in)
	if err := errors.Join(cerr, tmp.Close(), os.Chmod(tmp.Name(), 0o644)); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

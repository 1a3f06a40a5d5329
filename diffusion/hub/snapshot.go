package hub

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Snapshot makes the files of a model repository at a revision (a branch, tag
// or commit; "" means "main") present in the cache and returns the snapshot
// folder holding them: <cache>/models--org--name/snapshots/<commit>. The cache
// is huggingface_hub's, shared with Python programs.
//
// Which files: with opts.All, all; with opts.Include, those matching; else
// what a diffusers pipeline loads: model_index.json and, for each component it
// names, the folder's configs, tokenizer and scheduler files and its weights —
// safetensors over .bin, the opts.Variant files where the component has them
// (else its plain ones, as diffusers falls back), a shard index and the shards
// it names. Other files (single-file checkpoints at the top, flax, ONNX,
// documents) are left. A repository without model_index.json but with a root
// config.json is taken as one component; one with neither needs Include or
// All. opts.Exclude then drops what it matches.
//
// A branch or tag is resolved to its commit through the API and recorded
// under refs/. Files already in the cache are not fetched again; partial
// downloads (blobs/<etag>.incomplete) are resumed; each file is checked
// against its ETag (sha256 for LFS files, the git blob sha1 for others)
// before it is moved into blobs/ and linked from the snapshot. With Offline
// set, or when the Hub cannot be reached or fails (5xx), the snapshot comes
// from the cache alone; a miss is an error wrapping ErrNotCached.
func (c *Client) Snapshot(ctx context.Context, repo, rev string, opts *Options) (string, error) {
	if rev == "" {
		rev = DefaultRevision
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if err := checkRepo(repo); err != nil {
		return "", err
	}
	if err := checkRevision(rev); err != nil {
		return "", fmt.Errorf("hub: %s: %w", repo, err)
	}
	if o.Variant != "" && (o.All || len(o.Include) > 0) {
		return "", errors.New("hub: a variant selects among the files chosen automatically; it cannot go with Include or All")
	}
	if o.All && len(o.Include) > 0 {
		return "", errors.New("hub: Include and All exclude each other")
	}
	root, err := c.cacheDir()
	if err != nil {
		return "", err
	}
	s := &session{c: c, repo: repo, rev: rev, opts: o, cache: newRepoCache(root, repo), log: c.logger()}
	if c.Offline {
		return s.fromCache("offline mode is on (HF_HUB_OFFLINE)")
	}
	dir, err := s.online(ctx)
	var down *hubDownError
	if err != nil && ctx.Err() == nil && errors.As(err, &down) {
		dir, cerr := s.fromCache("the Hub could not be reached")
		if cerr != nil {
			return "", errors.Join(err, cerr)
		}
		s.log.Warn("hub: the Hub cannot be reached; using the cached snapshot", "repo", repo, "revision", rev, "err", err)
		return dir, nil
	}
	return dir, err
}

// LocalPath returns nameOrPath itself if it is not a repository id (see
// IsRepoID), else the snapshot folder Snapshot makes for it (the revision
// after '@', if any).
func (c *Client) LocalPath(ctx context.Context, nameOrPath string, opts *Options) (string, error) {
	if !IsRepoID(nameOrPath) {
		return nameOrPath, nil
	}
	repo, rev, err := ParseRepoID(nameOrPath)
	if err != nil {
		return "", err
	}
	return c.Snapshot(ctx, repo, rev, opts)
}

// hubDownError marks the failure of a revision or listing request that says
// nothing about the repository (the Hub could not answer), after which
// Snapshot falls back on the cache.
type hubDownError struct{ err error }

func (e *hubDownError) Error() string { return e.err.Error() }
func (e *hubDownError) Unwrap() error { return e.err }

// hubDown marks err if the Hub could not answer.
func hubDown(err error) error {
	if unreachable(err) {
		return &hubDownError{err}
	}
	return err
}

// unreachable reports whether err means the Hub could not answer (network
// failure or server error) rather than a definite no.
func unreachable(err error) bool {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.StatusCode >= 500 || retryable(he.StatusCode)
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded)
}

// session is one Snapshot call.
type session struct {
	c      *Client
	repo   string
	rev    string
	commit string
	opts   Options
	cache  repoCache
	log    *slog.Logger

	noSymlinks atomic.Bool // set once a symlink failed; later links copy

	mu        sync.Mutex // guards what follows, and serializes Progress calls
	progress  Progress
	reporting bool // whether byte progress is reported (the final pass)
}

// cacheMiss is what the cache alone cannot give; it matches ErrNotCached.
type cacheMiss struct{ msg string }

func (e *cacheMiss) Error() string { return e.msg }

// Is reports whether target is ErrNotCached.
func (e *cacheMiss) Is(target error) bool { return target == ErrNotCached }

func (s *session) miss(format string, args ...any) error {
	return &cacheMiss{msg: fmt.Sprintf(format, args...)}
}

// fromCache returns the snapshot from the cache alone; why says why the Hub
// is not asked. With a cached file listing of the commit, every file the
// options select must be present; without one, the folder is taken as it is
// (as huggingface_hub does).
func (s *session) fromCache(why string) (string, error) {
	commit := s.rev
	if !commitRe.MatchString(s.rev) {
		ref, err := s.cache.readRef(s.rev)
		if err != nil {
			return "", err
		}
		if ref == "" {
			return "", s.miss("hub: %s@%s is not in the cache (no refs/%s in %s), and %s: fetch it once with network access",
				s.repo, s.rev, s.rev, s.cache.dir, why)
		}
		commit = ref
	}
	s.commit = commit
	dir := s.cache.snapshotDir(commit)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", s.miss("hub: %s@%s (commit %s) is not in the cache (no %s), and %s: fetch it once with network access",
			s.repo, s.rev, commit, dir, why)
	}
	tree, ok := s.cache.readTree(commit)
	if !ok {
		s.log.Debug("hub: no cached file listing; using the snapshot as it is", "dir", dir)
		return dir, nil
	}
	tree = s.cleanTree(tree)
	load := func(paths []string) ([][]byte, error) {
		var missing []string
		for _, p := range paths {
			if _, err := os.Stat(s.cache.pointerPath(commit, p)); err != nil {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			return nil, s.miss("hub: the cached snapshot of %s@%s lacks %s, and %s: fetch it with network access",
				s.repo, s.rev, strings.Join(missing, ", "), why)
		}
		return s.readCached(paths)
	}
	files, err := selectFiles(s.repo, tree, s.opts, load, s.log.Warn)
	if err != nil {
		return "", err
	}
	sizes := make(map[string]int64, len(tree))
	for _, e := range tree {
		sizes[e.Path] = e.Size
	}
	var missing []string
	for _, p := range files {
		if !s.present(p, sizes[p]) {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		sample := strings.Join(missing[:min(len(missing), 3)], ", ")
		if len(missing) > 3 {
			sample += fmt.Sprintf(" and %d more", len(missing)-3)
		}
		return "", s.miss("hub: the cached snapshot of %s@%s lacks %d of the files asked for (%s), and %s: fetch them with network access",
			s.repo, s.rev, len(missing), sample, why)
	}
	return dir, nil
}

// readCached reads files from the snapshot folder.
func (s *session) readCached(paths []string) ([][]byte, error) {
	out := make([][]byte, len(paths))
	for i, p := range paths {
		b, err := os.ReadFile(s.cache.pointerPath(s.commit, p))
		if err != nil {
			return nil, fmt.Errorf("hub: %s@%s: reading %s from the cache: %w", s.repo, s.rev, p, err)
		}
		out[i] = b
	}
	return out, nil
}

// online resolves the revision and fetches the selected files. Its errors
// are marked as hubDownError where the Hub could not answer the revision or
// listing request.
func (s *session) online(ctx context.Context) (string, error) {
	s.commit = s.rev
	if !commitRe.MatchString(s.rev) {
		commit, err := s.c.resolveRevision(ctx, s.repo, s.rev)
		if err != nil {
			return "", hubDown(err)
		}
		s.commit = commit
		s.log.Info("hub: resolved", "repo", s.repo, "revision", s.rev, "commit", commit)
	}
	tree, cached := s.cache.readTree(s.commit)
	if !cached {
		var err error
		tree, err = s.c.listTree(ctx, s.repo, s.commit)
		if err != nil {
			return "", hubDown(err)
		}
	}
	tree = s.cleanTree(tree)
	if err := os.MkdirAll(s.cache.dir, 0o755); err != nil {
		return "", fmt.Errorf("hub: %w", err)
	}
	writeCachedirTag(s.cache.root)
	if !cached {
		if err := s.cache.writeTree(s.commit, tree); err != nil {
			s.log.Warn("hub: cannot cache the file listing", "err", err)
		}
	}
	if err := s.cache.writeRef(s.rev, s.commit); err != nil {
		return "", err
	}
	load := func(paths []string) ([][]byte, error) {
		if err := s.fetchAll(ctx, tree, paths); err != nil {
			return nil, err
		}
		return s.readCached(paths)
	}
	files, err := selectFiles(s.repo, tree, s.opts, load, s.log.Warn)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	s.reporting = true
	s.mu.Unlock()
	start := time.Now()
	if err := s.fetchAll(ctx, tree, files); err != nil {
		return "", err
	}
	s.log.Info("hub: snapshot ready", "repo", s.repo, "commit", s.commit, "files", len(files),
		"size", FormatBytes(s.progress.Total), "took", time.Since(start).Round(time.Millisecond), "dir", s.cache.snapshotDir(s.commit))
	return s.cache.snapshotDir(s.commit), nil
}

// cleanTree drops entries that cannot be stored safely (a path escaping the
// snapshot, an ETag that is no hash).
func (s *session) cleanTree(tree []treeEntry) []treeEntry {
	out := tree[:0:0]
	for _, e := range tree {
		switch {
		case checkRelPath(e.Path) != nil:
			s.log.Warn("hub: skipping a file with an unsafe path", "repo", s.repo, "path", e.Path)
		case !etagRe.MatchString(e.etag()):
			s.log.Warn("hub: skipping a file with no usable checksum", "repo", s.repo, "path", e.Path, "etag", e.etag())
		case e.Size < 0:
			s.log.Warn("hub: skipping a file with a negative size", "repo", s.repo, "path", e.Path)
		default:
			out = append(out, e)
		}
	}
	return out
}

// present reports whether a file's snapshot entry exists with its size.
func (s *session) present(p string, size int64) bool {
	st, err := os.Stat(s.cache.pointerPath(s.commit, p))
	return err == nil && st.Mode().IsRegular() && st.Size() == size
}

// fetchAll makes the given files present, downloading up to Concurrency
// blobs at once; files with the same content share one download. The first
// failure cancels the others (their partial files stay for a resume).
func (s *session) fetchAll(ctx context.Context, tree []treeEntry, paths []string) error {
	byPath := make(map[string]treeEntry, len(tree))
	for _, e := range tree {
		byPath[e.Path] = e
	}
	groups := map[string][]string{} // etag -> paths
	var order []string
	var total int64
	for _, p := range paths {
		e, ok := byPath[p]
		if !ok {
			return fmt.Errorf("hub: %s@%s has no file %s", s.repo, s.rev, p)
		}
		if _, seen := groups[e.etag()]; !seen {
			order = append(order, e.etag())
		}
		groups[e.etag()] = append(groups[e.etag()], p)
		total += e.Size
	}
	s.mu.Lock()
	if s.reporting {
		s.progress = Progress{Repo: s.repo, Commit: s.commit, Total: total, Files: len(paths)}
		s.report("")
	}
	s.mu.Unlock()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, s.c.concurrency())
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var errs []error
	for _, etag := range order {
		ps := groups[etag]
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := s.fetch(ctx, byPath[ps[0]], ps); err != nil {
				errMu.Lock()
				errs = append(errs, err)
				errMu.Unlock()
				cancel(err)
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		// The first error is the cause; the rest are mostly cancellations.
		return errs[0]
	}
	if ctx.Err() != nil {
		return fmt.Errorf("hub: fetching %s@%s: %w", s.repo, s.rev, context.Cause(ctx))
	}
	return nil
}

// report calls Progress; s.mu is held.
func (s *session) report(p string) {
	if s.c.Progress == nil || !s.reporting {
		return
	}
	s.progress.Path = p
	s.c.Progress(s.progress)
}

// addBytes counts n more bytes of file p (negative when a download restarts).
func (s *session) addBytes(p string, n int64) {
	if n == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.progress.Done += n
	s.report(p)
}

// fileDone counts file p complete, with n of its bytes not counted yet.
func (s *session) fileDone(p string, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.progress.Done += n
	s.progress.FilesDone++
	s.report(p)
}

// fetch makes the files ps, which all have e's content, present in the
// snapshot: from their existing entries, from the blob, or by downloading it.
func (s *session) fetch(ctx context.Context, e treeEntry, ps []string) error {
	var missing []string
	for _, p := range ps {
		if s.present(p, e.Size) {
			s.fileDone(p, e.Size)
		} else {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	blob := s.cache.blobPath(e.etag())
	if s.blobOK(blob, e) {
		return s.linkAll(blob, e, missing, false, 0)
	}
	unlock, err := lockFile(ctx, s.cache.lockPath(e.etag()), s.log)
	if err != nil {
		return fmt.Errorf("hub: %s: waiting for the lock on %s: %w", e.Path, e.etag(), err)
	}
	defer unlock()
	if s.blobOK(blob, e) { // another process finished it while we waited
		return s.linkAll(blob, e, missing, false, 0)
	}
	reported, err := s.download(ctx, e, blob)
	if err != nil {
		return err
	}
	return s.linkAll(blob, e, missing, true, reported)
}

// blobOK reports whether a complete blob of e is in the cache. A blob of the
// wrong size is damaged (blobs are named by their content) and is removed.
func (s *session) blobOK(blob string, e treeEntry) bool {
	st, err := os.Stat(blob)
	if err != nil {
		return false
	}
	if st.Mode().IsRegular() && st.Size() == e.Size {
		return true
	}
	s.log.Warn("hub: removing a damaged blob", "blob", blob, "size", st.Size(), "want", e.Size)
	os.Remove(blob)
	return false
}

// linkAll links each snapshot path to the blob and counts the files done
// (reported bytes of the first were counted as they arrived). newBlob says the blob was just downloaded (where symlinks are unsupported
// it is then moved to the last path rather than copied, as huggingface_hub
// does).
func (s *session) linkAll(blob string, e treeEntry, ps []string, newBlob bool, reported int64) error {
	for i, p := range ps {
		if err := s.link(blob, s.cache.pointerPath(s.commit, p), newBlob && i == len(ps)-1); err != nil {
			return fmt.Errorf("hub: %s: linking %s into the snapshot: %w", s.repo, p, err)
		}
		s.fileDone(p, e.Size-reported)
		reported = 0
		s.log.Debug("hub: file ready", "repo", s.repo, "path", p, "blob", e.etag())
	}
	return nil
}

// link makes pointer a relative symlink to blob. Where symlinks cannot be
// made (Windows without Developer Mode, some filesystems), pointer becomes a
// copy of the blob, or the blob itself if move is set.
func (s *session) link(blob, pointer string, move bool) error {
	if err := os.MkdirAll(filepath.Dir(pointer), 0o755); err != nil {
		return err
	}
	if err := os.Remove(pointer); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if !s.noSymlinks.Load() {
		target, err := filepath.Rel(filepath.Dir(pointer), blob)
		if err != nil {
			target = blob
		}
		symlink := os.Symlink
		if s.c.symlink != nil {
			symlink = s.c.symlink
		}
		err = symlink(target, pointer)
		if err == nil {
			return nil
		}
		if errors.Is(err, fs.ErrExist) { // made meanwhile by another process
			if got, rerr := filepath.EvalSymlinks(pointer); rerr == nil {
				if want, werr := filepath.EvalSymlinks(blob); werr == nil && got == want {
					return nil
				}
			}
			return err
		}
		s.noSymlinks.Store(true)
		s.log.Warn("hub: symlinks are not supported here; the snapshot will hold copies of the files (on Windows, enable Developer Mode to share them)", "dir", s.cache.dir, "err", err)
	}
	if move {
		return os.Rename(blob, pointer)
	}
	return copyFile(blob, pointer)
}

// Package hubtest is a fake Hugging Face Hub on loopback for tests: it speaks
// the parts of the Hub's API that package hub uses (revision, tree, resolve
// with redirects of LFS files to a separate storage server, Range requests,
// the Hub's error headers, private and gated repositories), and records the
// requests it gets.
package hubtest

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// File is a file of a fake repository.
type File struct {
	Path string
	Data []byte
	// LFS files are served as the Hub serves Git LFS files: a redirect to the
	// storage server, ETag and X-Linked-Etag the sha256, X-Linked-Size.
	LFS bool
}

// Request is a request the fake received.
type Request struct {
	Method        string
	Storage       bool   // made to the storage server (a followed redirect)
	Path          string // the URL path, unescaped
	Query         string
	Range         string // the Range header
	Authorization string // the Authorization header
}

// Server is a fake Hub. Its methods are safe for concurrent use.
type Server struct {
	// URL is the Hub endpoint (what HF_ENDPOINT would hold).
	URL string
	// StorageURL is the storage server LFS downloads are redirected to.
	StorageURL string

	hub, storage *httptest.Server

	mu        sync.Mutex
	token     string
	pageSize  int
	repos     map[string]*Repo
	blobs     map[string][]byte // sha256 -> content
	requests  []Request
	intercept func(w http.ResponseWriter, r *http.Request) bool
	commits   int
}

// Repo is a repository of the fake Hub.
type Repo struct {
	ID      string
	s       *Server
	private bool
	gated   bool
	commits map[string]map[string]File // commit -> path -> file
	refs    map[string]string          // branch or tag -> commit
}

// NewServer starts a fake Hub and its storage server, closed when the test
// ends.
func NewServer(t testing.TB) *Server {
	s := &Server{repos: map[string]*Repo{}, blobs: map[string][]byte{}}
	s.hub = httptest.NewServer(http.HandlerFunc(s.serveHub))
	s.storage = httptest.NewServer(http.HandlerFunc(s.serveStorage))
	s.URL, s.StorageURL = s.hub.URL, s.storage.URL
	t.Cleanup(func() {
		s.hub.Close()
		s.storage.Close()
	})
	return s
}

// SetToken sets the access token that opens private and gated repositories;
// any other token sent is refused as invalid.
func (s *Server) SetToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// SetPageSize makes tree listings come in pages of n entries linked by Link
// headers (0: one page).
func (s *Server) SetPageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageSize = n
}

// Intercept installs f in front of both servers: it sees every request
// (after it is recorded) and returns true if it answered it itself. nil
// removes it.
func (s *Server) Intercept(f func(w http.ResponseWriter, r *http.Request) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.intercept = f
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// ResetRequests forgets the requests received so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// AddRepo creates a repository whose branch "main" holds files.
func (s *Server) AddRepo(id string, files ...File) *Repo {
	r := &Repo{ID: id, s: s, commits: map[string]map[string]File{}, refs: map[string]string{}}
	s.mu.Lock()
	s.repos[id] = r
	s.mu.Unlock()
	r.Commit("main", files...)
	return r
}

// Commit makes a commit holding exactly files on branch and returns its hash.
func (r *Repo) Commit(branch string, files ...File) string {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commits++
	h := sha1.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00", r.ID, branch, s.commits)
	tree := map[string]File{}
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%s\x00", f.Path, GitBlobID(f.Data))
		tree[f.Path] = f
		if f.LFS {
			s.blobs[SHA256(f.Data)] = f.Data
		}
	}
	commit := hex.EncodeToString(h.Sum(nil))
	r.commits[commit] = tree
	r.refs[branch] = commit
	return commit
}

// Tag points a tag (or branch) at a commit.
func (r *Repo) Tag(name, commit string) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.refs[name] = commit
}

// Head returns the commit a branch or tag points at.
func (r *Repo) Head(ref string) string {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	return r.refs[ref]
}

// SetPrivate makes the repository visible only with the server's token.
func (r *Repo) SetPrivate(private bool) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.private = private
}

// SetGated makes the repository's files downloadable only with the server's
// token (its API metadata stays public, as on the Hub).
func (r *Repo) SetGated(gated bool) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.gated = gated
}

// SHA256 is the hex sha256 of data: an LFS file's ETag.
func SHA256(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// GitBlobID is the git blob sha1 of data: a regular file's ETag.
func GitBlobID(data []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// lfsPointer is the Git LFS pointer file stored in git for an LFS file.
func lfsPointer(f File) []byte {
	return fmt.Appendf(nil, "version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", SHA256(f.Data), len(f.Data))
}

// ETag is the ETag the fake Hub gives a file.
func (f File) ETag() string {
	if f.LFS {
		return SHA256(f.Data)
	}
	return GitBlobID(f.Data)
}

func (s *Server) record(r *http.Request, storage bool) func(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{
		Method: r.Method, Storage: storage, Path: r.URL.Path, Query: r.URL.RawQuery,
		Range: r.Header.Get("Range"), Authorization: r.Header.Get("Authorization"),
	})
	return s.intercept
}

// hubError answers as the Hub does, with X-Error-Code and X-Error-Message.
func hubError(w http.ResponseWriter, status int, code, msg string) {
	if code != "" {
		w.Header().Set("X-Error-Code", code)
	}
	w.Header().Set("X-Error-Message", msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// splitPath splits an escaped URL path into unescaped segments.
func splitPath(r *http.Request) ([]string, bool) {
	segs := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	for i, seg := range segs {
		u, err := url.PathUnescape(seg)
		if err != nil {
			return nil, false
		}
		segs[i] = u
	}
	return segs, true
}

func (s *Server) serveHub(w http.ResponseWriter, r *http.Request) {
	if f := s.record(r, false); f != nil && f(w, r) {
		return
	}
	segs, ok := splitPath(r)
	if !ok {
		http.Error(w, "bad path", http.StatusBadRequest)
		return
	}
	switch {
	case len(segs) >= 6 && segs[0] == "api" && segs[1] == "models" && segs[4] == "revision" && r.Method == http.MethodGet:
		s.serveRevision(w, r, segs[2]+"/"+segs[3], strings.Join(segs[5:], "/"))
	case len(segs) >= 6 && segs[0] == "api" && segs[1] == "models" && segs[4] == "tree" && r.Method == http.MethodGet:
		s.serveTree(w, r, segs[2]+"/"+segs[3], segs[5], strings.Join(segs[6:], "/"))
	case len(segs) >= 5 && segs[2] == "resolve" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		s.serveResolve(w, r, segs[0]+"/"+segs[1], segs[3], strings.Join(segs[4:], "/"))
	default:
		http.NotFound(w, r)
	}
}

// access finds a repository and checks the request's token as the Hub does;
// it answers and returns nil if the request may not go on. files says the
// request is for file contents (which gating guards).
func (s *Server) access(w http.ResponseWriter, r *http.Request, id string, files bool) *Repo {
	s.mu.Lock()
	repo, token := s.repos[id], s.token
	private, gated := repo != nil && repo.private, repo != nil && repo.gated
	s.mu.Unlock()
	auth := r.Header.Get("Authorization")
	sent, hasToken := strings.CutPrefix(auth, "Bearer ")
	switch {
	case auth != "" && (!hasToken || token == "" || sent != token):
		hubError(w, http.StatusUnauthorized, "", "Invalid credentials in Authorization header")
	case repo == nil && auth == "", private && auth == "":
		hubError(w, http.StatusUnauthorized, "RepoNotFound", "Repository not found")
	case repo == nil:
		hubError(w, http.StatusNotFound, "RepoNotFound", "Repository not found")
	case gated && files && auth == "":
		hubError(w, http.StatusUnauthorized, "GatedRepo", fmt.Sprintf("Access to model %s is restricted. You must have access to it and be authenticated to access it. Please log in.", id))
	default:
		return repo
	}
	return nil
}

// commitOf resolves a branch, tag, commit or commit prefix (7+ digits).
func (r *Repo) commitOf(rev string) (string, bool) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if c, ok := r.refs[rev]; ok {
		return c, true
	}
	if _, ok := r.commits[rev]; ok {
		return rev, true
	}
	if len(rev) >= 7 {
		for c := range r.commits {
			if strings.HasPrefix(c, rev) {
				return c, true
			}
		}
	}
	return "", false
}

func (r *Repo) files(commit string) map[string]File {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	return r.commits[commit]
}

func (s *Server) serveRevision(w http.ResponseWriter, r *http.Request, id, rev string) {
	repo := s.access(w, r, id, false)
	if repo == nil {
		return
	}
	commit, ok := repo.commitOf(rev)
	if !ok {
		hubError(w, http.StatusNotFound, "RevisionNotFound", fmt.Sprintf("Invalid rev id: %s", rev))
		return
	}
	files := repo.files(commit)
	var siblings []map[string]string
	for _, p := range sortedPaths(files) {
		siblings = append(siblings, map[string]string{"rfilename": p})
	}
	s.mu.Lock()
	private, gated := repo.private, repo.gated
	s.mu.Unlock()
	var g any = false
	if gated {
		g = "auto"
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"_id": commit[:24], "id": id, "modelId": id, "sha": commit, "private": private, "gated": g,
		"lastModified": time.Unix(1700000000, 0).UTC().Format(time.RFC3339), "siblings": siblings,
	})
}

func sortedPaths(files map[string]File) []string {
	ps := make([]string, 0, len(files))
	for p := range files {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

func (s *Server) serveTree(w http.ResponseWriter, r *http.Request, id, rev, dir string) {
	repo := s.access(w, r, id, false)
	if repo == nil {
		return
	}
	commit, ok := repo.commitOf(rev)
	if !ok {
		hubError(w, http.StatusNotFound, "RevisionNotFound", fmt.Sprintf("Invalid rev id: %s", rev))
		return
	}
	files := repo.files(commit)
	recursive := r.URL.Query().Get("recursive")
	deep := recursive == "true" || recursive == "True" || recursive == "1"
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	var entries []map[string]any
	dirs := map[string]bool{}
	for _, p := range sortedPaths(files) {
		rel, ok := strings.CutPrefix(p, prefix)
		if !ok {
			continue
		}
		// the folders on the way
		parts := strings.Split(rel, "/")
		for i := 1; i < len(parts); i++ {
			d := prefix + strings.Join(parts[:i], "/")
			if !dirs[d] && (deep || i == 1) {
				dirs[d] = true
				entries = append(entries, map[string]any{"type": "directory", "oid": GitBlobID([]byte(d)), "size": 0, "path": d})
			}
		}
		if !deep && len(parts) > 1 {
			continue
		}
		f := files[p]
		e := map[string]any{"type": "file", "size": len(f.Data), "path": p}
		if f.LFS {
			ptr := lfsPointer(f)
			e["oid"] = GitBlobID(ptr)
			e["lfs"] = map[string]any{"oid": SHA256(f.Data), "size": len(f.Data), "pointerSize": len(ptr)}
		} else {
			e["oid"] = GitBlobID(f.Data)
		}
		entries = append(entries, e)
	}
	if dir != "" && len(entries) == 0 {
		hubError(w, http.StatusNotFound, "EntryNotFound", fmt.Sprintf("%s does not exist on %q", dir, rev))
		return
	}
	s.mu.Lock()
	pageSize := s.pageSize
	s.mu.Unlock()
	if pageSize > 0 {
		start, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
		end := min(start+pageSize, len(entries))
		if start > len(entries) {
			start = len(entries)
		}
		if end < len(entries) {
			next := *r.URL
			q := next.Query()
			q.Set("cursor", strconv.Itoa(end))
			next.RawQuery = q.Encode()
			w.Header().Set("Link", fmt.Sprintf(`<%s%s>; rel="next"`, s.URL, next.RequestURI()))
		}
		entries = entries[start:end]
	}
	if entries == nil {
		entries = []map[string]any{}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(entries)
}

func (s *Server) serveResolve(w http.ResponseWriter, r *http.Request, id, rev, p string) {
	repo := s.access(w, r, id, true)
	if repo == nil {
		return
	}
	commit, ok := repo.commitOf(rev)
	if !ok {
		hubError(w, http.StatusNotFound, "RevisionNotFound", fmt.Sprintf("Invalid rev id: %s", rev))
		return
	}
	w.Header().Set("X-Repo-Commit", commit)
	f, ok := repo.files(commit)[p]
	if !ok {
		hubError(w, http.StatusNotFound, "EntryNotFound", fmt.Sprintf("%s does not exist on %q", p, rev))
		return
	}
	etag := `"` + f.ETag() + `"`
	w.Header().Set("ETag", etag)
	if f.LFS {
		w.Header().Set("X-Linked-Etag", etag)
		w.Header().Set("X-Linked-Size", strconv.Itoa(len(f.Data)))
		loc := fmt.Sprintf("%s/blobs/%s?X-Amz-Signature=fake&filename=%s", s.StorageURL, SHA256(f.Data), url.QueryEscape(path.Base(p)))
		http.Redirect(w, r, loc, http.StatusFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.Data))
}

// serveStorage serves LFS contents by sha256, like the signed storage URLs
// the Hub redirects to, which refuse a request that also carries an
// Authorization header.
func (s *Server) serveStorage(w http.ResponseWriter, r *http.Request) {
	if f := s.record(r, true); f != nil && f(w, r) {
		return
	}
	sha, ok := strings.CutPrefix(r.URL.Path, "/blobs/")
	s.mu.Lock()
	data, found := s.blobs[sha]
	s.mu.Unlock()
	switch {
	case r.Header.Get("Authorization") != "":
		http.Error(w, "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified", http.StatusBadRequest)
	case !ok || !found:
		http.NotFound(w, r)
	default:
		w.Header().Set("ETag", `"`+sha+`"`)
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}
}

// FilesFromDir returns every file under dir as repository files (paths
// relative to dir), the .safetensors ones as LFS files, as a model folder
// would be uploaded.
func FilesFromDir(t testing.TB, dir string) []File {
	t.Helper()
	var files []File
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files = append(files, File{Path: filepath.ToSlash(rel), Data: data, LFS: strings.HasSuffix(p, ".safetensors")})
		return nil
	})
	if err != nil {
		t.Fatalf("hubtest: reading %s: %v", dir, err)
	}
	return files
}

package hub

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// verifier hashes a file as the Hub names it: an LFS file by its sha256, any
// other by its git blob id, sha1("blob <size>\x00" + content).
type verifier struct {
	h      hash.Hash
	prefix []byte
	want   string
	algo   string
}

func newVerifier(e treeEntry) *verifier {
	v := &verifier{want: e.etag()}
	if len(v.want) == 64 {
		v.h, v.algo = sha256.New(), "sha256"
	} else {
		v.h, v.algo = sha1.New(), "git blob sha1"
		v.prefix = fmt.Appendf(nil, "blob %d\x00", e.Size)
	}
	v.reset()
	return v
}

func (v *verifier) reset() {
	v.h.Reset()
	v.h.Write(v.prefix)
}

func (v *verifier) Write(b []byte) (int, error) { return v.h.Write(b) }

func (v *verifier) sum() string { return hex.EncodeToString(v.h.Sum(nil)) }

// errStalled cancels a download that received nothing for Client.Timeout.
var errStalled = errors.New("no data received within the timeout")

// partial is a blob being downloaded into blobs/<etag>.incomplete.
type partial struct {
	s    *session
	e    treeEntry
	name string    // the .incomplete file
	f    *os.File  // open on name; nil once closed
	w    io.Writer // f, or what the test hook wraps it in
	v    *verifier
	have int64 // bytes in the file, all hashed into v and reported
}

// download fetches e's blob: it resumes blob.incomplete if there is one,
// checks the content against the ETag, and renames the file to blob. It
// returns the bytes it reported to Progress. A failed checksum removes the
// partial file; any other failure keeps it for the next call to resume.
func (s *session) download(ctx context.Context, e treeEntry, blob string) (reported int64, err error) {
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return 0, fmt.Errorf("hub: %w", err)
	}
	p := &partial{s: s, e: e, name: blob + ".incomplete", v: newVerifier(e)}
	p.f, err = os.OpenFile(p.name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return 0, fmt.Errorf("hub: %s: %w", e.Path, err)
	}
	defer func() {
		if p.f != nil {
			p.f.Close()
		}
	}()
	p.w = p.f
	if s.c.wrapWriter != nil {
		p.w = s.c.wrapWriter(p.f)
	}
	if err := p.resume(); err != nil {
		return p.have, err
	}
	if err := p.fetch(ctx); err != nil {
		return p.have, err
	}
	if got := p.v.sum(); got != p.v.want {
		p.f.Close()
		p.f = nil
		os.Remove(p.name)
		return p.have, fmt.Errorf("hub: %s@%s: %s: %w: its ETag is the %s %s but the %d bytes received hash to %s; the download was removed, run again",
			s.repo, s.rev, e.Path, ErrChecksum, p.v.algo, p.v.want, p.have, got)
	}
	if err := p.f.Sync(); err != nil {
		return p.have, p.writeErr(err)
	}
	if err := p.f.Close(); err != nil {
		p.f = nil
		return p.have, p.writeErr(err)
	}
	p.f = nil
	if err := os.Rename(p.name, blob); err != nil {
		return p.have, fmt.Errorf("hub: %s: %w", e.Path, err)
	}
	return p.have, nil
}

// resume hashes what the partial file already holds.
func (p *partial) resume() error {
	st, err := p.f.Stat()
	if err != nil {
		return fmt.Errorf("hub: %s: %w", p.e.Path, err)
	}
	if st.Size() > p.e.Size {
		return p.restart()
	}
	if st.Size() > 0 {
		n, err := io.Copy(p.v, p.f)
		if err != nil {
			return fmt.Errorf("hub: reading the partial download %s: %w", p.name, err)
		}
		p.have = n
		p.s.addBytes(p.e.Path, n)
		p.s.log.Info("hub: resuming a partial download", "path", p.e.Path, "have", FormatBytes(n), "of", FormatBytes(p.e.Size))
	}
	return nil
}

// restart empties the partial file.
func (p *partial) restart() error {
	if err := p.f.Truncate(0); err != nil {
		return fmt.Errorf("hub: %s: %w", p.name, err)
	}
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("hub: %s: %w", p.name, err)
	}
	p.v.reset()
	p.s.addBytes(p.e.Path, -p.have)
	p.have = 0
	return nil
}

// fetch downloads the rest of the file, retrying and resuming after network
// errors and retryable statuses; the retry count starts over whenever bytes
// arrive.
func (p *partial) fetch(ctx context.Context) error {
	c := p.s.c
	hc := c.httpClient()
	fails := 0
	for p.have < p.e.Size {
		progressed, retry, err := p.get(ctx, hc, fails+1)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return fmt.Errorf("hub: %s@%s: %s: %w", p.s.repo, p.s.rev, p.e.Path, context.Cause(ctx))
		}
		if !retry.ok {
			return err
		}
		if progressed {
			fails = 0
		}
		fails++
		if fails > c.maxRetries() {
			return fmt.Errorf("%w (gave up after %d attempts)", err, fails)
		}
		wait := c.backoff(fails, retry.resp)
		p.s.log.Warn("hub: download interrupted, retrying", "path", p.e.Path, "have", p.have, "of", p.e.Size, "err", err, "retry", fails, "wait", wait)
		if err := sleep(ctx, wait); err != nil {
			return fmt.Errorf("hub: %s@%s: %s: %w", p.s.repo, p.s.rev, p.e.Path, err)
		}
	}
	return nil
}

// resolveURL is where the Hub serves a file of a commit.
func (s *session) resolveURL(p string) string {
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return fmt.Sprintf("%s/%s/resolve/%s/%s", s.c.endpoint(), s.repo, url.PathEscape(s.commit), strings.Join(segs, "/"))
}

// get sends one request for the rest of the file and writes what arrives.
// progressed says whether any byte was written.
func (p *partial) get(ctx context.Context, hc *http.Client, attempt int) (progressed bool, retry retryInfo, err error) {
	s, e := p.s, p.e
	timeout := s.c.timeout()
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(timeout, func() { cancel(errStalled) })
	defer stall.Stop()

	req, err := s.c.newRequest(rctx, http.MethodGet, s.resolveURL(e.Path))
	if err != nil {
		return false, retryInfo{}, err
	}
	// No compression: byte ranges and sizes must be of the file itself.
	req.Header.Set("Accept-Encoding", "identity")
	if p.have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", p.have))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, retryInfo{ok: true}, p.netErr(rctx, err)
	}
	defer resp.Body.Close()

	switch resp.StatusCode {
	case http.StatusOK:
		if p.have > 0 { // the server ignored the Range: start over
			if err := p.restart(); err != nil {
				return false, retryInfo{}, err
			}
		}
	case http.StatusPartialContent:
		if start, ok := contentRangeStart(resp.Header.Get("Content-Range")); !ok || start != p.have {
			if err := p.restart(); err != nil {
				return false, retryInfo{}, err
			}
			return false, retryInfo{ok: true}, fmt.Errorf("hub: %s: asked for bytes from %d, got Content-Range %q", e.Path, p.have, resp.Header.Get("Content-Range"))
		}
	case http.StatusRequestedRangeNotSatisfiable:
		if err := p.restart(); err != nil {
			return false, retryInfo{}, err
		}
		return false, retryInfo{ok: true}, fmt.Errorf("hub: %s: the partial download is not a prefix of the file (HTTP 416); starting over", e.Path)
	default:
		herr := s.c.httpError(resp, &HTTPError{Repo: s.repo, Revision: s.rev, Path: e.Path}, attempt)
		return false, retryInfo{ok: retryable(resp.StatusCode), resp: resp}, herr
	}
	if err := s.checkHeaders(resp, e); err != nil {
		return false, retryInfo{}, err
	}

	buf := make([]byte, 256<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			stall.Reset(timeout)
			if p.have+int64(n) > e.Size {
				p.f.Close()
				p.f = nil
				os.Remove(p.name)
				return progressed, retryInfo{}, fmt.Errorf("hub: %s@%s: %s: the server sent more than the %d bytes the file has; the download was removed", s.repo, s.rev, e.Path, e.Size)
			}
			w, werr := p.w.Write(buf[:n])
			if w > 0 {
				progressed = true
				p.v.Write(buf[:w])
				p.have += int64(w)
				s.addBytes(e.Path, int64(w))
			}
			if werr != nil {
				return progressed, retryInfo{}, p.writeErr(werr)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return progressed, retryInfo{ok: true}, p.netErr(rctx, rerr)
		}
	}
	if p.have < e.Size {
		return progressed, retryInfo{ok: true}, fmt.Errorf("hub: %s: the connection ended at byte %d of %d", e.Path, p.have, e.Size)
	}
	return progressed, retryInfo{}, nil
}

// netErr describes a failed request or read: a stall, a cancellation (of the
// caller's context) or a network error.
func (p *partial) netErr(rctx context.Context, err error) error {
	if cause := context.Cause(rctx); errors.Is(cause, errStalled) {
		return fmt.Errorf("hub: %s: %w (%s)", p.e.Path, errStalled, p.s.c.timeout())
	}
	return fmt.Errorf("hub: %s: %w", p.e.Path, err)
}

// writeErr describes a failed write to the partial file.
func (p *partial) writeErr(err error) error {
	if isDiskFull(err) {
		return fmt.Errorf("hub: %s@%s: %s: %w writing %s (%s of %s written): free some space and run again, the download will resume: %w",
			p.s.repo, p.s.rev, p.e.Path, ErrDiskFull, p.name, FormatBytes(p.have), FormatBytes(p.e.Size), err)
	}
	return fmt.Errorf("hub: %s@%s: %s: writing %s: %w", p.s.repo, p.s.rev, p.e.Path, p.name, err)
}

// contentRangeStart parses the first byte of "bytes START-END/TOTAL".
func contentRangeStart(h string) (int64, bool) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, false
	}
	start, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(start), 10, 64)
	return n, err == nil
}

// checkHeaders compares what the Hub says of the file, on its last response
// before any redirect to storage (X-Repo-Commit, X-Linked-Etag or ETag,
// X-Linked-Size; as huggingface_hub reads them), with the file listing.
func (s *session) checkHeaders(resp *http.Response, e treeEntry) error {
	var hub *http.Response
	for r := resp; r != nil; r = r.Request.Response {
		if s.c.isHub(r.Request.URL) {
			hub = r
			break
		}
	}
	if hub == nil {
		return nil
	}
	h := hub.Header
	if commit := h.Get("X-Repo-Commit"); commit != "" && commit != s.commit {
		return fmt.Errorf("hub: %s: asked for commit %s, the Hub served commit %s", e.Path, s.commit, commit)
	}
	etag := h.Get("X-Linked-Etag")
	if etag == "" {
		etag = h.Get("ETag")
	}
	if etag = normalizeEtag(etag); etag != "" && etag != e.etag() {
		return fmt.Errorf("hub: %s@%s: %s: the Hub gives ETag %s but its file listing %s", s.repo, s.commit, e.Path, etag, e.etag())
	}
	if size := h.Get("X-Linked-Size"); size != "" {
		if n, err := strconv.ParseInt(size, 10, 64); err != nil || n != e.Size {
			return fmt.Errorf("hub: %s@%s: %s: the Hub gives size %s but its file listing %d", s.repo, s.commit, e.Path, size, e.Size)
		}
	}
	return nil
}

// normalizeEtag strips the weak marker and quotes of an ETag header.
func normalizeEtag(etag string) string {
	return strings.Trim(strings.TrimPrefix(strings.TrimSpace(etag), "W/"), `"`)
}

package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxJSON bounds an API answer (a tree listing of ~100k files is ~20 MB).
const maxJSON = 256 << 20

// treeEntry is one file of a repository at a commit, as the tree API lists it
// and huggingface_hub caches it (trees/<commit>.json).
type treeEntry struct {
	Path      string
	Size      int64
	BlobID    string // git blob sha1
	LFSSha256 string // for LFS files
	LFSSize   int64
	XetHash   string
}

// etag is the ETag the Hub gives for the file's resolve URL, which names its
// blob in the cache: the LFS sha256, else the git blob sha1.
func (e treeEntry) etag() string {
	if e.LFSSha256 != "" {
		return e.LFSSha256
	}
	return e.BlobID
}

// apiTreeEntry is one element of GET /api/models/{repo}/tree/{rev}.
type apiTreeEntry struct {
	Type string `json:"type"`
	Path string `json:"path"`
	Size int64  `json:"size"`
	OID  string `json:"oid"`
	LFS  *struct {
		OID  string `json:"oid"`
		Size int64  `json:"size"`
	} `json:"lfs"`
	XetHash string `json:"xetHash"`
}

// resolveRevision asks the Hub which commit a branch, tag or short hash names.
func (c *Client) resolveRevision(ctx context.Context, repo, rev string) (string, error) {
	u := fmt.Sprintf("%s/api/models/%s/revision/%s", c.endpoint(), repo, url.PathEscape(rev))
	var info struct {
		SHA string `json:"sha"`
	}
	if _, err := c.getJSON(ctx, u, &HTTPError{Repo: repo, Revision: rev}, &info); err != nil {
		return "", err
	}
	if !commitRe.MatchString(info.SHA) {
		return "", fmt.Errorf("hub: the Hub answered %s with no valid commit sha (got %q)", u, info.SHA)
	}
	return info.SHA, nil
}

// listTree lists every file of the repository at a commit, following pages.
func (c *Client) listTree(ctx context.Context, repo, commit string) ([]treeEntry, error) {
	u := fmt.Sprintf("%s/api/models/%s/tree/%s?recursive=true", c.endpoint(), repo, commit)
	var out []treeEntry
	for pages := 0; u != ""; pages++ {
		if pages > 10000 {
			return nil, fmt.Errorf("hub: listing %s@%s: too many pages", repo, commit)
		}
		var page []apiTreeEntry
		h, err := c.getJSON(ctx, u, &HTTPError{Repo: repo, Revision: commit}, &page)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			if e.Type != "file" {
				continue
			}
			te := treeEntry{Path: e.Path, Size: e.Size, BlobID: e.OID, XetHash: e.XetHash}
			if e.LFS != nil {
				te.LFSSha256, te.LFSSize = e.LFS.OID, e.LFS.Size
			}
			out = append(out, te)
		}
		next, err := nextPage(h, u)
		if err != nil {
			return nil, fmt.Errorf("hub: listing %s@%s: %w", repo, commit, err)
		}
		u = next
	}
	return out, nil
}

// nextPage returns the rel="next" URL of a Link header, resolved against the
// page's URL; "" if there is none.
func nextPage(h http.Header, base string) (string, error) {
	for _, v := range h.Values("Link") {
		for _, link := range strings.Split(v, ",") {
			target, params, ok := strings.Cut(link, ";")
			target = strings.TrimSpace(target)
			if !ok || !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
				continue
			}
			for _, p := range strings.Split(params, ";") {
				k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.TrimSpace(k) == "rel" && strings.Trim(strings.TrimSpace(val), `"`) == "next" {
					b, err := url.Parse(base)
					if err != nil {
						return "", err
					}
					n, err := b.Parse(target[1 : len(target)-1])
					if err != nil {
						return "", fmt.Errorf("bad Link header %q: %w", v, err)
					}
					return n.String(), nil
				}
			}
		}
	}
	return "", nil
}

// getJSON GETs an API URL into v, retrying network errors and retryable
// statuses; each attempt is bounded by the Client's Timeout. about fills in
// the repository and revision of any HTTPError. It returns the headers.
func (c *Client) getJSON(ctx context.Context, u string, about *HTTPError, v any) (http.Header, error) {
	hc := c.httpClient()
	log := c.logger()
	for attempt := 1; ; attempt++ {
		h, retry, err := c.getJSONOnce(ctx, hc, u, about, attempt, v)
		if err == nil {
			return h, nil
		}
		if !retry.ok || attempt > c.maxRetries() || ctx.Err() != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("hub: GET %s: %w", u, context.Cause(ctx))
			}
			return nil, err
		}
		wait := c.backoff(attempt, retry.resp)
		log.Warn("hub: request failed, retrying", "url", u, "err", err, "retry", attempt, "of", c.maxRetries(), "wait", wait)
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("hub: GET %s: %w", u, err)
		}
	}
}

// retryInfo says whether a failed attempt may be retried, and the response
// (for Retry-After) if there was one.
type retryInfo struct {
	ok   bool
	resp *http.Response
}

func (c *Client) getJSONOnce(ctx context.Context, hc *http.Client, u string, about *HTTPError, attempt int, v any) (http.Header, retryInfo, error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	req, err := c.newRequest(actx, http.MethodGet, u)
	if err != nil {
		return nil, retryInfo{}, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, retryInfo{ok: true}, fmt.Errorf("hub: GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		herr := c.httpError(resp, about, attempt)
		return nil, retryInfo{ok: retryable(resp.StatusCode), resp: resp}, herr
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJSON+1))
	if err != nil {
		return nil, retryInfo{ok: true}, fmt.Errorf("hub: GET %s: reading the answer: %w", u, err)
	}
	if len(body) > maxJSON {
		return nil, retryInfo{}, fmt.Errorf("hub: GET %s: answer larger than %d bytes", u, maxJSON)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, retryInfo{}, fmt.Errorf("hub: GET %s: the answer is not the JSON expected: %w", u, err)
	}
	return resp.Header, retryInfo{}, nil
}

// httpError describes an unsuccessful response; about supplies the
// repository, revision and path asked for. It reads a little of the body.
func (c *Client) httpError(resp *http.Response, about *HTTPError, attempts int) *HTTPError {
	e := *about
	e.StatusCode = resp.StatusCode
	e.Method = resp.Request.Method
	e.URL = resp.Request.URL.String()
	e.Endpoint = c.endpoint()
	e.Attempts = attempts
	e.TokenSent = resp.Request.Header.Get("Authorization") != ""
	if c.isHub(resp.Request.URL) {
		e.Code = resp.Header.Get("X-Error-Code")
		e.Message = resp.Header.Get("X-Error-Message")
	} else {
		// Storage behind a redirect: its codes are not the Hub's.
		e.Code = ""
	}
	if e.Message == "" {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		e.Message = bodyMessage(b)
	}
	return &e
}

// bodyMessage extracts a short message from an error body: the "error" field
// of a JSON body, else the text, on one line.
func bodyMessage(b []byte) string {
	var j struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &j) == nil && j.Error != "" {
		return j.Error
	}
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// isHub reports whether u is on the Hub's host (rather than storage a
// download was redirected to).
func (c *Client) isHub(u *url.URL) bool {
	ep, err := url.Parse(c.endpoint())
	return err == nil && strings.EqualFold(ep.Host, u.Host)
}

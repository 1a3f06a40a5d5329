package hub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// DefaultEndpoint is the Hugging Face Hub.
const DefaultEndpoint = "https://huggingface.co"

// Client fetches model repositories from a Hugging Face Hub into the local
// cache. The zero value works: it talks to DefaultEndpoint without a token and
// caches under DefaultCacheDir. NewClientFromEnv fills it from the environment
// as huggingface_hub does. A Client is safe for concurrent use; set its fields
// before the first call.
type Client struct {
	// Endpoint is the Hub's base URL; "" means DefaultEndpoint.
	Endpoint string
	// Token is sent as "Authorization: Bearer <Token>" to the Hub (never to
	// the storage a download is redirected to on another host); needed for
	// private and gated repositories.
	Token string
	// CacheDir is the hub cache (the folder holding models--org--name);
	// "" means DefaultCacheDir().
	CacheDir string
	// Offline makes Snapshot use the cache only, with no network access.
	Offline bool
	// HTTPClient sends the requests; nil means one over http.DefaultTransport.
	// Its own Timeout, if set, bounds whole downloads, so leave it zero and
	// use Timeout below. Its redirect policy is kept, after the Client's.
	HTTPClient *http.Client
	// Logger receives what is worth telling (resolved revisions, retries,
	// summaries at Info; each file at Debug); nil discards.
	Logger *slog.Logger
	// Concurrency bounds how many files one Snapshot call downloads at
	// once; 0 means 8.
	Concurrency int
	// Progress, if set, is called as bytes arrive (one call at a time, never
	// concurrently). A slow callback slows the downloads.
	Progress func(Progress)
	// Timeout bounds each API request, and how long a download may wait
	// for its next bytes before the connection is dropped and the download
	// resumed; 0 means 30s.
	Timeout time.Duration
	// MaxRetries is how many times a request that failed with a network error
	// or a 408, 429 or 5xx status is sent again; 0 means 5, negative means none.
	MaxRetries int
	// RetryWait is the first pause between retries, doubled each retry up to
	// 8 times its value (a Retry-After header may ask for longer); 0 means 1s.
	RetryWait time.Duration

	// wrapWriter, set by tests only, wraps the writer of each partial blob
	// (to simulate a full disk).
	wrapWriter func(io.Writer) io.Writer
	// symlink, set by tests only, replaces os.Symlink (to simulate a
	// platform without symlinks).
	symlink func(oldname, newname string) error
}

// Options says which files of a repository Snapshot fetches. The zero value
// (or nil) fetches what a diffusers pipeline loads; see Snapshot.
type Options struct {
	// Variant prefers weights of this variant ("fp16": *.fp16.safetensors),
	// falling back to the plain files for a component that has none.
	Variant string
	// Include, if set, fetches exactly the files matching one of these
	// patterns instead of the automatic selection. Patterns are fnmatch-style
	// as in huggingface_hub: '*' matches across '/', and a pattern ending in
	// '/' matches everything under that folder.
	Include []string
	// Exclude drops the files matching one of these patterns from whatever
	// was selected.
	Exclude []string
	// All fetches every file of the repository.
	All bool
}

// Progress reports how a Snapshot call is going.
type Progress struct {
	Repo      string // "org/name"
	Commit    string // the commit being fetched
	Path      string // the file this report is about; "" for the first report
	Done      int64  // bytes of the selected files present so far, cached ones included
	Total     int64  // bytes of all the selected files
	FilesDone int    // selected files complete
	Files     int    // selected files
}

// NewClientFromEnv returns a Client configured as huggingface_hub configures
// itself: HF_ENDPOINT; HF_HUB_CACHE (or the older HUGGINGFACE_HUB_CACHE), else
// $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
// ~/.cache/huggingface/hub; HF_TOKEN (or HUGGING_FACE_HUB_TOKEN), else the
// token file $HF_TOKEN_PATH or $HF_HOME/token that `hf auth login` writes;
// HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) set to 1, ON, YES or TRUE.
func NewClientFromEnv() (*Client, error) {
	return clientFromEnv(os.Getenv)
}

func clientFromEnv(getenv func(string) string) (*Client, error) {
	c := &Client{Endpoint: DefaultEndpoint}
	if ep := strings.TrimRight(getenv("HF_ENDPOINT"), "/"); ep != "" {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("hub: HF_ENDPOINT=%q is not an http(s) URL", ep)
		}
		c.Endpoint = ep
	}
	home := hfHome(getenv)
	c.CacheDir = expandPath(firstNonEmpty(getenv("HF_HUB_CACHE"), getenv("HUGGINGFACE_HUB_CACHE")), getenv)
	if c.CacheDir == "" && home != "" {
		c.CacheDir = filepath.Join(home, "hub")
	}
	if c.CacheDir == "" {
		return nil, errors.New("hub: no cache folder: the home folder is unknown; set HF_HOME or HF_HUB_CACHE")
	}
	c.Token = strings.TrimSpace(firstNonEmpty(getenv("HF_TOKEN"), getenv("HUGGING_FACE_HUB_TOKEN")))
	if c.Token == "" {
		tokenPath := expandPath(getenv("HF_TOKEN_PATH"), getenv)
		if tokenPath == "" && home != "" {
			tokenPath = filepath.Join(home, "token")
		}
		if tokenPath != "" {
			b, err := os.ReadFile(tokenPath)
			switch {
			case err == nil:
				c.Token = strings.TrimSpace(string(b))
			case !errors.Is(err, os.ErrNotExist):
				return nil, fmt.Errorf("hub: reading the token file: %w", err)
			}
		}
	}
	c.Offline = isTrue(firstNonEmpty(getenv("HF_HUB_OFFLINE"), getenv("TRANSFORMERS_OFFLINE")))
	return c, nil
}

// DefaultCacheDir is the hub cache that huggingface_hub uses, from the
// environment (see NewClientFromEnv); "" if the home folder is unknown.
func DefaultCacheDir() string {
	c, err := clientFromEnv(os.Getenv)
	if err != nil {
		return ""
	}
	return c.CacheDir
}

// hfHome is $HF_HOME, else $XDG_CACHE_HOME/huggingface, else
// ~/.cache/huggingface.
func hfHome(getenv func(string) string) string {
	if h := expandPath(getenv("HF_HOME"), getenv); h != "" {
		return h
	}
	if x := expandPath(getenv("XDG_CACHE_HOME"), getenv); x != "" {
		return filepath.Join(x, "huggingface")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return ""
	}
	return filepath.Join(home, ".cache", "huggingface")
}

// expandPath expands a leading "~" and $VARS, as Python's expanduser and
// expandvars do.
func expandPath(p string, getenv func(string) string) string {
	if p == "" {
		return ""
	}
	if p == "~" || strings.HasPrefix(p, "~/") || strings.HasPrefix(p, `~\`) {
		if home, err := os.UserHomeDir(); err == nil {
			p = home + p[1:]
		}
	}
	return os.Expand(p, getenv)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func isTrue(v string) bool {
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "1", "ON", "YES", "TRUE":
		return true
	}
	return false
}

func (c *Client) endpoint() string {
	if c.Endpoint == "" {
		return DefaultEndpoint
	}
	return strings.TrimRight(c.Endpoint, "/")
}

func (c *Client) cacheDir() (string, error) {
	if c.CacheDir != "" {
		return c.CacheDir, nil
	}
	if d := DefaultCacheDir(); d != "" {
		return d, nil
	}
	return "", errors.New("hub: no cache folder: set Client.CacheDir, HF_HUB_CACHE or HF_HOME")
}

func (c *Client) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c *Client) concurrency() int {
	if c.Concurrency <= 0 {
		return 8
	}
	return c.Concurrency
}

func (c *Client) timeout() time.Duration {
	if c.Timeout <= 0 {
		return 30 * time.Second
	}
	return c.Timeout
}

func (c *Client) maxRetries() int {
	switch {
	case c.MaxRetries < 0:
		return 0
	case c.MaxRetries == 0:
		return 5
	}
	return c.MaxRetries
}

func (c *Client) retryWait() time.Duration {
	if c.RetryWait <= 0 {
		return time.Second
	}
	return c.RetryWait
}

// httpClient returns the client to send requests with: the configured one,
// with a redirect policy that drops the Authorization header when a redirect
// leaves the Hub's host (downloads are redirected to signed storage URLs,
// which refuse a second credential), as huggingface_hub does.
func (c *Client) httpClient() *http.Client {
	base := c.HTTPClient
	if base == nil {
		base = &http.Client{}
	}
	hc := *base
	prev := base.CheckRedirect
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return fmt.Errorf("stopped after %d redirects", len(via))
		}
		if req.URL.Host != via[0].URL.Host {
			req.Header.Del("Authorization")
		}
		if prev != nil {
			return prev(req, via)
		}
		return nil
	}
	return &hc
}

// userAgent identifies sdgo to the Hub.
func userAgent() string {
	return "sdgo; go/" + strings.TrimPrefix(runtime.Version(), "go")
}

// newRequest builds a request to the Hub with the headers every request carries.
func (c *Client) newRequest(ctx context.Context, method, u string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	req.Header.Set("User-Agent", userAgent())
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	return req, nil
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// backoff is the pause before retry number n (1-based): RetryWait doubled
// n-1 times, at most 8 RetryWait, or what a Retry-After header asks for (at
// most a minute) if that is longer.
func (c *Client) backoff(n int, resp *http.Response) time.Duration {
	base := c.retryWait()
	d := base << min(n-1, 3)
	if resp != nil {
		if s := resp.Header.Get("Retry-After"); s != "" {
			var secs int
			if _, err := fmt.Sscanf(s, "%d", &secs); err == nil && secs > 0 {
				d = max(d, min(time.Duration(secs)*time.Second, time.Minute))
			}
		}
	}
	return d
}

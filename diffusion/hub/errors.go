package hub

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Errors that Snapshot's errors wrap, for errors.Is.
var (
	// ErrRepoNotFound: the repository does not exist, or is private and the
	// token (if any) gives no access to it.
	ErrRepoNotFound = errors.New("repository not found")
	// ErrRevisionNotFound: the repository has no such branch, tag or commit.
	ErrRevisionNotFound = errors.New("revision not found")
	// ErrEntryNotFound: the repository has no such file at that revision.
	ErrEntryNotFound = errors.New("file not found")
	// ErrGated: the repository is gated and its conditions have not been
	// accepted by the account of the token (or no token was sent).
	ErrGated = errors.New("gated repository")
	// ErrAuth: the Hub refused the request for another authentication reason
	// (an invalid token, for one).
	ErrAuth = errors.New("not authorized")
	// ErrNotCached: the cache alone had to answer (offline, or the Hub could
	// not be reached) and does not hold what was asked for.
	ErrNotCached = errors.New("not in the cache")
	// ErrChecksum: a downloaded file's content does not match its ETag.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrDiskFull: the disk filled up while a file was written; the partial
	// file is kept and a later call resumes it.
	ErrDiskFull = errors.New("disk full")
)

// HTTPError is an unsuccessful answer from the Hub (after any retries). Its
// message says what was asked for and what to do; errors.Is matches it against
// ErrRepoNotFound, ErrRevisionNotFound, ErrEntryNotFound, ErrGated or ErrAuth
// where one applies.
type HTTPError struct {
	StatusCode int    // the HTTP status
	Code       string // the Hub's X-Error-Code header: RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo, ...
	Message    string // the Hub's X-Error-Message header, or the start of the body
	Method     string
	URL        string
	Endpoint   string // the Hub endpoint, for links in the message
	Repo       string // "org/name"
	Revision   string // the revision asked for, if any
	Path       string // the file asked for, if any
	Attempts   int    // how many times the request was sent
	TokenSent  bool   // whether an Authorization header was sent
}

// invalidCredentials is the Hub's X-Error-Message for a token it does not know.
const invalidCredentials = "Invalid credentials in Authorization header"

func (e *HTTPError) kind() error {
	switch {
	case e.Code == "GatedRepo":
		return ErrGated
	case e.Code == "RevisionNotFound":
		return ErrRevisionNotFound
	case e.Code == "EntryNotFound":
		return ErrEntryNotFound
	case e.Code == "RepoNotFound":
		return ErrRepoNotFound
	case e.StatusCode == http.StatusUnauthorized && e.Message == invalidCredentials:
		return ErrAuth
	case e.StatusCode == http.StatusUnauthorized && e.Path == "":
		// The Hub answers 401 for a private or missing repository when no
		// (valid) token is sent.
		return ErrRepoNotFound
	case e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden:
		return ErrAuth
	case e.StatusCode == http.StatusNotFound && e.Path != "":
		return ErrEntryNotFound
	case e.StatusCode == http.StatusNotFound:
		return ErrRepoNotFound
	}
	return nil
}

// Unwrap returns the sentinel error that describes e, if any.
func (e *HTTPError) Unwrap() error { return e.kind() }

func (e *HTTPError) Error() string {
	var b strings.Builder
	b.WriteString("hub: ")
	repoURL := strings.TrimRight(e.Endpoint, "/") + "/" + e.Repo
	switch e.kind() {
	case ErrGated:
		fmt.Fprintf(&b, "%s is a gated repository: ", e.Repo)
		if e.TokenSent {
			fmt.Fprintf(&b, "the account of the token in HF_TOKEN has not been granted access; accept the conditions at %s while logged in to that account", repoURL)
		} else {
			fmt.Fprintf(&b, "accept its conditions at %s, then set HF_TOKEN to an access token of that account", repoURL)
		}
	case ErrRevisionNotFound:
		fmt.Fprintf(&b, "revision %q not found in %s", e.Revision, e.Repo)
	case ErrEntryNotFound:
		fmt.Fprintf(&b, "file %q not found in %s at revision %s", e.Path, e.Repo, e.Revision)
	case ErrRepoNotFound:
		fmt.Fprintf(&b, "repository %s not found", e.Repo)
		if e.Revision != "" && e.Code == "" && e.StatusCode == http.StatusNotFound {
			fmt.Fprintf(&b, " (or it has no revision %q)", e.Revision)
		}
		if e.TokenSent {
			b.WriteString(": check the name; if it is private, the token in HF_TOKEN gives no access to it")
		} else {
			b.WriteString(": check the name; if it is private, set HF_TOKEN to an access token that can read it")
		}
	case ErrAuth:
		if e.Message == invalidCredentials {
			b.WriteString("the Hub rejected the token in HF_TOKEN (invalid credentials): set HF_TOKEN to a valid access token, or unset it")
		} else {
			fmt.Fprintf(&b, "access to %s denied", e.what())
			if !e.TokenSent {
				b.WriteString(": set HF_TOKEN to an access token that can read it")
			}
		}
	default:
		fmt.Fprintf(&b, "fetching %s failed", e.what())
	}
	fmt.Fprintf(&b, " (HTTP %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" && e.Message != invalidCredentials {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	fmt.Fprintf(&b, "; %s %s", e.Method, e.URL)
	if e.Attempts > 1 {
		fmt.Fprintf(&b, "; %d attempts", e.Attempts)
	}
	b.WriteString(")")
	return b.String()
}

// what names the thing the request was for.
func (e *HTTPError) what() string {
	switch {
	case e.Path != "":
		return fmt.Sprintf("%s from %s@%s", e.Path, e.Repo, e.Revision)
	case e.Revision != "":
		return fmt.Sprintf("%s@%s", e.Repo, e.Revision)
	}
	return e.Repo
}

// retryable reports whether a status is worth asking again for, as
// huggingface_hub's backoff does.
func retryable(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

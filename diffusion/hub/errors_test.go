package hub

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHTTPErrorMessages(t *testing.T) {
	base := HTTPError{Method: "GET", URL: "https://hf.example/org/m/resolve/abc/unet/x", Endpoint: "https://hf.example", Repo: "org/m", Revision: "main"}
	for _, c := range []struct {
		mod  func(e *HTTPError)
		kind error
		msg  string
	}{
		{func(e *HTTPError) { e.StatusCode, e.Code, e.TokenSent, e.Path = 403, "GatedRepo", true, "unet/x" }, ErrGated,
			"hub: org/m is a gated repository: the account of the token in HF_TOKEN has not been granted access; accept the conditions at https://hf.example/org/m while logged in to that account (HTTP 403 Forbidden; GET https://hf.example/org/m/resolve/abc/unet/x)"},
		{func(e *HTTPError) { e.StatusCode, e.Message, e.TokenSent = 401, invalidCredentials, true }, ErrAuth,
			"hub: the Hub rejected the token in HF_TOKEN (invalid credentials): set HF_TOKEN to a valid access token, or unset it (HTTP 401 Unauthorized; GET"},
		{func(e *HTTPError) { e.StatusCode, e.Path = 404, "unet/x" }, ErrEntryNotFound,
			`hub: file "unet/x" not found in org/m at revision main (HTTP 404 Not Found; GET`},
		{func(e *HTTPError) { e.StatusCode = 404 }, ErrRepoNotFound,
			`hub: repository org/m not found (or it has no revision "main"): check the name; if it is private, set HF_TOKEN`},
		{func(e *HTTPError) { e.StatusCode, e.Code, e.TokenSent = 404, "RepoNotFound", true }, ErrRepoNotFound,
			"hub: repository org/m not found: check the name; if it is private, the token in HF_TOKEN gives no access to it (HTTP 404"},
		{func(e *HTTPError) { e.StatusCode, e.Path = 403, "unet/x" }, ErrAuth,
			"hub: access to unet/x from org/m@main denied: set HF_TOKEN to an access token that can read it (HTTP 403 Forbidden;"},
		{func(e *HTTPError) { e.StatusCode, e.Message, e.Attempts, e.Path = 500, "boom", 6, "unet/x" }, nil,
			"hub: fetching unet/x from org/m@main failed (HTTP 500 Internal Server Error: boom; GET https://hf.example/org/m/resolve/abc/unet/x; 6 attempts)"},
	} {
		e := base
		c.mod(&e)
		require.Contains(t, e.Error(), c.msg)
		if c.kind != nil {
			require.ErrorIs(t, &e, c.kind)
		}
		for _, k := range []error{ErrGated, ErrAuth, ErrEntryNotFound, ErrRepoNotFound, ErrRevisionNotFound} {
			if k != c.kind {
				require.False(t, errors.Is(&e, k), "%s is not %v", e.Error(), k)
			}
		}
	}
}

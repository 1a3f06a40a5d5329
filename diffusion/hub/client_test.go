package hub

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseRepoID(t *testing.T) {
	for s, want := range map[string][2]string{
		"org/name":                         {"org/name", "main"},
		"stabilityai/sdxl-turbo@fp16":      {"stabilityai/sdxl-turbo", "fp16"},
		"runwayml/stable-diffusion-v1.5":   {"runwayml/stable-diffusion-v1.5", "main"},
		"a_b/c.d-e@refs/pr/12":             {"a_b/c.d-e", "refs/pr/12"},
		"org/name@0123456789abcdef0123":    {"org/name", "0123456789abcdef0123"},
		"CompVis/stable-diffusion-v1-4@v1": {"CompVis/stable-diffusion-v1-4", "v1"},
	} {
		repo, rev, err := ParseRepoID(s)
		require.NoError(t, err, s)
		require.Equal(t, want, [2]string{repo, rev}, s)
	}
	for _, s := range []string{"", "name", "org/", "/name", "org/name/x", "org/name@", "org/na me", "org/-name",
		"org/name.", "org--x/name", "org/a..b", "org/name.git", "./org/name", "org/name@../x", `org/name@a\b`,
		"C:/models/sd"} {
		_, _, err := ParseRepoID(s)
		require.Error(t, err, s)
	}
}

func TestIsRepoID(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	require.True(t, IsRepoID("org/model"))
	require.True(t, IsRepoID("org/model@main"))
	require.NoError(t, os.MkdirAll(filepath.Join("org", "model"), 0o755))
	require.False(t, IsRepoID("org/model"), "an existing local folder wins")
	require.False(t, IsRepoID(filepath.Join(dir, "org", "model")))
	require.False(t, IsRepoID("model.safetensors"))
	require.False(t, IsRepoID("./x/y"))
	require.False(t, IsRepoID("/abs/path"))
	require.False(t, IsRepoID(""))
}

func TestLocalPath(t *testing.T) {
	_, repo, c := fakeHub(t)
	local := t.TempDir()
	got, err := c.LocalPath(context.Background(), local, nil)
	require.NoError(t, err)
	require.Equal(t, local, got)
	got, err = c.LocalPath(context.Background(), "org/tiny@main", nil)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(c.CacheDir, "models--org--tiny", "snapshots", repo.Head("main")), got)
}

func TestClientFromEnv(t *testing.T) {
	home := t.TempDir()
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}

	c, err := clientFromEnv(env("HF_HOME", home))
	require.NoError(t, err)
	require.Equal(t, DefaultEndpoint, c.Endpoint)
	require.Equal(t, filepath.Join(home, "hub"), c.CacheDir)
	require.Empty(t, c.Token)
	require.False(t, c.Offline)

	c, err = clientFromEnv(env("HF_HOME", home, "HF_HUB_CACHE", "/x/cache", "HUGGINGFACE_HUB_CACHE", "/y",
		"HF_ENDPOINT", "http://127.0.0.1:9/", "HF_TOKEN", " hf_abc\n", "HF_HUB_OFFLINE", "yes"))
	require.NoError(t, err)
	require.Equal(t, "/x/cache", c.CacheDir)
	require.Equal(t, "http://127.0.0.1:9", c.Endpoint)
	require.Equal(t, "hf_abc", c.Token)
	require.True(t, c.Offline)

	c, err = clientFromEnv(env("XDG_CACHE_HOME", "/xdg", "HUGGINGFACE_HUB_CACHE", "$XDG_CACHE_HOME/legacy", "TRANSFORMERS_OFFLINE", "1", "HF_HUB_OFFLINE", "0"))
	require.NoError(t, err)
	require.Equal(t, "/xdg/legacy", c.CacheDir)
	require.False(t, c.Offline, "HF_HUB_OFFLINE wins over TRANSFORMERS_OFFLINE")

	// The token file `hf auth login` writes, and HF_TOKEN_PATH.
	require.NoError(t, os.WriteFile(filepath.Join(home, "token"), []byte("hf_file\n"), 0o600))
	c, err = clientFromEnv(env("HF_HOME", home))
	require.NoError(t, err)
	require.Equal(t, "hf_file", c.Token)
	other := filepath.Join(t.TempDir(), "tok")
	require.NoError(t, os.WriteFile(other, []byte("hf_other"), 0o600))
	c, err = clientFromEnv(env("HF_HOME", home, "HF_TOKEN_PATH", other))
	require.NoError(t, err)
	require.Equal(t, "hf_other", c.Token)
	c, err = clientFromEnv(env("HF_HOME", home, "HUGGING_FACE_HUB_TOKEN", "hf_legacy"))
	require.NoError(t, err)
	require.Equal(t, "hf_legacy", c.Token)

	_, err = clientFromEnv(env("HF_HOME", home, "HF_ENDPOINT", "huggingface.co"))
	require.ErrorContains(t, err, `HF_ENDPOINT="huggingface.co" is not an http(s) URL`)
}

func TestClientDefaults(t *testing.T) {
	var c Client
	require.Equal(t, DefaultEndpoint, c.endpoint())
	require.Equal(t, 8, c.concurrency())
	require.Equal(t, 5, c.maxRetries())
	require.Equal(t, 30*time.Second, c.timeout())
	c.MaxRetries = -1
	require.Equal(t, 0, c.maxRetries())

	require.Equal(t, time.Second, c.backoff(1, nil))
	require.Equal(t, 4*time.Second, c.backoff(3, nil))
	require.Equal(t, 8*time.Second, c.backoff(9, nil))
	resp := &http.Response{Header: http.Header{"Retry-After": {"20"}}}
	require.Equal(t, 20*time.Second, c.backoff(1, resp))
	resp.Header.Set("Retry-After", "3600")
	require.Equal(t, time.Minute, c.backoff(1, resp))
}

func TestNextPage(t *testing.T) {
	h := http.Header{"Link": {`<https://hub/api/models/a/b/tree/c?cursor=xyz>; rel="next", <https://hub/x>; rel="prev"`}}
	next, err := nextPage(h, "https://hub/api/models/a/b/tree/c")
	require.NoError(t, err)
	require.Equal(t, "https://hub/api/models/a/b/tree/c?cursor=xyz", next)
	h = http.Header{"Link": {`</relative?p=2>; rel=next`}}
	next, err = nextPage(h, "https://hub/api/x")
	require.NoError(t, err)
	require.Equal(t, "https://hub/relative?p=2", next)
	next, err = nextPage(http.Header{}, "https://hub/api/x")
	require.NoError(t, err)
	require.Empty(t, next)
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sdgo/sdgo/diffusion"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/sdgo/sdgo/serve"
	"github.com/sdgo/sdgo/tensor"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer safe for a command writing while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs `sd serve` in-process; cancelling ctx is SIGTERM. It
// returns the server's base URL and a channel with the exit status.
func startServe(t *testing.T, ctx context.Context, args ...string) (string, <-chan int, *syncBuffer) {
	t.Helper()
	var out syncBuffer
	exit := make(chan int, 1)
	go func() { exit <- run(ctx, append([]string{"serve"}, args...), &out, &out) }()
	re := regexp.MustCompile(`msg=listening addr=(\S+)`)
	var addr string
	require.Eventually(t, func() bool {
		m := re.FindStringSubmatch(out.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	}, 10*time.Second, 5*time.Millisecond, "no listening line in %s", out.String())
	return "http://" + addr, exit, &out
}

func request(t *testing.T, method, url, key, body string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, data
}

// `sd serve` on the tiny model: ready after loading, runs a job, sends
// heartbeats, takes its key from SD_API_KEY, and exits 0 on SIGTERM.
func TestServeCommand(t *testing.T) {
	t.Setenv("SD_API_KEY", "env-key")
	var mu sync.Mutex
	var beats []map[string]any
	orch := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var hb map[string]any
		if json.NewDecoder(r.Body).Decode(&hb) == nil && r.URL.Path == "/v1/worker-heartbeat" {
			mu.Lock()
			beats = append(beats, hb)
			mu.Unlock()
		}
	}))
	defer orch.Close()

	ctx, sigterm := context.WithCancel(context.Background())
	defer sigterm()
	base, exit, out := startServe(t, ctx, "--model", fixture.Path(t, "models/sd15"), "--addr", "127.0.0.1:0",
		"--orchestrator", orch.URL, "--heartbeat-interval", "50ms", "--worker-id", "w-test", "--max-steps", "10",
		"--preview-every", "1", "--queue", "2", "--max-body", "1MiB")

	code, _ := request(t, "GET", base+"/health", "", "")
	require.Equal(t, http.StatusOK, code)
	code, _ = request(t, "GET", base+"/ready", "", "")
	require.Equal(t, http.StatusUnauthorized, code, "the key comes from SD_API_KEY")
	require.Eventually(t, func() bool {
		code, _ := request(t, "GET", base+"/ready", "env-key", "")
		return code == http.StatusOK
	}, 30*time.Second, 10*time.Millisecond)

	code, data := request(t, "POST", base+"/v1/jobs", "env-key", `{"prompt": "a boat", "steps": 2, "seed": 3}`)
	require.Equal(t, http.StatusAccepted, code, "%s", data)
	var sub struct {
		StatusURL string `json:"status_url"`
	}
	require.NoError(t, json.Unmarshal(data, &sub))
	var st struct {
		Status string   `json:"status"`
		Images []string `json:"images"`
	}
	require.Eventually(t, func() bool {
		_, data := request(t, "GET", base+sub.StatusURL, "env-key", "")
		require.NoError(t, json.Unmarshal(data, &st))
		return st.Status != "queued" && st.Status != "running"
	}, 30*time.Second, 10*time.Millisecond)
	require.Equal(t, "completed", st.Status)
	code, img := request(t, "GET", base+st.Images[0], "env-key", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(img), "Model: sd15")

	code, data = request(t, "POST", base+"/v1/jobs", "env-key", `{"prompt": "x", "steps": 11}`)
	require.Equal(t, http.StatusBadRequest, code, "--max-steps: %s", data)

	mu.Lock()
	require.NotEmpty(t, beats)
	last := beats[len(beats)-1]
	mu.Unlock()
	require.Equal(t, "w-test", last["worker_id"])
	require.Equal(t, "sd15", last["model"])
	require.Equal(t, "cpu", last["device"])
	require.Equal(t, base, last["address"])
	require.Contains(t, []any{"idle", "busy"}, last["status"])

	sigterm()
	select {
	case status := <-exit:
		require.Equal(t, 0, status, out.String())
	case <-time.After(20 * time.Second):
		t.Fatal("sd serve did not exit")
	}
	require.Contains(t, out.String(), "msg=stopped")
	require.NotContains(t, out.String(), "a boat", "prompts are not logged without --log-prompts")
}

func TestServeFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--model", "m", "--device", "tpu"},
		{"--model", "m", "--device", "cuda", "--precision", "fp8"},
		{"--model", "m", "--queue", "0"},
		{"--model", "m", "--orchestrator", "ftp://x"},
		{"--model", "m", "--max-body", "lots"},
		{"--model", "m", "--max-width", "60"},
		{"--model", "m", "--preview-every", "-1"},
		{"--model", "m", "extra"},
	} {
		status, _, errOut := sd(t, append([]string{"serve"}, args...)...)
		require.Equal(t, 2, status, "%v: %s", args, errOut)
	}
	status, _, errOut := sd(t, "serve", "--model", "m", "--addr", "256.0.0.1:bad")
	require.Equal(t, 1, status, errOut)
	require.Contains(t, errOut, "listening")
}

// A model that does not load ends `sd serve` with status 1.
func TestServeModelMissing(t *testing.T) {
	status, _, errOut := sd(t, "serve", "--model", t.TempDir()+"/nothing-here", "--addr", "127.0.0.1:0")
	require.Equal(t, 1, status)
	require.Contains(t, errOut, "loading the model")
}

// closableCPU is a CPU backend that records being closed, as a device would.
type closableCPU struct {
	*tensor.CPU
	closed int
}

func (c *closableCPU) Close() error { c.closed++; return nil }

// Closing a served engine closes its pipelines and then every backend they ran
// on.
func TestDeviceEngineClosesBackends(t *testing.T) {
	a, b := &closableCPU{CPU: tensor.NewCPU()}, &closableCPU{CPU: tensor.NewCPU()}
	var pipes []*diffusion.Pipeline
	for _, be := range []*closableCPU{a, b} {
		p, err := diffusion.Load(context.Background(), fixture.Path(t, "models/sd15"), diffusion.Options{Backend: be})
		require.NoError(t, err)
		pipes = append(pipes, p)
	}
	eng, err := serve.NewPipelineEngine(serve.PipelineInfo(pipes[0], "sd15"), pipes...)
	require.NoError(t, err)
	de := &deviceEngine{eng, []tensor.Backend{a, b}}
	require.NoError(t, de.Close())
	require.Equal(t, 1, a.closed)
	require.Equal(t, 1, b.closed)
}

package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sdgo/sdgo/diffusion"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/sdgo/sdgo/tensor"
	"github.com/stretchr/testify/require"
)

// fakeEngine is an Engine with controllable latency: each step takes
// stepDelay (or waits for gate when set), honouring ctx between steps as the
// pipeline does.
type fakeEngine struct {
	info      Info
	stepDelay time.Duration
	gate      chan struct{} // when set, every step waits for a value (or a close)
	err       error         // returned instead of images when set

	mu      sync.Mutex
	calls   map[string]int // by prompt
	started chan string    // prompts, when a Generate begins (if set; never blocks)
}

func newFake(stepDelay time.Duration) *fakeEngine {
	return &fakeEngine{
		info:      Info{Model: "fake", Family: "sd1", SchedulerClass: "PNDMScheduler", Width: 64, Height: 64, Steps: 2, Guidance: 7.5},
		stepDelay: stepDelay, calls: map[string]int{}, started: make(chan string, 1024),
	}
}

func (f *fakeEngine) Info() Info { return f.info }

func (f *fakeEngine) Generate(ctx context.Context, req diffusion.Request) (*diffusion.Result, error) {
	f.mu.Lock()
	f.calls[req.Prompt]++
	f.mu.Unlock()
	select {
	case f.started <- req.Prompt:
	default:
	}
	if req.Generator == nil {
		return nil, context.Canceled
	}
	for step := 1; step <= req.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if f.gate != nil {
			select {
			case <-f.gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		} else if f.stepDelay > 0 {
			t := time.NewTimer(f.stepDelay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			}
		}
		if req.Progress != nil {
			lat, err := tensor.FromFloat32(tensor.NewCPU(), make([]float32, 4*req.Height/8*req.Width/8), 1, 4, req.Height/8, req.Width/8)
			if err != nil {
				return nil, err
			}
			req.Progress(diffusion.Progress{Step: step, Steps: req.Steps, Latents: lat})
			lat.Release()
		}
	}
	if f.err != nil {
		return nil, f.err
	}
	img := image.NewNRGBA(image.Rect(0, 0, req.Width, req.Height))
	return &diffusion.Result{Images: []*image.NRGBA{img}, Denoise: time.Millisecond}, nil
}

func (f *fakeEngine) callsFor(prompt string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[prompt]
}

// tinyEngine loads the tiny SD 1.5 fixture (64x64 images).
func tinyEngine(t testing.TB) Engine {
	t.Helper()
	p, err := diffusion.Load(context.Background(), fixture.Path(t, "models/sd15"), diffusion.Options{})
	require.NoError(t, err)
	info := PipelineInfo(p, "")
	info.Steps = 2
	e, err := NewPipelineEngine(info, p)
	require.NoError(t, err)
	return e
}

type testServer struct {
	*Server
	URL string
	hs  *httptest.Server
}

// startServer starts a Server over e (unless cfg.Load is set) behind an
// httptest server on 127.0.0.1 and waits until it is ready. It is shut down
// when the test ends.
func startServer(t testing.TB, cfg Config, e Engine) *testServer {
	t.Helper()
	if cfg.Load == nil {
		cfg.Load = func(context.Context) (Engine, error) { return e, nil }
	}
	s, err := New(cfg)
	require.NoError(t, err)
	s.Start(context.Background())
	hs := httptest.NewServer(s.Handler())
	ts := &testServer{Server: s, URL: hs.URL, hs: hs}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, s.Shutdown(ctx))
		hs.CloseClientConnections()
		hs.Close()
	})
	return ts
}

func (ts *testServer) waitReady(t testing.TB) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp, err := http.Get(ts.URL + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 5*time.Millisecond)
}

// call sends a request with a JSON body (a string is sent as is) and returns
// the status, the headers and the body.
func call(t testing.TB, method, url string, body any, header ...string) (int, http.Header, []byte) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		require.NoError(t, err)
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, r)
	require.NoError(t, err)
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, data
}

// decode unmarshals JSON into a map.
func decode(t testing.TB, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m), "%s", data)
	return m
}

// apiError checks an error answer and returns its error object.
func apiError(t testing.TB, status int, data []byte, wantStatus int, wantCode string) map[string]any {
	t.Helper()
	require.Equal(t, wantStatus, status, "%s", data)
	m := decode(t, data)
	e, ok := m["error"].(map[string]any)
	require.True(t, ok, "%s", data)
	require.Equal(t, wantCode, e["code"], "%s", data)
	require.NotEmpty(t, e["message"])
	require.Contains(t, e, "field")
	return e
}

// submit posts a job and returns its id.
func submit(t testing.TB, base string, body any) string {
	t.Helper()
	status, h, data := call(t, "POST", base+"/v1/jobs", body)
	require.Equal(t, http.StatusAccepted, status, "%s", data)
	m := decode(t, data)
	id := m["id"].(string)
	require.Equal(t, "/v1/jobs/"+id, m["status_url"])
	require.Equal(t, "/v1/jobs/"+id+"/events", m["events_url"])
	require.Equal(t, "/v1/jobs/"+id, h.Get("Location"))
	return id
}

// status fetches a job's status.
func status(t testing.TB, base, id string) JobStatus {
	t.Helper()
	code, _, data := call(t, "GET", base+"/v1/jobs/"+id, nil)
	require.Equal(t, http.StatusOK, code, "%s", data)
	var st JobStatus
	require.NoError(t, json.Unmarshal(data, &st))
	return st
}

// waitStatus waits until the job is in a final state and returns it.
func waitDone(t testing.TB, base, id string) JobStatus {
	t.Helper()
	var st JobStatus
	require.Eventually(t, func() bool {
		st = status(t, base, id)
		return st.Status == stateCompleted || st.Status == stateFailed || st.Status == stateCancelled
	}, 30*time.Second, 5*time.Millisecond)
	return st
}

type event struct {
	name string
	data map[string]any
}

// events reads a job's event stream to its end.
func events(t testing.TB, ctx context.Context, base, id string) []event {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/v1/jobs/"+id+"/events", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	var evs []event
	var cur event
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.data))
		case line == "" && cur.name != "":
			evs = append(evs, cur)
			cur = event{}
		}
	}
	return evs
}

func names(evs []event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.name)
	}
	return out
}

// pngOf encodes a w x h image with a left-right gradient.
func pngOf(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.NRGBA{uint8(255 * x / max(w-1, 1)), uint8(255 * y / max(h-1, 1)), 128, 255})
		}
	}
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

func b64png(t testing.TB, w, h int) string {
	return base64.StdEncoding.EncodeToString(pngOf(t, w, h))
}

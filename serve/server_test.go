package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// While the model loads: /health answers, /ready is 503, jobs are refused
// with 503 and Retry-After; then everything is ready.
func TestLoading(t *testing.T) {
	release := make(chan struct{})
	fe := newFake(0)
	ts := startServer(t, Config{Load: func(ctx context.Context) (Engine, error) {
		select {
		case <-release:
			return fe, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}}, nil)
	code, _, data := call(t, "GET", ts.URL+"/health", nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "alive", decode(t, data)["status"])
	code, h, data := call(t, "GET", ts.URL+"/ready", nil)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "loading", decode(t, data)["status"])
	require.NotEmpty(t, h.Get("Retry-After"))
	code, h, data = call(t, "POST", ts.URL+"/v1/jobs", `{"prompt": "x"}`)
	apiError(t, code, data, http.StatusServiceUnavailable, "loading")
	require.Equal(t, "5", h.Get("Retry-After"))
	code, _, data = call(t, "GET", ts.URL+"/sdapi/v1/sd-models", nil)
	apiError(t, code, data, http.StatusServiceUnavailable, "loading")

	close(release)
	ts.waitReady(t)
	code, _, data = call(t, "GET", ts.URL+"/ready", nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "idle", decode(t, data)["status"])
	id := submit(t, ts.URL, map[string]any{"prompt": "x"})
	require.Equal(t, stateCompleted, waitDone(t, ts.URL, id).Status)
}

// A model that fails to load: Serve returns the error, /ready says why.
func TestLoadFailure(t *testing.T) {
	s, err := New(Config{Load: func(context.Context) (Engine, error) { return nil, errors.New("no such model") }})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = s.Serve(ctx, ln)
	require.ErrorContains(t, err, "no such model")
	require.NoError(t, ctx.Err(), "Serve returned on the load failure, not the deadline")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/ready", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Equal(t, "failed", decode(t, rec.Body.Bytes())["status"])
}

// A full queue refuses jobs with 429 and Retry-After, and /ready says 503
// until it drains.
func TestQueueFull(t *testing.T) {
	fe := newFake(0)
	fe.gate = make(chan struct{})
	ts := startServer(t, Config{QueueSize: 2}, fe)
	ts.waitReady(t)
	first := submit(t, ts.URL, map[string]any{"prompt": "a", "steps": 1})
	<-fe.started
	ids := []string{first, submit(t, ts.URL, map[string]any{"prompt": "b", "steps": 1}), submit(t, ts.URL, map[string]any{"prompt": "c", "steps": 1})}
	for _, path := range []string{"/v1/jobs", "/v1/images/generations", "/sdapi/v1/txt2img"} {
		code, h, data := call(t, "POST", ts.URL+path, `{"prompt": "d"}`)
		apiError(t, code, data, http.StatusTooManyRequests, "queue_full")
		ra, err := strconv.Atoi(h.Get("Retry-After"))
		require.NoError(t, err)
		require.GreaterOrEqual(t, ra, 1)
	}
	code, _, data := call(t, "GET", ts.URL+"/ready", nil)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "busy", decode(t, data)["status"])
	close(fe.gate)
	for _, id := range ids {
		require.Equal(t, stateCompleted, waitDone(t, ts.URL, id).Status)
	}
	ts.waitReady(t)
	require.Zero(t, fe.callsFor("d"))
}

// Several jobs run at once with --concurrency.
func TestConcurrency(t *testing.T) {
	fe := newFake(0)
	fe.gate = make(chan struct{})
	ts := startServer(t, Config{Concurrency: 3}, fe)
	ts.waitReady(t)
	var ids []string
	for _, p := range []string{"a", "b", "c", "d"} {
		ids = append(ids, submit(t, ts.URL, map[string]any{"prompt": p, "steps": 1}))
	}
	for range 3 {
		select {
		case <-fe.started:
		case <-time.After(5 * time.Second):
			t.Fatal("three jobs should run at once")
		}
	}
	require.Equal(t, 1, status(t, ts.URL, ids[3]).QueuePosition)
	close(fe.gate)
	for _, id := range ids {
		require.Equal(t, stateCompleted, waitDone(t, ts.URL, id).Status)
	}
}

// With an API key every endpoint but /health wants it.
func TestAuth(t *testing.T) {
	ts := startServer(t, Config{APIKey: "s3cret"}, newFake(0))
	code, _, _ := call(t, "GET", ts.URL+"/health", nil)
	require.Equal(t, http.StatusOK, code)
	for _, c := range []struct{ method, path string }{
		{"GET", "/ready"}, {"GET", "/metrics"}, {"POST", "/v1/jobs"}, {"GET", "/v1/jobs/x"}, {"DELETE", "/v1/jobs/x"},
		{"GET", "/v1/jobs/x/events"}, {"POST", "/v1/images/generations"}, {"POST", "/sdapi/v1/txt2img"},
		{"GET", "/sdapi/v1/samplers"}, {"GET", "/sdapi/v1/progress"},
	} {
		for _, hdr := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "s3cret"}, {"Authorization", "Bearer s3cre"}} {
			code, h, data := call(t, c.method, ts.URL+c.path, nil, hdr...)
			apiError(t, code, data, http.StatusUnauthorized, "unauthorized")
			require.Contains(t, h.Get("WWW-Authenticate"), "Bearer")
		}
	}
	require.Eventually(t, func() bool {
		code, _, _ := call(t, "GET", ts.URL+"/ready", nil, "Authorization", "Bearer s3cret")
		return code == http.StatusOK
	}, 5*time.Second, 5*time.Millisecond)
	code, _, data := call(t, "POST", ts.URL+"/v1/jobs", `{"prompt": "x"}`, "Authorization", "Bearer s3cret")
	require.Equal(t, http.StatusAccepted, code, "%s", data)
}

// Unknown paths and methods answer JSON errors.
func TestNotFoundAndMethod(t *testing.T) {
	ts := startServer(t, Config{}, newFake(0))
	code, _, data := call(t, "GET", ts.URL+"/nope", nil)
	apiError(t, code, data, http.StatusNotFound, "not_found")
	code, h, data := call(t, "PUT", ts.URL+"/v1/jobs", `{}`)
	apiError(t, code, data, http.StatusMethodNotAllowed, "method_not_allowed")
	require.Contains(t, h.Get("Allow"), "POST")
}

var promLine = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?([0-9.e+\-]+|NaN|\+Inf|-Inf)$`)

// /metrics is valid Prometheus text with the job counts, histograms and
// memory.
func TestMetrics(t *testing.T) {
	fe := newFake(time.Millisecond)
	fe.info.Model = `odd"model\name`
	ts := startServer(t, Config{}, fe)
	ts.waitReady(t)
	for range 3 {
		waitDone(t, ts.URL, submit(t, ts.URL, map[string]any{"prompt": "x", "steps": 2}))
	}
	code, _, data := call(t, "POST", ts.URL+"/v1/jobs", `{"prompt": 1}`)
	require.Equal(t, http.StatusBadRequest, code, "%s", data)

	code, h, data := call(t, "GET", ts.URL+"/metrics", nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, h.Get("Content-Type"), "text/plain; version=0.0.4")
	samples := map[string]float64{}
	types := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			f := strings.Fields(rest)
			types[f[0]] = f[1]
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		require.Regexp(t, promLine, line)
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err)
		samples[line[:i]] = v
	}
	require.Equal(t, 3.0, samples[`sd_jobs_total{outcome="completed"}`])
	require.Equal(t, 0.0, samples[`sd_jobs_total{outcome="failed"}`])
	require.Equal(t, 1.0, samples[`sd_jobs_rejected_total{code="invalid"}`])
	require.Equal(t, 3.0, samples["sd_jobs_submitted_total"])
	require.Equal(t, 0.0, samples["sd_queue_depth"])
	require.Equal(t, 1.0, samples["sd_model_loaded"])
	require.Equal(t, 6.0, samples["sd_step_duration_seconds_count"])
	require.Equal(t, 6.0, samples[`sd_step_duration_seconds_bucket{le="+Inf"}`])
	require.Equal(t, 3.0, samples["sd_job_duration_seconds_count"])
	require.Greater(t, samples["sd_iterations_per_second"], 0.0)
	require.Greater(t, samples["sd_memory_heap_inuse_bytes"], 0.0)
	require.Greater(t, samples["sd_memory_sys_bytes"], 0.0)
	require.Equal(t, 1.0, samples[`sd_worker_info{model="odd\"model\\name",device="cpu",version="(devel)",status="idle"}`])
	require.Equal(t, 3.0, samples[`sd_http_requests_total{route="POST /v1/jobs",code="202"}`])
	require.Equal(t, "histogram", types["sd_step_duration_seconds"])
	require.Equal(t, "counter", types["sd_jobs_total"])
	require.Equal(t, "gauge", types["sd_queue_depth"])
	// Buckets are cumulative.
	prev := -1.0
	for _, le := range []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "+Inf"} {
		v, ok := samples[`sd_step_duration_seconds_bucket{le="`+le+`"}`]
		require.True(t, ok, le)
		require.GreaterOrEqual(t, v, prev)
		prev = v
	}
}

// orchestrator records heartbeats; it fails the first `fail` posts.
type orchestrator struct {
	mu    sync.Mutex
	beats []Heartbeat
	times []time.Time
	fail  int
}

func (o *orchestrator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != "POST" || r.URL.Path != "/v1/worker-heartbeat" || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "bad heartbeat", http.StatusBadRequest)
		return
	}
	var hb Heartbeat
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&hb); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.beats = append(o.beats, hb)
	o.times = append(o.times, time.Now())
	if o.fail > 0 {
		o.fail--
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (o *orchestrator) snapshot() ([]Heartbeat, []time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Heartbeat(nil), o.beats...), append([]time.Time(nil), o.times...)
}

func statuses(beats []Heartbeat) []string {
	var out []string
	for _, b := range beats {
		out = append(out, b.Status)
	}
	return out
}

// Heartbeats report loading, then idle (at once when the model is loaded),
// then busy with the queue depth; failed posts are retried sooner than the
// interval.
func TestHeartbeats(t *testing.T) {
	orch := &orchestrator{}
	orchSrv := httptest.NewServer(orch)
	defer orchSrv.Close()
	release := make(chan struct{})
	fe := newFake(0)
	fe.gate = make(chan struct{})
	const interval = 150 * time.Millisecond
	ts := startServer(t, Config{
		Orchestrator: orchSrv.URL + "/", HeartbeatInterval: interval, WorkerID: "w1", Address: "http://127.0.0.1:1234",
		Version: "v9", Device: "cpu", QueueSize: 4,
		Load: func(ctx context.Context) (Engine, error) {
			select {
			case <-release:
				return fe, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	}, nil)
	require.Eventually(t, func() bool { b, _ := orch.snapshot(); return len(b) >= 1 }, 5*time.Second, 5*time.Millisecond)
	beats, _ := orch.snapshot()
	require.Equal(t, Heartbeat{WorkerID: "w1", Device: "cpu", Address: "http://127.0.0.1:1234", Status: "loading", Version: "v9"}, beats[0])

	close(release)
	ts.waitReady(t)
	require.Eventually(t, func() bool { b, _ := orch.snapshot(); return b[len(b)-1].Status == "idle" }, 5*time.Second, 5*time.Millisecond)
	beats, _ = orch.snapshot()
	require.Equal(t, "fake", beats[len(beats)-1].Model)

	submit(t, ts.URL, map[string]any{"prompt": "a", "steps": 1})
	<-fe.started
	submit(t, ts.URL, map[string]any{"prompt": "b", "steps": 1})
	require.Eventually(t, func() bool {
		b, _ := orch.snapshot()
		last := b[len(b)-1]
		return last.Status == "busy" && last.QueueDepth == 1 && last.Running == 1
	}, 5*time.Second, 5*time.Millisecond)

	// Failures are retried with backoff, from a quarter of the interval.
	orch.mu.Lock()
	orch.fail = 2
	n := len(orch.beats)
	orch.mu.Unlock()
	require.Eventually(t, func() bool { b, _ := orch.snapshot(); return len(b) >= n+4 }, 5*time.Second, 5*time.Millisecond)
	_, times := orch.snapshot()
	firstRetry := times[n+1].Sub(times[n])
	secondRetry := times[n+2].Sub(times[n+1])
	require.Less(t, firstRetry, interval*3/4, "the first retry comes before the next beat: %v", firstRetry)
	require.Greater(t, secondRetry, firstRetry, "backoff grows: %v then %v", firstRetry, secondRetry)
	require.Greater(t, times[n+3].Sub(times[n+2]), interval*3/4, "after a success, the interval again")
	close(fe.gate)
}

// An orchestrator that never answers delays no generation.
func TestHeartbeatNeverBlocks(t *testing.T) {
	hang := make(chan struct{})
	orchSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer func() {
		close(hang)
		orchSrv.Close()
	}()
	ts := startServer(t, Config{Orchestrator: orchSrv.URL, HeartbeatInterval: 50 * time.Millisecond}, newFake(0))
	ts.waitReady(t)
	start := time.Now()
	for range 3 {
		require.Equal(t, stateCompleted, waitDone(t, ts.URL, submit(t, ts.URL, map[string]any{"prompt": "x", "steps": 2})).Status)
	}
	require.Less(t, time.Since(start), 3*time.Second)
}

// On shutdown (SIGTERM cancels Serve's context) the worker stops accepting,
// lets the running job finish, cancels the queued ones, and returns nil.
func TestDrain(t *testing.T) {
	fe := newFake(20 * time.Millisecond)
	s, err := New(Config{Load: func(context.Context) (Engine, error) { return fe, nil }, DrainTimeout: 10 * time.Second, QueueSize: 4})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	base := "http://" + ln.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	ts := &testServer{Server: s, URL: base}
	ts.waitReady(t)

	running := submit(t, base, map[string]any{"prompt": "running", "steps": 25})
	require.Equal(t, "running", <-fe.started)
	queued := submit(t, base, map[string]any{"prompt": "queued", "steps": 1})
	evc := make(chan []event, 1)
	go func() { evc <- events(t, context.Background(), base, running) }()
	syncDone := make(chan int, 1)
	go func() {
		code, _, _ := call(t, "POST", base+"/v1/images/generations", `{"prompt": "sync"}`)
		syncDone <- code
	}()
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.queue) == 2
	}, 5*time.Second, time.Millisecond)

	start := time.Now()
	stop()
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.draining
	}, 5*time.Second, time.Millisecond)
	select {
	case err := <-served:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	require.Greater(t, time.Since(start), 100*time.Millisecond, "the running job was waited for")
	evs := <-evc
	require.Equal(t, "completed", names(evs)[len(evs)-1], "the running job finished")
	require.Equal(t, http.StatusServiceUnavailable, <-syncDone, "the queued synchronous job was cancelled")
	s.mu.Lock()
	require.Equal(t, stateCancelled, s.jobs[queued].state)
	require.Equal(t, stateCompleted, s.jobs[running].state)
	s.mu.Unlock()
	require.Zero(t, fe.callsFor("queued"))
	_, err = http.Get(base + "/health")
	require.Error(t, err, "the listener is closed")

	// New jobs during the drain are refused.
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/v1/jobs", strings.NewReader(`{"prompt": "late"}`)))
	apiError(t, rec.Code, rec.Body.Bytes(), http.StatusServiceUnavailable, "shutting_down")
}

// A running job that outlasts --drain-timeout is cancelled.
func TestDrainTimeout(t *testing.T) {
	fe := newFake(20 * time.Millisecond)
	s, err := New(Config{Load: func(context.Context) (Engine, error) { return fe, nil }, DrainTimeout: 100 * time.Millisecond})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	base := "http://" + ln.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	(&testServer{Server: s, URL: base}).waitReady(t)
	id := submit(t, base, map[string]any{"prompt": "long", "steps": 150})
	<-fe.started
	start := time.Now()
	stop()
	select {
	case err := <-served:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	require.Less(t, time.Since(start), 2*time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	require.Equal(t, stateCancelled, s.jobs[id].state)
	require.Contains(t, s.jobs[id].err.Message, "shutting down")
}

package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// 300 requests from 24 concurrent clients over the three APIs against a
// fake engine (2 steps of 1 ms, two at a time, 8 waiting at most): every
// accepted job completes exactly once, every refusal is a 429 with
// Retry-After, and once the server is shut down the goroutines and the heap
// are back to where they were.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	const requests, clients = 300, 24
	runtime.GC()
	goroutines := runtime.NumGoroutine()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	fe := newFake(time.Millisecond)
	s, err := New(Config{Load: func(context.Context) (Engine, error) { return fe, nil }, QueueSize: 8, Concurrency: 2, PreviewEvery: 1})
	require.NoError(t, err)
	s.Start(context.Background())
	hs := httptest.NewServer(s.Handler())
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	(&testServer{Server: s, URL: hs.URL}).waitReady(t)

	type outcome struct {
		prompt   string
		accepted bool
		err      error
	}
	results := make(chan outcome, requests)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= requests {
					return
				}
				prompt := fmt.Sprintf("load-%d", i)
				accepted, err := loadRequest(client, hs.URL, i%3, prompt)
				results <- outcome{prompt, accepted, err}
				if !accepted {
					time.Sleep(5 * time.Millisecond) // back off a little, as a client told to retry would
				}
			}
		})
	}
	wg.Wait()
	close(results)

	accepted, rejected := 0, 0
	for r := range results {
		require.NoError(t, r.err, r.prompt)
		if r.accepted {
			accepted++
			require.Equal(t, 1, fe.callsFor(r.prompt), "%s ran once", r.prompt)
		} else {
			rejected++
			require.Zero(t, fe.callsFor(r.prompt), "%s was refused and never ran", r.prompt)
		}
	}
	t.Logf("%d accepted, %d refused with 429", accepted, rejected)
	require.Equal(t, requests, accepted+rejected)
	require.Greater(t, accepted, 0)
	s.metrics.mu.Lock()
	require.EqualValues(t, accepted, s.metrics.outcomes[stateCompleted])
	require.EqualValues(t, accepted, s.metrics.submittedTotal)
	require.EqualValues(t, rejected, s.metrics.rejected["queue_full"])
	s.metrics.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.Shutdown(ctx))
	hs.CloseClientConnections()
	hs.Close()
	tr.CloseIdleConnections()
	s, hs, fe = nil, nil, nil

	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= goroutines+2 }, 5*time.Second, 10*time.Millisecond,
		"goroutines: %d before, %d after", goroutines, runtime.NumGoroutine())
	var after runtime.MemStats
	require.Eventually(t, func() bool {
		runtime.GC()
		runtime.ReadMemStats(&after)
		return after.HeapInuse <= before.HeapInuse+16<<20
	}, 5*time.Second, 50*time.Millisecond, "heap in use: %d before, %d after", before.HeapInuse, after.HeapInuse)
}

// loadRequest sends one request of kind 0 (a job followed on its event
// stream), 1 (OpenAI) or 2 (A1111): accepted and completed, refused with 429
// and Retry-After, or an error.
func loadRequest(c *http.Client, base string, kind int, prompt string) (bool, error) {
	path, body := "/v1/jobs", `{"prompt": "`+prompt+`", "steps": 2}`
	switch kind {
	case 1:
		path, body = "/v1/images/generations", `{"prompt": "`+prompt+`", "size": "64x64", "response_format": "b64_json"}`
	case 2:
		path, body = "/sdapi/v1/txt2img", `{"prompt": "`+prompt+`", "steps": 2, "width": 64, "height": 64}`
	}
	resp, err := c.Post(base+path, "application/json", strings.NewReader(body))
	if err != nil {
		return false, err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return false, err
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(data), `"queue_full"`) {
			return false, fmt.Errorf("429 without Retry-After or code: %s", data)
		}
		return false, nil
	case kind == 0 && resp.StatusCode == http.StatusAccepted:
	case kind != 0 && resp.StatusCode == http.StatusOK:
		if !strings.Contains(string(data), `"iVBOR`) { // a base64 PNG
			return false, fmt.Errorf("no image in %.200s", data)
		}
		return true, nil
	default:
		return false, fmt.Errorf("status %d: %s", resp.StatusCode, data)
	}
	var sub Submitted
	if err := json.Unmarshal(data, &sub); err != nil {
		return false, err
	}
	resp, err = c.Get(base + sub.EventsURL)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var final []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if ev, ok := strings.CutPrefix(sc.Text(), "event: "); ok && (ev == "completed" || ev == "failed" || ev == "cancelled") {
			final = append(final, ev)
		}
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	if len(final) != 1 || final[0] != "completed" {
		return false, fmt.Errorf("job %s ended with %v", sub.ID, final)
	}
	return true, nil
}

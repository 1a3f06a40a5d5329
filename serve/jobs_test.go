package serve

import (
	"bytes"
	"context"
	"encoding/base64"
	"image/png"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A job on the tiny model from submission to images, with its event stream:
// queued/started, progress in order up to the total, previews, completed
// last; two images with seeds 42 and 43, each the image a job seeded with
// its seed makes alone.
func TestJobLifecycle(t *testing.T) {
	ts := startServer(t, Config{PreviewEvery: 1}, tinyEngine(t))
	ts.waitReady(t)

	id := submit(t, ts.URL, map[string]any{"prompt": "a red apple", "steps": 2, "seed": 42, "batch": 2, "guidance": 7.5, "scheduler": "euler"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evs := events(t, ctx, ts.URL, id)
	require.NotEmpty(t, evs)
	n := names(evs)
	require.Contains(t, []string{"queued", "started"}, n[0], "%v", n)
	require.Equal(t, "completed", n[len(n)-1], "%v", n)
	require.Contains(t, n, "started")
	require.Contains(t, n, "preview")
	last := 0
	for _, e := range evs {
		switch e.name {
		case "progress":
			step := int(e.data["step"].(float64))
			require.Greater(t, step, last, "progress must increase: %v", n)
			last = step
			require.EqualValues(t, 4, e.data["total"])
			require.Contains(t, e.data, "it_per_s")
			require.Contains(t, e.data, "eta_s")
			require.Contains(t, e.data, "percent")
		case "preview":
			img := e.data["image"].(string)
			raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(img, "data:image/png;base64,"))
			require.NoError(t, err)
			p, err := png.Decode(bytes.NewReader(raw))
			require.NoError(t, err)
			require.Equal(t, 8, p.Bounds().Dx(), "a preview is at latent resolution")
		}
	}
	require.Equal(t, 4, last, "the last progress event is the last step")
	done := evs[len(evs)-1].data
	require.Equal(t, []any{float64(42), float64(43)}, done["seeds"])
	require.Len(t, done["images"], 2)
	require.Contains(t, done["timings"], "denoise_ms")

	st := status(t, ts.URL, id)
	require.Equal(t, stateCompleted, st.Status)
	require.Equal(t, []uint64{42, 43}, st.Seeds)
	require.Equal(t, []string{"/v1/jobs/" + id + "/images/0.png", "/v1/jobs/" + id + "/images/1.png"}, st.Images)
	require.NotNil(t, st.StartedAt)
	require.NotNil(t, st.FinishedAt)
	require.NotNil(t, st.Timings)
	require.Zero(t, st.QueuePosition)
	require.Equal(t, 4, st.Progress.Step)

	code, h, second := call(t, "GET", ts.URL+st.Images[1], nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "image/png", h.Get("Content-Type"))
	img, err := png.Decode(bytes.NewReader(second))
	require.NoError(t, err)
	require.Equal(t, 64, img.Bounds().Dx())
	require.Equal(t, 64, img.Bounds().Dy())
	require.Contains(t, string(second), "Seed: 43, Size: 64x64", "the A1111 parameters chunk")

	// The second image is what seed 43 makes alone.
	alone := submit(t, ts.URL, map[string]any{"prompt": "a red apple", "steps": 2, "seed": 43, "guidance": 7.5, "scheduler": "euler"})
	require.Equal(t, stateCompleted, waitDone(t, ts.URL, alone).Status)
	_, _, single := call(t, "GET", ts.URL+"/v1/jobs/"+alone+"/images/0.png", nil)
	require.True(t, bytes.Equal(second, single), "the second image differs from seed 43's own")

	for _, bad := range []string{"2.png", "-1.png", "0.jpg", "x.png", "00000000000000000000000.png"} {
		code, _, data := call(t, "GET", ts.URL+"/v1/jobs/"+id+"/images/"+bad, nil)
		apiError(t, code, data, http.StatusNotFound, "not_found")
	}
	code, _, data := call(t, "GET", ts.URL+"/v1/jobs/nope", nil)
	apiError(t, code, data, http.StatusNotFound, "not_found")
}

// Several listeners see the same job through; one that joins after the end
// gets the current state at once.
func TestEventsManyListenersAndLate(t *testing.T) {
	fe := newFake(20 * time.Millisecond)
	ts := startServer(t, Config{}, fe)
	ts.waitReady(t)
	id := submit(t, ts.URL, map[string]any{"prompt": "p", "steps": 5})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	got := make([][]event, 3)
	for i := range got {
		wg.Go(func() { got[i] = events(t, ctx, ts.URL, id) })
	}
	wg.Wait()
	for _, evs := range got {
		n := names(evs)
		require.Equal(t, "completed", n[len(n)-1], "%v", n)
		require.Contains(t, n, "started")
	}
	late := events(t, ctx, ts.URL, id)
	require.Equal(t, []string{"started", "progress", "completed"}, names(late))
	require.EqualValues(t, 5, late[1].data["step"])
	require.EqualValues(t, 100, late[1].data["percent"])
}

// Queued jobs report their position; a queued job's stream starts with
// "queued" and follows it as the queue moves.
func TestQueuePositions(t *testing.T) {
	fe := newFake(0)
	fe.gate = make(chan struct{})
	ts := startServer(t, Config{QueueSize: 4}, fe)
	ts.waitReady(t)
	a := submit(t, ts.URL, map[string]any{"prompt": "a", "steps": 1})
	require.Equal(t, "a", <-fe.started)
	b := submit(t, ts.URL, map[string]any{"prompt": "b", "steps": 1})
	c := submit(t, ts.URL, map[string]any{"prompt": "c", "steps": 1})
	require.Equal(t, stateRunning, status(t, ts.URL, a).Status)
	require.Equal(t, 1, status(t, ts.URL, b).QueuePosition)
	require.Equal(t, 2, status(t, ts.URL, c).QueuePosition)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evc := make(chan []event, 1)
	go func() { evc <- events(t, ctx, ts.URL, c) }()
	time.Sleep(50 * time.Millisecond) // let the listener see position 2
	close(fe.gate)
	evs := <-evc
	n := names(evs)
	require.Equal(t, "queued", n[0], "%v", n)
	require.EqualValues(t, 2, evs[0].data["queue_position"])
	require.Equal(t, "completed", n[len(n)-1])
	for _, id := range []string{a, b, c} {
		require.Equal(t, stateCompleted, waitDone(t, ts.URL, id).Status)
	}
}

// DELETE cancels a queued job at once and a running one at its next step; a
// finished job cannot be cancelled.
func TestCancel(t *testing.T) {
	fe := newFake(20 * time.Millisecond)
	ts := startServer(t, Config{QueueSize: 4}, fe)
	ts.waitReady(t)
	running := submit(t, ts.URL, map[string]any{"prompt": "long", "steps": 150})
	require.Equal(t, "long", <-fe.started)
	queued := submit(t, ts.URL, map[string]any{"prompt": "queued", "steps": 1})

	code, _, data := call(t, "DELETE", ts.URL+"/v1/jobs/"+queued, nil)
	require.Equal(t, http.StatusOK, code, "%s", data)
	require.Equal(t, stateCancelled, decode(t, data)["status"])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.Equal(t, []string{"cancelled"}, names(events(t, ctx, ts.URL, queued)))

	start := time.Now()
	code, _, data = call(t, "DELETE", ts.URL+"/v1/jobs/"+running, nil)
	require.Equal(t, http.StatusAccepted, code, "%s", data)
	st := waitDone(t, ts.URL, running)
	require.Equal(t, stateCancelled, st.Status)
	require.Less(t, time.Since(start), 2*time.Second, "cancellation takes effect between steps")
	require.Equal(t, "cancelled", st.Error.Code)
	require.Empty(t, st.Images)
	require.Zero(t, fe.callsFor("queued"), "a cancelled queued job never runs")

	code, _, data = call(t, "DELETE", ts.URL+"/v1/jobs/"+running, nil)
	apiError(t, code, data, http.StatusConflict, "finished")
	code, _, data = call(t, "DELETE", ts.URL+"/v1/jobs/unknown", nil)
	apiError(t, code, data, http.StatusNotFound, "not_found")

	// The worker goes on.
	ok := submit(t, ts.URL, map[string]any{"prompt": "after", "steps": 1})
	require.Equal(t, stateCompleted, waitDone(t, ts.URL, ok).Status)
}

// A job that runs past --job-timeout fails with code timeout.
func TestJobTimeout(t *testing.T) {
	fe := newFake(50 * time.Millisecond)
	ts := startServer(t, Config{JobTimeout: 120 * time.Millisecond}, fe)
	ts.waitReady(t)
	id := submit(t, ts.URL, map[string]any{"prompt": "slow", "steps": 100})
	st := waitDone(t, ts.URL, id)
	require.Equal(t, stateFailed, st.Status)
	require.Equal(t, "timeout", st.Error.Code)
}

// An engine error fails the job with the error's message.
func TestGenerationError(t *testing.T) {
	fe := newFake(0)
	fe.err = context.DeadlineExceeded // any error that is not the job's own cancellation
	ts := startServer(t, Config{}, fe)
	ts.waitReady(t)
	id := submit(t, ts.URL, map[string]any{"prompt": "x", "steps": 1})
	st := waitDone(t, ts.URL, id)
	require.Equal(t, stateFailed, st.Status)
	require.Equal(t, "generation_failed", st.Error.Code)
	require.Contains(t, st.Error.Message, "deadline")
}

// Finished jobs are kept MaxFinished at most, and KeepFinished long.
func TestRetention(t *testing.T) {
	fe := newFake(0)
	ts := startServer(t, Config{MaxFinished: 2, KeepFinished: time.Hour}, fe)
	ts.waitReady(t)
	var ids []string
	for range 3 {
		id := submit(t, ts.URL, map[string]any{"prompt": "x", "steps": 1})
		waitDone(t, ts.URL, id)
		ids = append(ids, id)
	}
	code, _, data := call(t, "GET", ts.URL+"/v1/jobs/"+ids[0], nil)
	apiError(t, code, data, http.StatusNotFound, "not_found")
	status(t, ts.URL, ids[1])
	status(t, ts.URL, ids[2])

	ts2 := startServer(t, Config{KeepFinished: 50 * time.Millisecond}, fe)
	ts2.waitReady(t)
	id := submit(t, ts2.URL, map[string]any{"prompt": "x", "steps": 1})
	waitDone(t, ts2.URL, id)
	require.Eventually(t, func() bool {
		ts2.mu.Lock()
		defer ts2.mu.Unlock()
		return len(ts2.jobs) == 0 // the sweeper drops it without any request
	}, 5*time.Second, 10*time.Millisecond)
	code, _, data = call(t, "GET", ts2.URL+"/v1/jobs/"+id, nil)
	apiError(t, code, data, http.StatusNotFound, "not_found")
}

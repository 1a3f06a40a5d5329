package serve

import (
	"context"
	"errors"
	"fmt"
	"github.com/sdgo/sdgo/internal/pngtext"
	"math"
	"net/http"
	"runtime/debug"
	"slices"
	"time"

	"github.com/sdgo/sdgo/diffusion"
)

// admitLocked says why a job cannot be queued now, or nil. Server.mu must be held.
func (s *Server) admitLocked() *APIError {
	switch {
	case s.draining:
		return &APIError{Status: http.StatusServiceUnavailable, Code: "shutting_down", Message: "the worker is shutting down"}
	case s.loadErr != nil:
		return &APIError{Status: http.StatusServiceUnavailable, Code: "load_failed", Message: "the model failed to load"}
	case s.engine == nil:
		return &APIError{Status: http.StatusServiceUnavailable, Code: "loading", Message: "the model is loading", RetryAfter: 5}
	case len(s.queue) >= s.cfg.QueueSize:
		return &APIError{Status: http.StatusTooManyRequests, Code: "queue_full",
			Message: fmt.Sprintf("the queue is full (%d jobs waiting)", len(s.queue)), RetryAfter: s.retryAfterLocked()}
	}
	return nil
}

// retryAfterLocked estimates when a queue slot frees, in seconds.
func (s *Server) retryAfterLocked() int {
	avg := s.avgJob
	if avg == 0 {
		avg = 5 * time.Second
	}
	// A slot frees when the first queued job starts: when a running job ends.
	sec := int(math.Ceil(avg.Seconds() / float64(s.cfg.Concurrency)))
	return min(max(sec, 1), 300)
}

// admission checks, before any decoding, whether a job could be queued now.
func (s *Server) admission() *APIError {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.admitLocked()
}

// infoNow returns the model's Info, and whether it is loaded.
func (s *Server) infoNow() (Info, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info, s.engine != nil
}

// submit queues a validated job.
func (s *Server) submit(api string, spec *jobSpec) (*job, *APIError) {
	if err := s.resolveLoRAs(spec); err != nil {
		s.metrics.reject("invalid")
		return nil, err
	}
	s.mu.Lock()
	if err := s.admitLocked(); err != nil {
		s.mu.Unlock()
		s.metrics.reject(err.Code)
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(s.baseCtx)
	j := &job{
		id: newJobID(), api: api, spec: spec, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		created: time.Now(), state: stateQueued, changed: make(chan struct{}),
	}
	s.jobs[j.id] = j
	s.queue = append(s.queue, j)
	position := len(s.queue)
	s.wakeLocked()
	s.mu.Unlock()
	s.metrics.submitted()
	attrs := []any{"id", j.id, "api", api, "width", spec.req.Width, "height", spec.req.Height,
		"steps", spec.req.Steps, "images", spec.images, "queue_position", position}
	if s.cfg.LogPrompts {
		attrs = append(attrs, "prompt", spec.req.Prompt)
	}
	s.log.Info("job queued", attrs...)
	return j, nil
}

// lookup finds a job that is still kept.
func (s *Server) lookup(id string) (*job, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evictLocked(time.Now())
	j, ok := s.jobs[id]
	return j, ok
}

// queuePositionLocked is 1 for the next job to run, 0 when not queued.
func (s *Server) queuePositionLocked(j *job) int {
	return slices.Index(s.queue, j) + 1
}

// cancel cancels a queued or running job; it reports the job's state before.
func (s *Server) cancel(j *job, cause error) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	state := j.state
	switch state {
	case stateQueued:
		s.queue = slices.DeleteFunc(s.queue, func(q *job) bool { return q == j })
		s.finishLocked(j, stateCancelled, cancelError(cause))
		s.notifyQueuedLocked()
		s.wakeLocked()
	case stateRunning:
		j.cancel(cause) // the runner finishes it at the next step
	}
	return state
}

func cancelError(cause error) *APIError {
	return &APIError{Status: http.StatusServiceUnavailable, Code: "cancelled", Message: "the job was cancelled: " + cause.Error()}
}

// notifyQueuedLocked wakes the listeners of queued jobs (their positions moved).
func (s *Server) notifyQueuedLocked() {
	for _, q := range s.queue {
		q.notifyLocked()
	}
}

// finishLocked puts j in a final state. Server.mu must be held.
func (s *Server) finishLocked(j *job, state string, err *APIError) {
	if j.terminal() {
		return
	}
	now := time.Now()
	ran := j.state == stateRunning
	j.state, j.err, j.finished = state, err, now
	close(j.done)
	j.cancel(nil)
	j.notifyLocked()
	s.finished = append(s.finished, j)
	s.metrics.finished(state)
	if ran && state == stateCompleted {
		d := now.Sub(j.started)
		s.metrics.jobDone(d, j.rate)
		if s.avgJob == 0 {
			s.avgJob = d
		} else {
			s.avgJob = (4*s.avgJob + d) / 5
		}
	}
	s.evictLocked(now)
}

// evictLocked drops the finished jobs past their retention: older than
// KeepFinished, or beyond the MaxFinished newest.
func (s *Server) evictLocked(now time.Time) {
	n := 0
	for n < len(s.finished) {
		j := s.finished[n]
		if len(s.finished)-n <= s.cfg.MaxFinished && now.Sub(j.finished) < s.cfg.KeepFinished {
			break
		}
		delete(s.jobs, j.id)
		n++
	}
	if n > 0 {
		clear(s.finished[:n])
		s.finished = s.finished[n:]
	}
}

// sweep evicts expired jobs now and then, so that memory is returned without traffic.
func (s *Server) sweep() {
	defer s.wg.Done()
	every := min(max(s.cfg.KeepFinished/4, 10*time.Millisecond), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.baseCtx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			s.evictLocked(now)
			s.mu.Unlock()
		}
	}
}

// worker runs queued jobs one after the other until the server stops.
func (s *Server) worker() {
	defer s.wg.Done()
	for {
		j, e := s.next()
		if j == nil {
			return
		}
		s.run(j, e)
	}
}

// next takes the first queued job, waiting for one and for the model.
func (s *Server) next() (*job, Engine) {
	for {
		s.mu.Lock()
		if s.baseCtx.Err() != nil {
			s.mu.Unlock()
			return nil, nil
		}
		if s.engine != nil && len(s.queue) > 0 {
			j := s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			now := time.Now()
			j.state, j.started, j.lastStep = stateRunning, now, now
			s.running++
			s.metrics.waited(now.Sub(j.created))
			j.notifyLocked()
			s.notifyQueuedLocked()
			s.wakeLocked()
			e := s.engine
			s.mu.Unlock()
			return j, e
		}
		ch := s.wake
		s.mu.Unlock()
		select {
		case <-ch:
		case <-s.baseCtx.Done():
			return nil, nil
		}
	}
}

// run runs a job to its end.
func (s *Server) run(j *job, e Engine) {
	ctx, cancel := context.WithTimeoutCause(j.ctx, s.cfg.JobTimeout, errJobTimeout)
	defer cancel()
	attrs := []any{"id", j.id, "api", j.api}
	s.log.Info("job started", attrs...)
	err := s.generate(ctx, j, e)

	state, apiErr := stateCompleted, (*APIError)(nil)
	if err != nil {
		cause := context.Cause(ctx)
		switch {
		case ctx.Err() != nil && errors.Is(cause, errJobTimeout):
			state, apiErr = stateFailed, &APIError{Status: http.StatusGatewayTimeout, Code: "timeout",
				Message: fmt.Sprintf("the job ran past its time limit of %s", s.cfg.JobTimeout)}
		case ctx.Err() != nil:
			state, apiErr = stateCancelled, cancelError(cause)
		default:
			state, apiErr = stateFailed, &APIError{Status: http.StatusInternalServerError, Code: "generation_failed", Message: err.Error()}
		}
	}
	s.mu.Lock()
	s.running--
	s.finishLocked(j, state, apiErr)
	total := j.finished.Sub(j.started)
	s.wakeLocked()
	s.mu.Unlock()
	attrs = append(attrs, "status", state, "ms", total.Milliseconds())
	if apiErr != nil {
		attrs = append(attrs, "err", apiErr.Message)
	}
	s.log.Info("job finished", attrs...)
}

// generate makes the job's images, one generation per image (seed, seed+1, ...).
func (s *Server) generate(ctx context.Context, j *job, e Engine) (err error) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("generation panic", "id", j.id, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			err = fmt.Errorf("internal error: %v", v)
		}
	}()
	sp := j.spec
	family := e.Info().Family
	for i := range sp.images {
		gen, err := diffusion.NewGenerator(sp.rng, sp.seed+uint64(i))
		if err != nil {
			return err
		}
		req := sp.req
		req.Generator, req.Batch = gen, 1
		req.Progress = func(p diffusion.Progress) { s.progress(j, i, p, family) }
		res, err := e.Generate(ctx, req)
		if err != nil {
			return err
		}
		if len(res.Images) == 0 {
			return errors.New("the engine returned no image")
		}
		data, err := pngtext.Encode(res.Images[0], [][2]string{{"parameters", sp.infotext(i)}})
		if err != nil {
			return err
		}
		s.mu.Lock()
		j.images = append(j.images, data)
		j.encode += res.Encode
		j.denoise += res.Denoise
		j.decode += res.Decode
		s.mu.Unlock()
	}
	return nil
}

// progress records a finished step of image i.
func (s *Server) progress(j *job, i int, p diffusion.Progress, family string) {
	now := time.Now()
	var preview []byte
	if every := s.cfg.PreviewEvery; every > 0 && p.Latents != nil && (p.Step%every == 0) {
		var err error
		if preview, err = previewPNG(p.Latents, family); err != nil {
			s.log.Warn("preview", "id", j.id, "err", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metrics.stepDone(now.Sub(j.lastStep))
	j.lastStep = now
	j.step, j.total = i*p.Steps+p.Step, j.spec.images*p.Steps
	if el := now.Sub(j.started).Seconds(); el > 0 {
		j.rate = float64(j.step) / el
	}
	j.progressSeq++
	if preview != nil {
		j.preview, j.previewStep = preview, j.step
		j.previewSeq++
	}
	j.notifyLocked()
}

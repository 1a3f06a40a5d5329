package serve

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// sseKeepAlive is how often an idle event stream gets a comment line, so that
// proxies keep it open.
const sseKeepAlive = 15 * time.Second

// parser decodes and validates a request body into a job.
type parser func(data []byte, info Info, lim Limits) (*jobSpec, *APIError)

// accept reads, validates and queues a job. Requests are refused before their
// body is read when no job could be queued; at most cap(s.decoding) bodies
// are read and decoded at once, which bounds the memory requests take.
func (s *Server) accept(w http.ResponseWriter, r *http.Request, api string, parse parser) (*job, *APIError) {
	if err := s.admission(); err != nil {
		s.metrics.reject(err.Code)
		return nil, err
	}
	select {
	case s.decoding <- struct{}{}:
	case <-r.Context().Done():
		return nil, &APIError{Status: http.StatusServiceUnavailable, Code: "cancelled", Message: "the client went away"}
	}
	defer func() { <-s.decoding }()
	info, _ := s.infoNow()
	data, err := readBody(w, r, s.cfg.MaxBody)
	if err == nil {
		var spec *jobSpec
		if spec, err = parse(data, info, s.cfg.Limits); err == nil {
			return s.submit(api, spec)
		}
	}
	s.metrics.reject("invalid")
	return nil, err
}

func parseJob(data []byte, info Info, lim Limits) (*jobSpec, *APIError) {
	var jr JobRequest
	if err := decodeJSON(data, &jr); err != nil {
		return nil, err
	}
	return validate(fromJobRequest(&jr), info, lim)
}

// Submitted is the answer of POST /v1/jobs (202 Accepted).
type Submitted struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	StatusURL string `json:"status_url"`
	EventsURL string `json:"events_url"`
}

func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request) {
	j, err := s.accept(w, r, "jobs", parseJob)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Location", j.statusURL())
	writeJSON(w, http.StatusAccepted, Submitted{ID: j.id, Status: stateQueued, StatusURL: j.statusURL(), EventsURL: j.eventsURL()})
}

func (s *Server) jobFor(w http.ResponseWriter, r *http.Request) (*job, bool) {
	j, ok := s.lookup(r.PathValue("id"))
	if !ok {
		writeError(w, &APIError{Status: http.StatusNotFound, Code: "not_found", Field: "id", Message: "no such job (finished jobs are kept for a limited time)"})
	}
	return j, ok
}

// statusLocked describes j; Server.mu must be held.
func (s *Server) statusLocked(j *job) JobStatus {
	st := JobStatus{ID: j.id, Status: j.state, QueuePosition: s.queuePositionLocked(j), CreatedAt: j.created,
		Progress: j.progressLocked(), Timings: j.timingsLocked(), Error: j.err, StatusURL: j.statusURL(), EventsURL: j.eventsURL()}
	if !j.started.IsZero() {
		t := j.started
		st.StartedAt = &t
	}
	if !j.finished.IsZero() {
		t := j.finished
		st.FinishedAt = &t
	}
	if j.state == stateCompleted {
		for i := range j.images {
			st.Images = append(st.Images, j.imageURL(i))
		}
		st.Seeds = j.spec.seeds()
	}
	return st
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	j, ok := s.jobFor(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	st := s.statusLocked(j)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, st)
}

// handleCancel cancels a job: a queued one at once (200), a running one at
// its next step (202). A finished job answers 409.
func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) {
	j, ok := s.jobFor(w, r)
	if !ok {
		return
	}
	before := s.cancel(j, errCancelRequested)
	s.mu.Lock()
	st := s.statusLocked(j)
	s.mu.Unlock()
	switch before {
	case stateQueued:
		writeJSON(w, http.StatusOK, st)
	case stateRunning:
		writeJSON(w, http.StatusAccepted, st)
	default:
		writeError(w, &APIError{Status: http.StatusConflict, Code: "finished", Message: "the job has already finished: " + before})
	}
}

func (s *Server) handleImage(w http.ResponseWriter, r *http.Request) {
	j, ok := s.jobFor(w, r)
	if !ok {
		return
	}
	name, isPNG := strings.CutSuffix(r.PathValue("file"), ".png")
	n, err := strconv.Atoi(name)
	s.mu.Lock()
	var data []byte
	if isPNG && err == nil && strconv.Itoa(n) == name && n >= 0 && n < len(j.images) && j.state == stateCompleted {
		data = j.images[n]
	}
	s.mu.Unlock()
	if data == nil {
		writeError(w, &APIError{Status: http.StatusNotFound, Code: "not_found", Field: "n", Message: "no such image: the job's images are 0.png to N-1.png once it has completed"})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/png")
	h.Set("Content-Length", strconv.Itoa(len(data)))
	h.Set("Cache-Control", "private, max-age=3600, immutable")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	w.Write(data)
}

// sseState is what one listener has been sent.
type sseState struct {
	position                int
	queuedSent, startedSent bool
	progressSeq, previewSeq int
}

type sseEvent struct {
	name string
	data any
}

// eventsLocked returns the events that bring a listener from st to j's
// current state, and whether the job is over. Progress and previews coalesce:
// a slow listener gets the latest only. Server.mu must be held.
func (s *Server) eventsLocked(j *job, st *sseState) ([]sseEvent, bool) {
	var evs []sseEvent
	if j.state == stateQueued {
		if pos := s.queuePositionLocked(j); !st.queuedSent || pos != st.position {
			evs = append(evs, sseEvent{"queued", map[string]any{"id": j.id, "queue_position": pos, "queue_depth": len(s.queue)}})
			st.queuedSent, st.position = true, pos
		}
	}
	if !j.started.IsZero() && !st.startedSent {
		evs = append(evs, sseEvent{"started", map[string]any{"id": j.id, "started_at": j.started, "queued_ms": j.started.Sub(j.created).Milliseconds()}})
		st.startedSent = true
	}
	if j.progressSeq > st.progressSeq {
		if p := j.progressLocked(); p != nil {
			evs = append(evs, sseEvent{"progress", p})
		}
		st.progressSeq = j.progressSeq
	}
	if j.previewSeq > st.previewSeq {
		evs = append(evs, sseEvent{"preview", map[string]any{"step": j.previewStep, "total": j.total, "image": "data:image/png;base64," + b64(j.preview)}})
		st.previewSeq = j.previewSeq
	}
	switch j.state {
	case stateCompleted:
		st := s.statusLocked(j)
		evs = append(evs, sseEvent{"completed", map[string]any{"id": j.id, "images": st.Images, "seeds": st.Seeds, "timings": st.Timings}})
	case stateFailed:
		evs = append(evs, sseEvent{"failed", map[string]any{"id": j.id, "error": j.err}})
	case stateCancelled:
		evs = append(evs, sseEvent{"cancelled", map[string]any{"id": j.id, "error": j.err}})
	default:
		return evs, false
	}
	return evs, true
}

// handleEvents streams a job's events (Server-Sent Events) until it ends. A
// listener that joins late gets the current state first.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	j, ok := s.jobFor(w, r)
	if !ok {
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	keep := time.NewTicker(sseKeepAlive)
	defer keep.Stop()
	var st sseState
	id := 0
	for {
		s.mu.Lock()
		evs, over := s.eventsLocked(j, &st)
		changed := j.changed
		s.mu.Unlock()
		for _, ev := range evs {
			data, err := json.Marshal(ev.data)
			if err != nil {
				s.log.Error("event encoding", "id", j.id, "err", err)
				return
			}
			id++
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", id, ev.name, data); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil || over {
			return
		}
		select {
		case <-changed:
		case <-keep.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-s.baseCtx.Done():
			return
		}
	}
}

// wait waits for a synchronous endpoint's job; a client that goes away
// cancels it.
func (s *Server) wait(r *http.Request, j *job) bool {
	select {
	case <-j.done:
		return true
	case <-r.Context().Done():
		s.cancel(j, errClientGone)
		return false
	}
}

// result returns a finished job's images and error.
func (s *Server) result(j *job) ([][]byte, *APIError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j.state != stateCompleted {
		return nil, j.err
	}
	return j.images, nil
}

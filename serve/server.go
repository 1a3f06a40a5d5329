// Package serve is sdgo's HTTP worker: it turns one loaded model into a
// service that runs generation jobs from a bounded queue, streams their
// progress as Server-Sent Events, and speaks the common subsets of OpenAI's
// images API and AUTOMATIC1111's API, with health, readiness, Prometheus
// metrics and heartbeats to an orchestrator. It is built on net/http alone.
//
// The server runs whatever Engine Config.Load returns: a PipelineEngine over
// diffusion pipelines in production, anything with the same two methods in
// tests. README.md in this folder describes the HTTP API.
package serve

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// stopGrace bounds how long Shutdown waits for cancelled jobs and the
// background goroutines to stop.
const stopGrace = 30 * time.Second

// Server is the HTTP worker. Create it with New, serve its Handler (or call
// Serve), start it with Start and stop it with Shutdown.
type Server struct {
	cfg     Config
	log     *slog.Logger
	handler http.Handler
	metrics *metrics
	keyHash [32]byte

	baseCtx   context.Context // parent of every job; cancelled by hardStop
	hardStop  context.CancelFunc
	wg        sync.WaitGroup
	startOnce sync.Once
	beatNow   chan struct{}
	decoding  chan struct{} // bounds the requests read and decoded at once
	loras     loraCache

	mu         sync.Mutex
	stopStart  func() bool // undoes Start's context.AfterFunc
	engine     Engine
	info       Info
	loadErr    error
	loadFailed chan struct{}
	draining   bool
	jobs       map[string]*job
	queue      []*job
	running    int
	finished   []*job        // in finishing order
	wake       chan struct{} // closed and replaced when the queue, the engine or running changes
	avgJob     time.Duration // moving average of job run times, for Retry-After
}

// New returns a server for cfg; it starts nothing.
func New(cfg Config) (*Server, error) {
	if cfg.Load == nil {
		return nil, errors.New("serve: Config.Load is nil")
	}
	if cfg.Orchestrator != "" {
		u, err := url.Parse(cfg.Orchestrator)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("serve: orchestrator URL %q: want http(s)://host[:port][/path]", cfg.Orchestrator)
		}
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg: cfg, log: cfg.Logger, metrics: newMetrics(),
		beatNow: make(chan struct{}, 1), decoding: make(chan struct{}, 4),
		loadFailed: make(chan struct{}), jobs: map[string]*job{}, wake: make(chan struct{}),
	}
	if cfg.APIKey != "" {
		s.keyHash = sha256.Sum256([]byte(cfg.APIKey))
	}
	s.baseCtx, s.hardStop = context.WithCancel(context.Background())
	s.handler = s.routes()
	return s, nil
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Start loads the model in the background and starts the job runners, the
// retention sweeper and, with an orchestrator, the heartbeats. Cancelling ctx
// stops everything at once, running jobs included; Shutdown stops gracefully.
func (s *Server) Start(ctx context.Context) {
	s.startOnce.Do(func() {
		s.mu.Lock()
		s.stopStart = context.AfterFunc(ctx, s.hardStop)
		s.mu.Unlock()
		s.wg.Add(2 + s.cfg.Concurrency)
		go s.load()
		go s.sweep()
		for range s.cfg.Concurrency {
			go s.worker()
		}
		if s.cfg.Orchestrator != "" {
			s.wg.Add(1)
			go s.heartbeats()
		}
	})
}

// LoadFailed is closed when the model failed to load; Err then says why.
func (s *Server) LoadFailed() <-chan struct{} { return s.loadFailed }

// Err returns the model's load error, if loading failed.
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loadErr
}

func (s *Server) load() {
	defer s.wg.Done()
	start := time.Now()
	s.log.Info("loading the model")
	e, err := s.cfg.Load(s.baseCtx)
	if err == nil && e == nil {
		err = errors.New("serve: Config.Load returned no engine")
	}
	if err != nil {
		s.mu.Lock()
		s.loadErr = fmt.Errorf("serve: loading the model: %w", err)
		s.mu.Unlock()
		s.log.Error("loading the model failed", "err", err)
		close(s.loadFailed)
		return
	}
	if s.baseCtx.Err() != nil {
		closeEngine(e, s.log)
		return
	}
	d := time.Since(start)
	s.metrics.setLoad(d)
	s.mu.Lock()
	s.engine, s.info = e, e.Info()
	s.wakeLocked()
	s.mu.Unlock()
	s.log.Info("model loaded", "model", s.info.Model, "family", s.info.Family, "seconds", d.Seconds())
	s.kickHeartbeat()
}

func closeEngine(e Engine, log *slog.Logger) {
	if c, ok := e.(io.Closer); ok {
		if err := c.Close(); err != nil {
			log.Error("closing the engine", "err", err)
		}
	}
}

// wakeLocked wakes the runners and the waiters on the server state.
func (s *Server) wakeLocked() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// Shutdown stops the server gracefully: new jobs are refused, queued jobs are
// cancelled, and running jobs may finish until ctx is done, when they are
// cancelled too (they stop at their next step). It then stops the background
// goroutines and closes the engine. It does not close HTTP connections: see
// Serve, or shut the http.Server down alongside.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	queued := s.queue
	s.queue = nil
	for _, j := range queued {
		s.finishLocked(j, stateCancelled, cancelError(errShutdown))
	}
	running := s.running
	s.wakeLocked()
	s.mu.Unlock()
	if len(queued) > 0 || running > 0 {
		s.log.Info("draining", "running", running, "cancelled", len(queued))
	}

	if !s.waitIdle(ctx) {
		s.mu.Lock()
		for _, j := range s.jobs {
			if j.state == stateRunning {
				j.cancel(errShutdown)
			}
		}
		s.mu.Unlock()
		s.log.Warn("drain timeout: cancelling the running jobs")
	}
	s.hardStop()
	s.mu.Lock()
	if s.stopStart != nil {
		s.stopStart()
	}
	s.mu.Unlock()
	stopped := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(stopGrace):
		return errors.New("serve: the job runners did not stop in time")
	}
	s.mu.Lock()
	e := s.engine
	s.engine = nil
	s.mu.Unlock()
	if e != nil {
		closeEngine(e, s.log)
	}
	return nil
}

// waitIdle waits until no job runs, or ctx is done (then it returns false).
func (s *Server) waitIdle(ctx context.Context) bool {
	for {
		s.mu.Lock()
		n, ch := s.running, s.wake
		s.mu.Unlock()
		if n == 0 {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// Serve serves HTTP on ln until ctx is cancelled (SIGTERM, say), then stops
// accepting connections and jobs, lets running jobs finish for
// Config.DrainTimeout, cancels the rest, and returns nil once the open
// requests are answered. It returns an error if the model fails to load or
// the listener fails.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.Start(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down", "drain_timeout", s.cfg.DrainTimeout.String())
	case <-s.loadFailed:
		err = s.Err()
	case err = <-served:
		err = fmt.Errorf("serve: %w", err)
	}
	// Stop accepting; open requests (event streams, synchronous endpoints
	// waiting on their jobs) are answered as their jobs end.
	httpDone := make(chan error, 1)
	go func() {
		c, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout+stopGrace)
		defer cancel()
		httpDone <- hs.Shutdown(c)
	}()
	drain, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	if serr := s.Shutdown(drain); serr != nil && err == nil {
		err = serr
	}
	if herr := <-httpDone; herr != nil {
		hs.Close()
		if err == nil {
			err = fmt.Errorf("serve: closing connections: %w", herr)
		}
	}
	s.log.Info("stopped")
	return err
}

// authorized reports whether r carries the API key, compared in constant time.
func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.APIKey == "" {
		return true
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	h := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(h[:], s.keyHash[:]) == 1
}

// routes builds the handler: routing, authentication, access logs, metrics.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", s.handleHealth)
	mux.HandleFunc("GET /ready", s.handleReady)
	mux.HandleFunc("GET /metrics", s.handleMetrics)

	mux.HandleFunc("POST /v1/jobs", s.handleSubmit)
	mux.HandleFunc("GET /v1/jobs/{id}", s.handleStatus)
	mux.HandleFunc("DELETE /v1/jobs/{id}", s.handleCancel)
	mux.HandleFunc("GET /v1/jobs/{id}/events", s.handleEvents)
	mux.HandleFunc("GET /v1/jobs/{id}/images/{file}", s.handleImage)

	mux.HandleFunc("POST /v1/images/generations", s.handleOpenAI)

	mux.HandleFunc("POST /sdapi/v1/txt2img", s.handleTxt2Img)
	mux.HandleFunc("POST /sdapi/v1/img2img", s.handleImg2Img)
	mux.HandleFunc("GET /sdapi/v1/samplers", s.handleSamplers)
	mux.HandleFunc("GET /sdapi/v1/schedulers", s.handleSchedulers)
	mux.HandleFunc("GET /sdapi/v1/sd-models", s.handleModels)
	mux.HandleFunc("GET /sdapi/v1/options", s.handleOptions)
	mux.HandleFunc("GET /sdapi/v1/progress", s.handleProgress)
	mux.HandleFunc("POST /sdapi/v1/interrupt", s.handleInterrupt)

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		// mux.Handler finds the route; mux.ServeHTTP runs it with its path values.
		_, pattern := mux.Handler(r)
		route := pattern
		var h http.Handler = mux
		switch {
		case pattern == "":
			// No route: the mux's plain-text 404/405, as a JSON error.
			route = "unmatched"
			h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				probe := &probeWriter{header: http.Header{}}
				mux.ServeHTTP(probe, r)
				if allow := probe.header.Get("Allow"); allow != "" {
					w.Header().Set("Allow", allow)
				}
				if probe.status == http.StatusMethodNotAllowed {
					writeError(w, &APIError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: r.Method + " is not allowed on " + r.URL.Path})
					return
				}
				writeError(w, &APIError{Status: http.StatusNotFound, Code: "not_found", Message: "no such endpoint: " + r.URL.Path})
			})
		case pattern != "GET /health" && !s.authorized(r):
			h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="sd"`)
				writeError(w, &APIError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "a valid API key is required (Authorization: Bearer KEY)"})
			})
		}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panic", "route", route, "panic", fmt.Sprint(v))
				if !rec.wrote {
					writeError(rec, &APIError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"})
				}
			}
			d := time.Since(start)
			s.metrics.request(route, rec.status)
			s.log.Info("http", "method", r.Method, "path", r.URL.Path, "route", route, "status", rec.status,
				"bytes", rec.bytes, "ms", d.Milliseconds(), "remote", r.RemoteAddr)
		}()
		h.ServeHTTP(rec, r)
	})
}

// recorder notes a response's status and size for the access log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap gives http.ResponseController the connection (for Flush).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// probeWriter captures what the mux answers for an unmatched request.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header { return p.header }
func (p *probeWriter) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}
func (p *probeWriter) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
}

// readiness is the server's state as /ready and the heartbeats report it.
func (s *Server) readinessLocked() (status string, ready bool) {
	switch {
	case s.loadErr != nil:
		return "failed", false
	case s.draining:
		return "draining", false
	case s.engine == nil:
		return "loading", false
	case len(s.queue) >= s.cfg.QueueSize:
		return "busy", false
	case s.running > 0:
		return "busy", true
	}
	return "idle", true
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	status, ready := s.readinessLocked()
	body := map[string]any{"status": status, "ready": ready, "queue_depth": len(s.queue), "queue_size": s.cfg.QueueSize, "running": s.running}
	if s.loadErr != nil {
		body["error"] = s.loadErr.Error()
	}
	s.mu.Unlock()
	code := http.StatusOK
	if !ready {
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, code, body)
}

package serve

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// histogram is a Prometheus histogram: cumulative counts per upper bound.
type histogram struct {
	bounds []float64
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	count  uint64
}

func newHistogram(bounds ...float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v) // the first bound >= v
	h.counts[i]++
	h.sum += v
	h.count++
}

// metrics are the server's counters, written in Prometheus' text format.
type metrics struct {
	mu             sync.Mutex
	submittedTotal uint64
	outcomes       map[string]uint64 // completed, failed, cancelled
	rejected       map[string]uint64 // by error code
	requests       map[[2]string]uint64
	step, run      *histogram
	wait           *histogram
	lastRate       float64
	loadSeconds    float64
	start          time.Time
}

func newMetrics() *metrics {
	jobBounds := []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}
	return &metrics{
		outcomes: map[string]uint64{stateCompleted: 0, stateFailed: 0, stateCancelled: 0},
		rejected: map[string]uint64{}, requests: map[[2]string]uint64{},
		step: newHistogram(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
		run:  newHistogram(jobBounds...), wait: newHistogram(jobBounds...),
		start: time.Now(),
	}
}

func (m *metrics) submitted() {
	m.mu.Lock()
	m.submittedTotal++
	m.mu.Unlock()
}

func (m *metrics) finished(state string) {
	m.mu.Lock()
	m.outcomes[state]++
	m.mu.Unlock()
}

func (m *metrics) reject(code string) {
	m.mu.Lock()
	m.rejected[code]++
	m.mu.Unlock()
}

func (m *metrics) request(route string, status int) {
	m.mu.Lock()
	m.requests[[2]string{route, strconv.Itoa(status)}]++
	m.mu.Unlock()
}

func (m *metrics) stepDone(d time.Duration) {
	m.mu.Lock()
	m.step.observe(d.Seconds())
	m.mu.Unlock()
}

func (m *metrics) waited(d time.Duration) {
	m.mu.Lock()
	m.wait.observe(d.Seconds())
	m.mu.Unlock()
}

func (m *metrics) jobDone(d time.Duration, rate float64) {
	m.mu.Lock()
	m.run.observe(d.Seconds())
	m.lastRate = rate
	m.mu.Unlock()
}

func (m *metrics) setLoad(d time.Duration) {
	m.mu.Lock()
	m.loadSeconds = d.Seconds()
	m.mu.Unlock()
}

// promWriter writes the text exposition format.
type promWriter struct{ w *bufio.Writer }

func (p promWriter) head(name, typ, help string) {
	fmt.Fprintf(p.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func (p promWriter) sample(name, labels string, v float64) {
	if labels != "" {
		labels = "{" + labels + "}"
	}
	fmt.Fprintf(p.w, "%s%s %s\n", name, labels, strconv.FormatFloat(v, 'g', -1, 64))
}

func (p promWriter) single(name, typ, help string, v float64) {
	p.head(name, typ, help)
	p.sample(name, "", v)
}

func (p promWriter) histogram(name, help string, h *histogram) {
	p.head(name, "histogram", help)
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		p.sample(name+"_bucket", `le="`+strconv.FormatFloat(b, 'g', -1, 64)+`"`, float64(cum))
	}
	p.sample(name+"_bucket", `le="+Inf"`, float64(h.count))
	p.sample(name+"_sum", "", h.sum)
	p.sample(name+"_count", "", float64(h.count))
}

// label quotes a label value: backslash, double quote and newline escaped.
func label(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v) + `"`
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	s.writeMetrics(w)
}

// writeMetrics writes every metric; README.md lists them.
func (s *Server) writeMetrics(out io.Writer) {
	bw := bufio.NewWriter(out)
	defer bw.Flush()
	p := promWriter{bw}

	s.mu.Lock()
	depth, running, loaded := len(s.queue), s.running, s.engine != nil
	info, kept := s.info, len(s.jobs)
	status, _ := s.readinessLocked()
	s.mu.Unlock()

	p.head("sd_worker_info", "gauge", "The worker: model, device, version and state (always 1).")
	p.sample("sd_worker_info", "model="+label(info.Model)+",device="+label(s.cfg.Device)+",version="+label(s.cfg.Version)+",status="+label(status), 1)
	p.single("sd_uptime_seconds", "gauge", "Seconds since the server was created.", time.Since(s.metrics.start).Seconds())
	p.single("sd_model_loaded", "gauge", "1 once the model is loaded.", b2f(loaded))
	p.single("sd_queue_depth", "gauge", "Jobs waiting to run.", float64(depth))
	p.single("sd_queue_capacity", "gauge", "The most jobs that may wait (--queue).", float64(s.cfg.QueueSize))
	p.single("sd_jobs_running", "gauge", "Jobs running now.", float64(running))
	p.single("sd_concurrency", "gauge", "The most jobs that run at once (--concurrency).", float64(s.cfg.Concurrency))
	p.single("sd_jobs_kept", "gauge", "Jobs in memory: queued, running, and finished ones kept for their results.", float64(kept))

	m := s.metrics
	m.mu.Lock()
	p.single("sd_model_load_seconds", "gauge", "How long loading the model took.", m.loadSeconds)
	p.single("sd_jobs_submitted_total", "counter", "Jobs accepted into the queue.", float64(m.submittedTotal))
	p.head("sd_jobs_total", "counter", "Finished jobs by outcome.")
	for _, k := range sortedKeys(m.outcomes) {
		p.sample("sd_jobs_total", "outcome="+label(k), float64(m.outcomes[k]))
	}
	p.head("sd_jobs_rejected_total", "counter", "Job submissions refused, by error code (queue_full, loading, shutting_down, invalid, ...).")
	for _, k := range sortedKeys(m.rejected) {
		p.sample("sd_jobs_rejected_total", "code="+label(k), float64(m.rejected[k]))
	}
	p.histogram("sd_step_duration_seconds", "Time between denoising steps (an image's first step includes encoding its prompt).", m.step)
	p.histogram("sd_job_duration_seconds", "Run time of completed jobs, start to finish.", m.run)
	p.histogram("sd_job_queue_seconds", "Time jobs waited in the queue before they started.", m.wait)
	p.single("sd_iterations_per_second", "gauge", "Steps a second of the last completed job.", m.lastRate)
	p.head("sd_http_requests_total", "counter", "HTTP requests by route and status code.")
	reqs := make([][2]string, 0, len(m.requests))
	for k := range m.requests {
		reqs = append(reqs, k)
	}
	sort.Slice(reqs, func(i, j int) bool { return reqs[i][0]+" "+reqs[i][1] < reqs[j][0]+" "+reqs[j][1] })
	for _, k := range reqs {
		p.sample("sd_http_requests_total", "route="+label(k[0])+",code="+label(k[1]), float64(m.requests[k]))
	}
	m.mu.Unlock()

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p.single("sd_memory_heap_alloc_bytes", "gauge", "Bytes of allocated heap objects (runtime.MemStats.HeapAlloc).", float64(ms.HeapAlloc))
	p.single("sd_memory_heap_inuse_bytes", "gauge", "Bytes in in-use heap spans (HeapInuse).", float64(ms.HeapInuse))
	p.single("sd_memory_heap_idle_bytes", "gauge", "Bytes in idle heap spans (HeapIdle).", float64(ms.HeapIdle))
	p.single("sd_memory_heap_released_bytes", "gauge", "Bytes of heap returned to the OS (HeapReleased).", float64(ms.HeapReleased))
	p.single("sd_memory_sys_bytes", "gauge", "Bytes obtained from the OS (Sys).", float64(ms.Sys))
	p.single("sd_memory_heap_objects", "gauge", "Allocated heap objects (HeapObjects).", float64(ms.HeapObjects))
	p.single("sd_gc_cycles_total", "counter", "Completed GC cycles (NumGC).", float64(ms.NumGC))
	p.single("sd_gc_pause_seconds_total", "counter", "Total GC stop-the-world pause (PauseTotalNs).", float64(ms.PauseTotalNs)/1e9)
	p.single("sd_goroutines", "gauge", "Goroutines now.", float64(runtime.NumGoroutine()))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

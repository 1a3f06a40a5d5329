package serve

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"time"
)

// The states of a job.
const (
	stateQueued    = "queued"
	stateRunning   = "running"
	stateCompleted = "completed"
	stateFailed    = "failed"
	stateCancelled = "cancelled"
)

// Causes of a job's cancellation.
var (
	errCancelRequested = errors.New("cancelled by request")
	errClientGone      = errors.New("the client disconnected")
	errShutdown        = errors.New("the worker is shutting down")
	errJobTimeout      = errors.New("the job ran past its time limit")
)

// job is one generation request and its outcome. Fields below mu-guarded are
// guarded by Server.mu.
type job struct {
	id      string
	api     string // jobs, openai, txt2img, img2img
	spec    *jobSpec
	ctx     context.Context
	cancel  context.CancelCauseFunc
	done    chan struct{} // closed when the job reaches a final state
	created time.Time

	// Guarded by Server.mu.
	state             string
	started, finished time.Time
	lastStep          time.Time
	step, total       int
	rate              float64 // steps a second
	progressSeq       int
	preview           []byte
	previewStep       int
	previewSeq        int
	images            [][]byte // PNG files
	encode, denoise   time.Duration
	decode            time.Duration
	err               *APIError
	changed           chan struct{} // closed and replaced on every change
}

func newJobID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (j *job) terminal() bool {
	return j.state == stateCompleted || j.state == stateFailed || j.state == stateCancelled
}

// notifyLocked wakes the job's listeners. Server.mu must be held.
func (j *job) notifyLocked() {
	close(j.changed)
	j.changed = make(chan struct{})
}

// Timings are a job's durations in milliseconds.
type Timings struct {
	QueuedMS  int64 `json:"queued_ms"`
	EncodeMS  int64 `json:"encode_ms"`
	DenoiseMS int64 `json:"denoise_ms"`
	DecodeMS  int64 `json:"decode_ms"`
	// TotalMS is the run time, from start to finish.
	TotalMS int64 `json:"total_ms"`
}

// Progress is a running job's progress over all its images.
type Progress struct {
	Step    int     `json:"step"`
	Total   int     `json:"total"`
	Percent float64 `json:"percent"`
	ItPerS  float64 `json:"it_per_s"`
	EtaS    float64 `json:"eta_s"`
}

// JobStatus is the answer of GET /v1/jobs/{id}.
type JobStatus struct {
	ID string `json:"id"`
	// Status is queued, running, completed, failed or cancelled.
	Status string `json:"status"`
	// QueuePosition is 1 for the next job to run; present while queued.
	QueuePosition int        `json:"queue_position,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	StartedAt     *time.Time `json:"started_at,omitempty"`
	FinishedAt    *time.Time `json:"finished_at,omitempty"`
	Progress      *Progress  `json:"progress,omitempty"`
	Timings       *Timings   `json:"timings,omitempty"`
	// Images are the paths of the finished images; Seeds their seeds.
	Images    []string  `json:"images,omitempty"`
	Seeds     []uint64  `json:"seeds,omitempty"`
	Error     *APIError `json:"error,omitempty"`
	StatusURL string    `json:"status_url"`
	EventsURL string    `json:"events_url"`
}

func (j *job) statusURL() string { return "/v1/jobs/" + j.id }
func (j *job) eventsURL() string { return "/v1/jobs/" + j.id + "/events" }
func (j *job) imageURL(i int) string {
	return "/v1/jobs/" + j.id + "/images/" + strconv.Itoa(i) + ".png"
}

// progressLocked reports the progress; Server.mu must be held.
func (j *job) progressLocked() *Progress {
	if j.total == 0 {
		return nil
	}
	p := &Progress{Step: j.step, Total: j.total, Percent: 100 * float64(j.step) / float64(j.total), ItPerS: round2(j.rate)}
	if j.rate > 0 {
		p.EtaS = round2(float64(j.total-j.step) / j.rate)
	}
	p.Percent = round2(p.Percent)
	return p
}

// timingsLocked reports the durations so far; Server.mu must be held.
func (j *job) timingsLocked() *Timings {
	if j.started.IsZero() {
		return nil
	}
	t := &Timings{QueuedMS: j.started.Sub(j.created).Milliseconds(), EncodeMS: j.encode.Milliseconds(),
		DenoiseMS: j.denoise.Milliseconds(), DecodeMS: j.decode.Milliseconds()}
	if !j.finished.IsZero() {
		t.TotalMS = j.finished.Sub(j.started).Milliseconds()
	}
	return t
}

func round2(v float64) float64 {
	return math.Round(v*100) / 100
}

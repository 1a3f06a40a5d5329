package serve

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// Config configures a Server. Zero values mean the defaults documented on each
// field.
type Config struct {
	// Load loads the model and returns the engine that runs it. It runs in the
	// background when the server starts; until it returns, /ready answers 503
	// and job submissions are refused with 503. Required.
	Load func(ctx context.Context) (Engine, error)

	// APIKey, when set, is required on every request but GET /health, as
	// "Authorization: Bearer KEY".
	APIKey string

	// QueueSize is the number of jobs that may wait for a generation slot
	// (running jobs not counted); more are refused with 429. Default 16.
	QueueSize int
	// Concurrency is the number of jobs that run at once. Default 1.
	Concurrency int
	// JobTimeout bounds the run time of one job (not its wait in the queue).
	// Default 10 minutes.
	JobTimeout time.Duration
	// DrainTimeout is how long Serve lets running jobs finish after its
	// context is cancelled before cancelling them. Default 60 s.
	DrainTimeout time.Duration

	// KeepFinished is how long a finished job (its status, events and images)
	// stays available; MaxFinished bounds how many are kept (the oldest go
	// first). Defaults: 15 minutes and 256.
	KeepFinished time.Duration
	MaxFinished  int

	// Orchestrator is the base URL of an orchestrator: when set, the server
	// posts a Heartbeat to Orchestrator + "/v1/worker-heartbeat" every
	// HeartbeatInterval (default 30 s, at least 10 ms).
	Orchestrator      string
	HeartbeatInterval time.Duration
	// WorkerID, Address (the URL where this worker is reached), Device and
	// Version are reported in heartbeats. Device defaults to "cpu".
	WorkerID, Address, Device, Version string
	// HTTPClient sends the heartbeats; nil uses a client with a 10 s timeout.
	HTTPClient *http.Client

	// Limits bound what a request may ask for.
	Limits Limits
	// MaxBody is the largest request body accepted, in bytes. Default 32 MiB.
	MaxBody int64

	// LoRADir is the folder the requests' LoRAs are found in, by name only
	// (a request's "loras" field, or A1111's <lora:NAME:SCALE> prompt tags):
	// clients never name a path. "" refuses requests that ask for LoRAs.
	LoRADir string

	// LogPrompts adds prompts to the job logs (they are left out by default).
	LogPrompts bool
	// PreviewEvery sends a preview image every that many steps on a job's
	// event stream; 0 sends none.
	PreviewEvery int

	// Logger receives the access and job logs; nil discards them.
	Logger *slog.Logger
}

// Limits bound the work one request may ask for. Zero values mean the
// defaults.
type Limits struct {
	// MaxWidth and MaxHeight bound the generated image, in pixels. Default 2048.
	MaxWidth, MaxHeight int
	// MaxSteps bounds the denoising steps. Default 150.
	MaxSteps int
	// MaxBatch bounds the number of images of one job. Default 8.
	MaxBatch int
	// MaxInputPixels bounds the width times height of an input image (init
	// image or mask), checked from its header before it is decoded. Default
	// 4096x4096.
	MaxInputPixels int
	// MaxPromptBytes bounds each prompt. Default 8192.
	MaxPromptBytes int
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxWidth, 2048)
	def(&l.MaxHeight, 2048)
	def(&l.MaxSteps, 150)
	def(&l.MaxBatch, 8)
	def(&l.MaxInputPixels, 4096*4096)
	def(&l.MaxPromptBytes, 8192)
	return l
}

func (c Config) withDefaults() Config {
	if c.QueueSize <= 0 {
		c.QueueSize = 16
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.JobTimeout <= 0 {
		c.JobTimeout = 10 * time.Minute
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 60 * time.Second
	}
	if c.KeepFinished <= 0 {
		c.KeepFinished = 15 * time.Minute
	}
	if c.MaxFinished <= 0 {
		c.MaxFinished = 256
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 30 * time.Second
	}
	c.HeartbeatInterval = max(c.HeartbeatInterval, 10*time.Millisecond)
	if c.Device == "" {
		c.Device = "cpu"
	}
	if c.Version == "" {
		c.Version = "(devel)"
	}
	if c.MaxBody <= 0 {
		c.MaxBody = 32 << 20
	}
	if c.PreviewEvery < 0 {
		c.PreviewEvery = 0
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	c.Limits = c.Limits.withDefaults()
	return c
}

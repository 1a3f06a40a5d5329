package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/sdgo/sdgo/diffusion"
	"github.com/sdgo/sdgo/diffusion/hub"
	"github.com/sdgo/sdgo/serve"
	"github.com/sdgo/sdgo/tensor"
)

func init() {
	register(command{name: "serve", summary: "run a model as an HTTP worker (jobs, SSE progress, OpenAI and A1111 APIs, metrics)", run: runServe})
}

// byteSize is a flag of bytes: a number with an optional K, M, G (or KiB,
// MiB, GiB; powers of 1024) suffix.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }
func (b *byteSize) Set(s string) error {
	num := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = rest, u.mult
			break
		}
	}
	v, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || v <= 0 || v > (1<<40)/mult {
		return fmt.Errorf("want a size in bytes, e.g. 32MiB")
	}
	*b = byteSize(v * mult)
	return nil
}

type serveFlags struct {
	model, config, predictionType, device string
	precision                             string
	addr, apiKey, orchestrator            string
	workerID, advertise                   string
	queue, concurrency                    int
	jobTimeout, drainTimeout              time.Duration
	heartbeat, keepFinished               time.Duration
	maxFinished                           int
	maxWidth, maxHeight, maxSteps         int
	maxBatch, previewEvery                int
	maxBody                               byteSize
	logPrompts, offload                   bool
	loraDir                               string
}

func runServe(ctx context.Context, e *env, args []string) error {
	f := serveFlags{maxBody: 32 << 20}
	fs := newFlags(e, "serve", "--model MODEL [--addr 127.0.0.1:7860] [flags]")
	fs.StringVar(&f.model, "model", "", "a preset (v1-5, xl, turbo, ...), a Hub repository id, a diffusers folder or a single-file checkpoint")
	fs.StringVar(&f.config, "config", "", "a diffusers folder giving a single file's architecture")
	fs.StringVar(&f.predictionType, "prediction-type", "", "what the model predicts: epsilon, v_prediction or sample (for SD 2.x single files)")
	fs.StringVar(&f.device, "device", "cpu", "where to run: cpu, cuda or cuda:N")
	fs.StringVar(&f.precision, "precision", "", precisionUsage)
	fs.StringVar(&f.addr, "addr", "127.0.0.1:7860", "address to listen on (host:port; port 0 picks one)")
	fs.StringVar(&f.apiKey, "api-key", "", "require this key as 'Authorization: Bearer KEY' on every endpoint but /health (default: $SD_API_KEY)")
	fs.IntVar(&f.queue, "queue", 16, "jobs that may wait to run; more are refused with 429")
	fs.IntVar(&f.concurrency, "concurrency", 1, "jobs that run at once (each loads its own copy of the model)")
	fs.DurationVar(&f.jobTimeout, "job-timeout", 10*time.Minute, "the longest a job may run")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", 60*time.Second, "on SIGTERM, how long running jobs may finish before they are cancelled")
	fs.StringVar(&f.orchestrator, "orchestrator", "", "post heartbeats to URL/v1/worker-heartbeat")
	fs.DurationVar(&f.heartbeat, "heartbeat-interval", 30*time.Second, "time between heartbeats")
	fs.StringVar(&f.workerID, "worker-id", "", "this worker's name in heartbeats (default: HOSTNAME-PORT)")
	fs.StringVar(&f.advertise, "advertise", "", "the URL the orchestrator reaches this worker at (default: http://ADDR)")
	fs.IntVar(&f.maxWidth, "max-width", 2048, "the widest image a request may ask for")
	fs.IntVar(&f.maxHeight, "max-height", 2048, "the tallest image a request may ask for")
	fs.IntVar(&f.maxSteps, "max-steps", 150, "the most steps a request may ask for")
	fs.IntVar(&f.maxBatch, "max-batch", 8, "the most images one request may ask for")
	fs.Var(&f.maxBody, "max-body", "the largest request body (bytes, or with a KiB/MiB suffix; default 32MiB)")
	fs.BoolVar(&f.logPrompts, "log-prompts", false, "include prompts in the job logs")
	fs.BoolVar(&f.offload, "offload", false, "drop each network's weights from memory after its stage (lower peak memory; they come back from the page cache)")
	fs.StringVar(&f.loraDir, "lora-dir", "", "the folder requests' LoRAs are found in, by name (requests never name paths)")
	fs.IntVar(&f.previewEvery, "preview-every", 5, "send a preview image on the event stream every N steps (0: never)")
	fs.DurationVar(&f.keepFinished, "keep-finished", 15*time.Minute, "how long finished jobs and their images are kept")
	fs.IntVar(&f.maxFinished, "max-finished", 256, "how many finished jobs are kept at most")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.check(fs); err != nil {
		return err
	}
	apiKey := f.apiKey
	if apiKey == "" {
		apiKey = os.Getenv("SD_API_KEY")
	}

	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", f.addr, err)
	}
	defer ln.Close()
	addr := ln.Addr().(*net.TCPAddr)
	host, _ := os.Hostname()
	advertise := f.advertise
	if advertise == "" {
		h := addr.IP.String()
		if addr.IP.IsUnspecified() && host != "" {
			h = host
		}
		advertise = "http://" + net.JoinHostPort(h, strconv.Itoa(addr.Port))
	}
	workerID := f.workerID
	if workerID == "" {
		workerID = fmt.Sprintf("%s-%d", host, addr.Port)
	}
	if apiKey == "" && !addr.IP.IsLoopback() {
		e.log.Warn("listening beyond this machine without an API key (set --api-key or SD_API_KEY)", "addr", addr.String())
	}

	s, err := serve.New(serve.Config{
		Load: f.loader(e), APIKey: apiKey, QueueSize: f.queue, Concurrency: f.concurrency,
		JobTimeout: f.jobTimeout, DrainTimeout: f.drainTimeout, KeepFinished: f.keepFinished, MaxFinished: f.maxFinished,
		Orchestrator: f.orchestrator, HeartbeatInterval: f.heartbeat, WorkerID: workerID, Address: advertise,
		Device: f.device, Version: buildVersion(),
		Limits:  serve.Limits{MaxWidth: f.maxWidth, MaxHeight: f.maxHeight, MaxSteps: f.maxSteps, MaxBatch: f.maxBatch},
		MaxBody: int64(f.maxBody), LogPrompts: f.logPrompts, LoRADir: f.loraDir, PreviewEvery: f.previewEvery, Logger: e.log,
	})
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	e.log.Info("listening", "addr", addr.String(), "url", advertise, "worker_id", workerID, "auth", apiKey != "")
	return s.Serve(ctx, ln)
}

func (f *serveFlags) check(fs *flag.FlagSet) error {
	usage := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
	}
	switch {
	case fs.NArg() > 0:
		return usage("unexpected arguments %q", fs.Args())
	case f.model == "":
		return usage("--model is required")
	case checkDevice(f.device) != nil:
		return checkDevice(f.device)
	case checkPrecision(f.device, f.precision) != nil:
		return checkPrecision(f.device, f.precision)
	case f.queue < 1 || f.concurrency < 1 || f.maxFinished < 1:
		return usage("--queue, --concurrency and --max-finished must be at least 1")
	case f.jobTimeout <= 0 || f.drainTimeout <= 0 || f.heartbeat <= 0 || f.keepFinished <= 0:
		return usage("--job-timeout, --drain-timeout, --heartbeat-interval and --keep-finished must be positive")
	case f.maxWidth < 64 || f.maxHeight < 64 || f.maxWidth%8 != 0 || f.maxHeight%8 != 0:
		return usage("--max-width and --max-height must be multiples of 8, at least 64")
	case f.maxSteps < 1 || f.maxBatch < 1:
		return usage("--max-steps and --max-batch must be at least 1")
	case f.previewEvery < 0:
		return usage("--preview-every must be 0 (off) or more")
	}
	for _, u := range []struct{ name, v string }{{"--orchestrator", f.orchestrator}, {"--advertise", f.advertise}} {
		if u.v == "" {
			continue
		}
		p, err := url.Parse(u.v)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return usage("%s %q: want http(s)://host[:port]", u.name, u.v)
		}
	}
	return nil
}

// loader loads one pipeline per concurrent job (a Pipeline runs one
// generation at a time), with the preset's defaults when the model is one.
func (f *serveFlags) loader(e *env) func(ctx context.Context) (serve.Engine, error) {
	return func(ctx context.Context) (serve.Engine, error) {
		path, name := f.model, ""
		preset, isPreset := diffusion.LookupPreset(f.model)
		switch {
		case isPreset:
			path, name = preset.Repo, preset.Name
		case hub.IsRepoID(f.model):
			name = f.model
		default:
			name = filepath.Base(filepath.Clean(f.model))
		}
		var pipes []*diffusion.Pipeline
		var backends []tensor.Backend
		fail := func(err error) (serve.Engine, error) {
			for _, q := range pipes {
				q.Close()
			}
			for _, b := range backends {
				closeDevice(b)
			}
			return nil, err
		}
		for i := range f.concurrency {
			backend, err := openDevice(f.device, f.precision)
			if err != nil {
				return fail(err)
			}
			backends = append(backends, backend)
			p, err := diffusion.Load(ctx, path, diffusion.Options{Config: f.config, PredictionType: f.predictionType, Offload: f.offload, Backend: backend})
			if err != nil {
				return fail(err)
			}
			pipes = append(pipes, p)
			e.log.Info("model copy loaded", "copy", i+1, "of", f.concurrency)
		}
		info := serve.PipelineInfo(pipes[0], name)
		if isPreset {
			info.Steps, info.Guidance, info.Scheduler = preset.Steps, preset.Guidance, preset.Scheduler
			info.Width, info.Height = preset.Size, preset.Size
		}
		eng, err := serve.NewPipelineEngine(info, pipes...)
		if err != nil {
			return fail(err)
		}
		return &deviceEngine{eng, backends}, nil
	}
}

// deviceEngine is a pipeline engine that also owns the backends its pipelines
// run on: closing it (when the server stops or swaps models) closes the
// pipelines, then hands the devices back.
type deviceEngine struct {
	*serve.PipelineEngine
	backends []tensor.Backend
}

// Close closes the pipelines and then the backends.
func (e *deviceEngine) Close() error {
	err := e.PipelineEngine.Close()
	for _, b := range e.backends {
		closeDevice(b)
	}
	return err
}

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

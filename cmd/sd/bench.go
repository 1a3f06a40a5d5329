package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sdgo/sdgo/internal/bench"
	"github.com/sdgo/sdgo/kernels/cuda"
	"github.com/sdgo/sdgo/tensor"
)

func init() {
	register(command{name: "bench", summary: "time a model component at real size with synthetic weights", run: runBench})
}

func runBench(ctx context.Context, e *env, args []string) error {
	var s bench.Spec
	var arch string
	var jsonOut bool
	fs := newFlags(e, "bench", "--arch sd15|sd21|sdxl --component unet|vae-decode|vae-encode|text|pipeline [flags]")
	fs.StringVar(&arch, "arch", "sd15", "model family: sd15, sd21 or sdxl")
	fs.StringVar(&s.Component, "component", "unet", "unet, vae-decode, vae-encode, text or pipeline")
	fs.IntVar(&s.Size, "size", 512, "image side in pixels")
	fs.IntVar(&s.Batch, "batch", 1, "batch size")
	fs.IntVar(&s.Steps, "steps", 20, "denoising steps (pipeline)")
	fs.IntVar(&s.Iters, "iters", 3, "timed calls after one warm-up call (a pipeline has no warm-up)")
	fs.StringVar(&s.Device, "device", "cpu", "where to run: cpu, cuda or cuda:N")
	var precision string
	fs.StringVar(&precision, "precision", "", precisionUsage)
	fs.BoolVar(&jsonOut, "json", false, "print one JSON object")
	var profile bool
	fs.BoolVar(&profile, "profile", false, "cuda: time every operation (each waits for the device) and print where the time went to stderr")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	s.Arch = bench.Arch(arch)
	if _, err := bench.UNetConfig(s.Arch); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if s.Batch < 1 || s.Iters < 1 || s.Steps < 1 {
		return fmt.Errorf("%w: --batch, --iters and --steps must be at least 1", errUsage)
	}
	// The first run of a component writes its synthetic checkpoint (1.7 GB for
	// the SD 1.5 UNet), which later runs map in place.
	e.log.Debug("synthetic checkpoints", "dir", bench.CacheDir())
	if err := checkDevice(s.Device); err != nil {
		return err
	}
	if err := checkPrecision(s.Device, precision); err != nil {
		return err
	}
	if kind, _, _ := strings.Cut(s.Device, ":"); profile && kind != "cuda" {
		return fmt.Errorf("%w: --profile times the operations of a cuda device, not %s", errUsage, cmp.Or(s.Device, "cpu"))
	}
	var profiled []*cuda.Backend
	s.Open = func(d string) (tensor.Backend, error) {
		b, err := openDevice(d, precision)
		if cb, ok := b.(*cuda.Backend); ok && profile {
			cb.SetProfiling(true)
			profiled = append(profiled, cb)
		}
		return b, err
	}
	r, err := bench.Run(ctx, s)
	for _, b := range profiled {
		printProfile(e.stderr, b.Profile())
	}
	if kind, _, _ := strings.Cut(s.Device, ":"); kind != "cpu" && kind != "" {
		r.Device += " " + cmp.Or(precision, "fp16") // the precision it ran in
	}
	if err != nil {
		return err
	}
	if jsonOut {
		return json.NewEncoder(e.stdout).Encode(r)
	}
	fmt.Fprintf(e.stdout, "%s %s %dpx batch %d on %s (%d threads): median %.1f ms, min %.1f ms over %d calls; %.0f GFLOP, %.1f GFLOP/s; peak RSS %.0f MB\n",
		r.Arch, r.Component, r.Size, r.Batch, r.Device, r.Threads, r.MsMedian, r.MsMin, r.Iters, r.GFLOP, r.GFLOPS, r.PeakRSSMB)
	return nil
}

// printProfile writes a --profile table: each kind of operation's device time
// over all calls (the warm-up included), its share and its calls.
func printProfile(w io.Writer, ops []cuda.OpTime) {
	var total time.Duration
	for _, o := range ops {
		total += o.Time
	}
	fmt.Fprintf(w, "device time by operation (all calls, warm-up included): %.1f ms\n", float64(total)/1e6)
	for _, o := range ops {
		fmt.Fprintf(w, "%10.2f ms %5.1f%% %7d calls  %s\n", float64(o.Time)/1e6, 100*float64(o.Time)/float64(max(total, 1)), o.Calls, o.Op)
	}
}

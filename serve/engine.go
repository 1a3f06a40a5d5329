package serve

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/sdgo/sdgo/diffusion"
)

// Engine runs generations for the server. Generate must honour ctx (a
// cancelled job stops between steps) and be safe for as many concurrent calls
// as Config.Concurrency allows. An Engine that is also an io.Closer is closed
// when the server shuts down.
type Engine interface {
	Generate(ctx context.Context, req diffusion.Request) (*diffusion.Result, error)
	Info() Info
}

// Info describes the loaded model and the defaults of the requests that leave
// a field out.
type Info struct {
	// Model is the name shown to clients (a preset name or the model folder's
	// base name: never a full path).
	Model string
	// Family is the model family: sd1, sd2, sdxl.
	Family string
	// Inpaint is set for inpainting models, which need an init image and a mask.
	Inpaint bool
	// SchedulerClass is the model's own scheduler (diffusers' class name).
	SchedulerClass string
	// Scheduler is the scheduler name used when a request names none; ""
	// keeps the model's.
	Scheduler string
	// Width and Height are the default image size, in pixels.
	Width, Height int
	// Steps and Guidance are the default steps and guidance scale.
	Steps    int
	Guidance float64
}

// PipelineInfo describes a loaded pipeline with the defaults of `sd generate`:
// the model's native size, 30 steps, guidance 7.5 (5 for SDXL). name is the
// model name shown to clients; "" uses the base name of the model's path.
func PipelineInfo(p *diffusion.Pipeline, name string) Info {
	w, h := p.DefaultSize()
	if name == "" {
		name = filepath.Base(strings.TrimRight(p.Model.Path, `/\`))
	}
	info := Info{
		Model: name, Family: string(p.Model.Family), Inpaint: p.Model.Inpaint,
		SchedulerClass: p.Model.SchedulerClass, Width: w, Height: h, Steps: 30, Guidance: 7.5,
	}
	if info.Family == "sdxl" {
		info.Guidance = 5
	}
	return info
}

// PipelineEngine runs loaded pipelines: one generation at a time on each, so
// that n pipelines (n copies of the model) serve n concurrent jobs.
type PipelineEngine struct {
	info Info
	all  []*diffusion.Pipeline
	free chan *diffusion.Pipeline
}

// NewPipelineEngine returns an engine over pipes, which it owns (Close closes
// them).
func NewPipelineEngine(info Info, pipes ...*diffusion.Pipeline) (*PipelineEngine, error) {
	if len(pipes) == 0 {
		return nil, errors.New("serve: no pipelines")
	}
	e := &PipelineEngine{info: info, all: pipes, free: make(chan *diffusion.Pipeline, len(pipes))}
	for _, p := range pipes {
		e.free <- p
	}
	return e, nil
}

// Generate runs req on a free pipeline, waiting for one (or for ctx).
func (e *PipelineEngine) Generate(ctx context.Context, req diffusion.Request) (*diffusion.Result, error) {
	var p *diffusion.Pipeline
	select {
	case p = <-e.free:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	defer func() { e.free <- p }()
	return p.Generate(ctx, req)
}

// Info describes the model.
func (e *PipelineEngine) Info() Info { return e.info }

// Close closes the pipelines. No Generate may run or follow.
func (e *PipelineEngine) Close() error {
	var errs []error
	for _, p := range e.all {
		if err := p.Close(); err != nil {
			errs = append(errs, fmt.Errorf("serve: closing the model: %w", err))
		}
	}
	return errors.Join(errs...)
}

package cuda

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// OpTime is the device time one kind of operation took while profiling.
type OpTime struct {
	// Op is the operation, with the path it took where it has several
	// ("Conv2d implicit", "Attention flash").
	Op    string
	Calls int
	Time  time.Duration
}

// profiler times each operation between two CUDA events on the stream.
type profiler struct {
	mu         sync.Mutex
	on         bool
	start, end uintptr // created at the first profiled operation
	ops        map[string]*OpTime
}

// SetProfiling turns per-operation timing on or off (off by default). While it
// is on, every operation waits until the device has finished it, so the queue
// never runs ahead of the host and a profiled run is slower than a normal one,
// but each operation's time is its own.
func (b *Backend) SetProfiling(on bool) {
	b.prof.mu.Lock()
	defer b.prof.mu.Unlock()
	b.prof.on = on
}

// Profile returns the time of each kind of operation since profiling was
// turned on or last reset, the longest first.
func (b *Backend) Profile() []OpTime {
	b.prof.mu.Lock()
	defer b.prof.mu.Unlock()
	out := make([]OpTime, 0, len(b.prof.ops))
	for _, o := range b.prof.ops {
		out = append(out, *o)
	}
	slices.SortFunc(out, func(x, y OpTime) int {
		if x.Time != y.Time {
			return int(y.Time - x.Time)
		}
		return strings.Compare(x.Op, y.Op)
	})
	return out
}

// ResetProfile forgets the times recorded so far.
func (b *Backend) ResetProfile() {
	b.prof.mu.Lock()
	defer b.prof.mu.Unlock()
	b.prof.ops = nil
}

// profiling reports whether operations are timed now.
func (b *Backend) profiling() bool {
	b.prof.mu.Lock()
	defer b.prof.mu.Unlock()
	return b.prof.on
}

// begin records the start event; the device is held (inside Device.do).
func (p *profiler) begin(d *Device) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.start == 0 {
		if err := d.drv.check("cuEventCreate", d.drv.cuEventCreate(&p.start, 0)); err != nil {
			return err
		}
		if err := d.drv.check("cuEventCreate", d.drv.cuEventCreate(&p.end, 0)); err != nil {
			d.drv.cuEventDestroy(p.start)
			p.start = 0
			return err
		}
	}
	return d.drv.check("cuEventRecord", d.drv.cuEventRecord(p.start, d.stream))
}

// finish records the end event, waits for it and adds the time to op.
func (p *profiler) finish(d *Device, op string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := d.drv.check("cuEventRecord", d.drv.cuEventRecord(p.end, d.stream)); err != nil {
		return err
	}
	if err := d.drv.check("cuEventSynchronize", d.drv.cuEventSynchronize(p.end)); err != nil {
		return err
	}
	var ms float32
	if err := d.drv.check("cuEventElapsedTime", d.drv.cuEventElapsedTime(&ms, p.start, p.end)); err != nil {
		return err
	}
	if p.ops == nil {
		p.ops = map[string]*OpTime{}
	}
	o := p.ops[op]
	if o == nil {
		o = &OpTime{Op: op}
		p.ops[op] = o
	}
	o.Calls++
	o.Time += time.Duration(float64(ms) * float64(time.Millisecond))
	return nil
}

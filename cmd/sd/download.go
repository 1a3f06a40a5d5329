package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sdgo/sdgo/diffusion/hub"
)

func init() {
	register(command{name: "download", summary: "fetch a model from the Hugging Face Hub into the shared cache", run: runDownload})
}

// patterns is a repeatable flag.
type patterns []string

func (p *patterns) String() string { return strings.Join(*p, " ") }

func (p *patterns) Set(s string) error {
	if s == "" {
		return fmt.Errorf("empty pattern")
	}
	*p = append(*p, s)
	return nil
}

func runDownload(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "download", "ORG/NAME[@REV] [--variant fp16] [--include GLOB]... [--exclude GLOB]... [--all]\n\n"+
		"Fetches what a diffusers pipeline loads (or the files --include names) into the Hugging Face cache\n"+
		"($HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub) and prints the snapshot folder.\n"+
		"HF_TOKEN opens gated and private repositories; HF_ENDPOINT names another Hub; HF_HUB_OFFLINE=1 uses the cache only.\n")
	variant := fs.String("variant", "", "prefer weights of this variant (fp16: *.fp16.safetensors), else the plain files")
	var include, exclude patterns
	fs.Var(&include, "include", "fetch exactly the files matching `GLOB` instead (repeatable; * matches across /)")
	fs.Var(&exclude, "exclude", "leave out the files matching `GLOB` (repeatable)")
	all := fs.Bool("all", false, "fetch every file of the repository")
	quiet := fs.Bool("quiet", false, "no progress bar and no log but warnings and errors")
	offline := fs.Bool("offline", false, "use the cache only (as HF_HUB_OFFLINE=1)")
	concurrency := fs.Int("concurrency", 8, "files downloaded at once")
	cacheDir := fs.String("cache-dir", "", "the hub cache `DIR` (default: from HF_HUB_CACHE or HF_HOME)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("%w: want one repository id ORG/NAME[@REV], got %d arguments", errUsage, fs.NArg())
	}
	repo, rev, err := hub.ParseRepoID(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	switch {
	case *variant != "" && (*all || len(include) > 0):
		return fmt.Errorf("%w: --variant chooses among the files picked automatically; it cannot go with --include or --all", errUsage)
	case *all && len(include) > 0:
		return fmt.Errorf("%w: --include and --all exclude each other", errUsage)
	case *concurrency < 1:
		return fmt.Errorf("%w: --concurrency must be at least 1", errUsage)
	}

	c, err := hub.NewClientFromEnv()
	if err != nil {
		return err
	}
	if *cacheDir != "" {
		c.CacheDir = *cacheDir
	}
	c.Offline = c.Offline || *offline
	c.Concurrency = *concurrency
	c.Logger = e.log
	if *quiet {
		c.Logger = slog.New(minLevel{e.log.Handler(), slog.LevelWarn})
	}
	var bar *progressBar
	if !*quiet && isTerminal(e.stderr) {
		bar = &progressBar{w: e.stderr}
		c.Progress = bar.update
		// Log lines go through the bar, which clears and redraws itself.
		c.Logger = slog.New(slog.NewTextHandler(bar, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	dir, err := c.Snapshot(ctx, repo, rev, &hub.Options{Variant: *variant, Include: include, Exclude: exclude, All: *all})
	if bar != nil {
		bar.finish()
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted; partial downloads are kept, run again to resume (%w)", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, dir)
	return nil
}

// isTerminal reports whether w is a terminal (and not a dumb one).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// minLevel drops records below a level.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(attrs), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}

// progressBar draws download progress on one terminal line, at most ten
// times a second; writes through it (log lines) clear the line first and
// redraw it after.
type progressBar struct {
	w io.Writer

	mu    sync.Mutex
	p     hub.Progress
	start time.Time
	base  int64 // bytes already present at the first report
	drawn time.Time
	shown bool // a bar is on the line
	seen  bool // a report came
}

func (b *progressBar) update(p hub.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if !b.seen {
		b.seen, b.start, b.base = true, now, p.Done
	}
	b.p = p
	if now.Sub(b.drawn) < 100*time.Millisecond && p.FilesDone < p.Files {
		return
	}
	b.draw(now)
}

// draw writes the bar; b.mu is held.
func (b *progressBar) draw(now time.Time) {
	b.drawn = now
	var rate float64
	if el := now.Sub(b.start).Seconds(); el > 0.2 {
		rate = float64(b.p.Done-b.base) / el
	}
	fmt.Fprintf(b.w, "\r%s\x1b[K", renderProgress(b.p, rate))
	b.shown = true
}

// Write writes a log line above the bar.
func (b *progressBar) Write(line []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shown {
		fmt.Fprint(b.w, "\r\x1b[K")
	}
	n, err := b.w.Write(line)
	if b.shown {
		b.draw(time.Now())
	}
	return n, err
}

// finish draws the final state and ends the line.
func (b *progressBar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen {
		b.draw(time.Now())
		fmt.Fprintln(b.w)
		b.shown = false
	}
}

// renderProgress formats one line: "42% [=======>      ] 1.23 GB / 2.91 GB
// 48.2 MB/s ETA 35s 5/17 files".
func renderProgress(p hub.Progress, rate float64) string {
	const width = 24
	frac := 1.0
	if p.Total > 0 {
		frac = float64(p.Done) / float64(p.Total)
	}
	frac = min(max(frac, 0), 1)
	fill := int(frac * width)
	bar := strings.Repeat("=", fill)
	if fill < width {
		bar += ">" + strings.Repeat(" ", width-fill-1)
	}
	s := fmt.Sprintf("%s %3.0f%% [%s] %s / %s", p.Repo, frac*100, bar, hub.FormatBytes(p.Done), hub.FormatBytes(p.Total))
	if rate > 0 {
		s += fmt.Sprintf("  %s/s", hub.FormatBytes(int64(rate)))
		if left := p.Total - p.Done; left > 0 {
			s += fmt.Sprintf("  ETA %s", time.Duration(float64(left)/rate*float64(time.Second)).Round(time.Second))
		}
	}
	return s + fmt.Sprintf("  %d/%d files", p.FilesDone, p.Files)
}

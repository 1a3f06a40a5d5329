package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/sdgo/sdgo/diffusion/convert"
	"github.com/sdgo/sdgo/diffusion/model"
)

func init() {
	register(command{name: "convert", summary: "convert a model: single file <-> diffusers folder, F32 -> F16", run: runConvert})
}

// convertReport is the output of `sd convert --json`.
type convertReport struct {
	Source    string           `json:"source"`
	Path      string           `json:"path"`
	To        string           `json:"to"`
	Family    string           `json:"family"`
	DType     string           `json:"dtype"`
	Files     []string         `json:"files"`
	Tensors   int              `json:"tensors"`
	Bytes     int64            `json:"bytes"`
	Converted int              `json:"converted"`
	DTypes    map[string]int64 `json:"dtypes"` // parameters written per dtype
	Notes     []string         `json:"notes"`
}

func runConvert(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "convert", "[flags] SRC DST\n\n"+
		"SRC is a diffusers folder or a single file (.safetensors, .ckpt). DST is written as a\n"+
		"diffusers folder, or as a single .safetensors file in the original (LDM/SGM) layout;\n"+
		"by default a DST ending in .safetensors is a single file, anything else a folder.\n")
	to := fs.String("to", "", "what to write: diffusers (a folder) or single (one .safetensors file)")
	dtype := fs.String("dtype", "keep", "dtype of the float weights: keep, f16, bf16 or f32")
	config := fs.String("config", "", "diffusers folder giving a single file's architecture")
	prediction := fs.String("prediction-type", "", "override the prediction type (epsilon, v_prediction, sample)")
	variant := fs.String("variant", "", `weights variant of a diffusers folder ("fp16")`)
	force := fs.Bool("force", false, "replace an existing DST (a diffusers folder, or a file)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	quiet := fs.Bool("quiet", false, "no progress output")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return fmt.Errorf("%w: want SRC and DST, got %d arguments", errUsage, fs.NArg())
	}
	src, dst := fs.Arg(0), fs.Arg(1)
	dt, err := convert.ParseDType(*dtype)
	if err != nil {
		return fmt.Errorf("%w: --dtype %q (want keep, f16, bf16 or f32)", errUsage, *dtype)
	}
	target := *to
	switch target {
	case "":
		target = "diffusers"
		if strings.HasSuffix(strings.ToLower(dst), ".safetensors") {
			target = "single"
		}
	case "diffusers", "single":
	default:
		return fmt.Errorf("%w: --to %q (want diffusers or single)", errUsage, target)
	}
	if target == "diffusers" && strings.HasSuffix(strings.ToLower(dst), ".safetensors") {
		return fmt.Errorf("%w: DST %s is named like a file, but --to diffusers writes a folder", errUsage, dst)
	}
	if target == "single" && !strings.HasSuffix(dst, ".safetensors") {
		return fmt.Errorf("%w: DST %s: --to single writes a .safetensors file (want a name ending in .safetensors)", errUsage, dst)
	}

	m, err := model.Load(src, model.Options{Config: *config, PredictionType: *prediction, Variant: *variant})
	if err != nil {
		return err
	}
	defer m.Close()
	prog := newConvertProgress(e.stderr, *quiet)
	opts := convert.Options{DType: dt, Force: *force, Progress: prog.step}
	var res *convert.Result
	if target == "single" {
		res, err = convert.ToSingleFile(ctx, m, dst, opts)
	} else {
		res, err = convert.ToDiffusers(ctx, m, dst, opts)
	}
	prog.done()
	if errors.Is(err, convert.ErrExists) {
		return fmt.Errorf("%w (--force replaces it)", err)
	}
	if err != nil {
		return err
	}
	r := convertReport{
		Source: src, Path: res.Path, To: target, Family: string(m.Family), DType: string(dt),
		Files: res.Files, Tensors: res.Tensors, Bytes: res.Bytes, Converted: res.Converted,
		DTypes: map[string]int64{}, Notes: append(append([]string{}, m.Notes...), res.Notes...),
	}
	for d, n := range res.DTypes {
		r.DTypes[string(d)] = n
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return printConvert(e.stdout, r)
}

func printConvert(w io.Writer, r convertReport) error {
	what := "a diffusers folder"
	if r.To == "single" {
		what = "a single file"
	}
	var dts []string
	for d := range r.DTypes {
		dts = append(dts, d)
	}
	sort.Strings(dts)
	fmt.Fprintf(w, "wrote %s as %s (%s)\n", r.Path, what, model.Family(r.Family))
	fmt.Fprintf(w, "  %d tensors, %s, %s", r.Tensors, size(r.Bytes), strings.Join(dts, "+"))
	if r.Converted > 0 {
		fmt.Fprintf(w, ", %d converted", r.Converted)
	}
	fmt.Fprintln(w)
	for _, f := range r.Files {
		fmt.Fprintf(w, "  %s\n", f)
	}
	for _, n := range r.Notes {
		if _, err := fmt.Fprintf(w, "note: %s\n", n); err != nil {
			return err
		}
	}
	return nil
}

// convertProgress redraws "converting: i/n tensors" on a terminal; elsewhere
// it stays silent.
type convertProgress struct {
	w     io.Writer
	on    bool
	drawn bool
	last  int
}

func newConvertProgress(w io.Writer, quiet bool) *convertProgress {
	p := &convertProgress{w: w}
	if f, ok := w.(*os.File); ok && !quiet {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.on = true
		}
	}
	return p
}

func (p *convertProgress) step(i, n int) {
	if !p.on || n == 0 {
		return
	}
	// About 200 redraws at most.
	pct := i * 200 / n
	if pct == p.last && i != n {
		return
	}
	p.last = pct
	fmt.Fprintf(p.w, "\rconverting: %d/%d tensors ", i, n)
	p.drawn = true
}

func (p *convertProgress) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

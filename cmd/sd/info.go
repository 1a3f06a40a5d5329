package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/sdgo/sdgo/diffusion/model"
)

func init() {
	register(command{name: "info", summary: "describe a model: family, components, dtypes, sizes, scheduler", run: runInfo})
}

// infoComponent is one component of `sd info --json`.
type infoComponent struct {
	Name    string           `json:"name"`
	Class   string           `json:"class"`
	Files   []string         `json:"files"`
	Tensors int              `json:"tensors"`
	Params  int64            `json:"params"`
	Bytes   int64            `json:"bytes"`
	DTypes  map[string]int64 `json:"dtypes"` // parameters per stored dtype
	// Tokenizer is set for text encoders: the tokenizer folder, or "" for the
	// built-in CLIP vocabulary.
	Tokenizer *string `json:"tokenizer,omitempty"`
}

// infoReport is the output of `sd info --json`.
type infoReport struct {
	Path                     string          `json:"path"`
	Layout                   string          `json:"layout"`
	ConfigDir                string          `json:"config_dir"` // "" = the family's standard configs
	Family                   string          `json:"family"`
	FamilyName               string          `json:"family_name"`
	Inpaint                  bool            `json:"inpaint"`
	Pipeline                 string          `json:"pipeline"`
	PredictionType           string          `json:"prediction_type"`
	Scheduler                string          `json:"scheduler"`
	ForceZerosForEmptyPrompt bool            `json:"force_zeros_for_empty_prompt"`
	RequiresAestheticsScore  bool            `json:"requires_aesthetics_score"`
	Components               []infoComponent `json:"components"`
	Params                   int64           `json:"params"`
	Bytes                    int64           `json:"bytes"`
	Unused                   []string        `json:"unused"`
	Notes                    []string        `json:"notes"`
}

func runInfo(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "info", "[flags] MODEL (a diffusers folder or a .safetensors/.ckpt file)")
	asJSON := fs.Bool("json", false, "print JSON")
	variant := fs.String("variant", "", `weights variant of a diffusers folder ("fp16")`)
	config := fs.String("config", "", "diffusers folder giving a single file's architecture")
	prediction := fs.String("prediction-type", "", "override the prediction type (epsilon, v_prediction, sample)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("%w: want one MODEL, got %d arguments", errUsage, fs.NArg())
	}
	path, err := resolveModel(ctx, fs.Arg(0), *variant)
	if err != nil {
		return err
	}
	m, err := model.Load(path, model.Options{Variant: *variant, Config: *config, PredictionType: *prediction})
	if err != nil {
		return err
	}
	defer m.Close()
	r := report(m)
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return printInfo(e.stdout, r)
}

func report(m *model.Model) infoReport {
	r := infoReport{
		Path: m.Path, Layout: string(m.Layout), ConfigDir: m.ConfigDir,
		Family: string(m.Family), FamilyName: m.Family.String(), Inpaint: m.Inpaint,
		Pipeline: m.Index.ClassName, PredictionType: m.PredictionType, Scheduler: m.SchedulerClass,
		ForceZerosForEmptyPrompt: m.Index.ForceZerosForEmptyPrompt, RequiresAestheticsScore: m.Index.RequiresAestheticsScore,
		Unused: m.Unused, Notes: m.Notes,
	}
	if r.Unused == nil {
		r.Unused = []string{}
	}
	if r.Notes == nil {
		r.Notes = []string{}
	}
	tokenizers := map[string]string{}
	for _, te := range m.TextEncoders {
		tokenizers[te.Name] = te.Tokenizer
	}
	for _, p := range m.Parts() {
		s := model.WeightStats(p.Weights)
		c := infoComponent{Name: p.Name, Class: p.Class, Files: p.Files, Tensors: s.Tensors, Params: s.Params, Bytes: s.Bytes, DTypes: map[string]int64{}}
		for d, n := range s.DTypes {
			c.DTypes[string(d)] = n
		}
		if tok, ok := tokenizers[p.Name]; ok {
			c.Tokenizer = &tok
		}
		r.Components = append(r.Components, c)
		r.Params += s.Params
		r.Bytes += s.Bytes
	}
	return r
}

func printInfo(w io.Writer, r infoReport) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	layout := "diffusers folder"
	if r.Layout == string(model.SingleFile) {
		layout = "single file"
	}
	arch := r.ConfigDir
	if arch == "" {
		arch = "standard " + r.FamilyName + " configs"
	}
	family := r.FamilyName
	if r.Inpaint {
		family += " (inpainting)"
	}
	fmt.Fprintf(tw, "model\t%s\n", r.Path)
	fmt.Fprintf(tw, "layout\t%s\n", layout)
	fmt.Fprintf(tw, "architecture\t%s\n", arch)
	fmt.Fprintf(tw, "family\t%s\n", family)
	fmt.Fprintf(tw, "pipeline\t%s\n", r.Pipeline)
	fmt.Fprintf(tw, "prediction\t%s\n", r.PredictionType)
	fmt.Fprintf(tw, "scheduler\t%s\n", r.Scheduler)
	if r.ForceZerosForEmptyPrompt {
		fmt.Fprintf(tw, "empty negative prompt\tzeros (force_zeros_for_empty_prompt)\n")
	}
	if r.RequiresAestheticsScore {
		fmt.Fprintf(tw, "conditioning\taesthetic score (requires_aesthetics_score)\n")
	}
	fmt.Fprintf(tw, "parameters\t%s (%s)\n", count(r.Params), size(r.Bytes))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\ncomponents:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range r.Components {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s params\t%s\t%d tensors\n", c.Name, c.Class, dtypes(c.DTypes), count(c.Params), size(c.Bytes), c.Tensors)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nfiles:")
	for _, c := range r.Components {
		fmt.Fprintf(w, "  %s: %s\n", c.Name, strings.Join(c.Files, ", "))
		if c.Tokenizer != nil {
			tok := *c.Tokenizer
			if tok == "" {
				tok = "built-in CLIP vocabulary"
			}
			fmt.Fprintf(w, "  %s tokenizer: %s\n", c.Name, tok)
		}
	}
	if len(r.Unused) > 0 {
		fmt.Fprintf(w, "\nunused tensors: %d\n", len(r.Unused))
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
	return nil
}

// dtypes lists the stored dtypes, the one holding most parameters first.
func dtypes(m map[string]int64) string {
	var d []string
	for k := range m {
		d = append(d, k)
	}
	sort.Slice(d, func(i, j int) bool {
		if m[d[i]] != m[d[j]] {
			return m[d[i]] > m[d[j]]
		}
		return d[i] < d[j]
	})
	return strings.Join(d, "+")
}

// count writes a parameter count as people do: 859.5M, 2.6B.
func count(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

// size writes a byte count in binary units.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.2f %ciB", v, "KMGT"[i])
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/sdgo/sdgo/diffusion/lora"
	"github.com/sdgo/sdgo/diffusion/model"
	"github.com/sdgo/sdgo/diffusion/safetensors"
)

func init() {
	register(command{name: "info", summary: "describe a model (family, components, dtypes, sizes, scheduler) or a LoRA", run: runInfo})
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
	fs := newFlags(e, "info", "[flags] MODEL|LORA (a diffusers folder, a .safetensors/.ckpt file, or a LoRA .safetensors file)")
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
	if l, ok, err := openIfLoRA(fs.Arg(0)); err != nil {
		return err
	} else if ok {
		r := loraReport(l)
		if *asJSON {
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(r)
		}
		return printLoRAInfo(e.stdout, r)
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

// openIfLoRA reads path as a LoRA when it is a .safetensors file of LoRA
// tensors; ok is false for anything else (a model), which is left unread.
func openIfLoRA(path string) (l *lora.LoRA, ok bool, err error) {
	if !strings.EqualFold(filepath.Ext(path), ".safetensors") {
		return nil, false, nil
	}
	if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
		return nil, false, nil
	}
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	if !lora.Detect(f.Names()) {
		return nil, false, nil
	}
	l, err = lora.Parse(path, f)
	return l, true, err
}

// loraModule is one module of `sd info --json` on a LoRA.
type loraModule struct {
	Key       string  `json:"key"`
	Component string  `json:"component"`
	Path      string  `json:"path"`
	Rank      int     `json:"rank"`
	Alpha     float64 `json:"alpha"` // the rank when the file has none
	In        int     `json:"in"`    // input features (times the kernel area for a convolution)
	Out       int     `json:"out"`
	Kernel    []int   `json:"kernel"` // [kh, kw]: [1, 1] for linear layers and 1x1 convolutions
	Tucker    bool    `json:"tucker,omitempty"`
}

// loraInfo is the output of `sd info` on a LoRA.
type loraInfo struct {
	Path       string            `json:"path"`
	Kind       string            `json:"kind"` // "lora"
	Format     string            `json:"format"`
	Family     string            `json:"family"` // "" when the file does not tell
	FamilyName string            `json:"family_name"`
	FamilyFrom string            `json:"family_from"` // the key (or metadata) that tells
	Params     int64             `json:"params"`
	Modules    []loraModule      `json:"modules"`
	Metadata   map[string]string `json:"metadata"`
}

func loraReport(l *lora.LoRA) loraInfo {
	fam, from := l.Family()
	r := loraInfo{Path: l.Name, Kind: "lora", Format: string(l.Format), Family: string(fam), FamilyFrom: from, Metadata: l.Metadata}
	switch comps := l.Components(); {
	case fam != "":
		r.FamilyName = fam.String()
	case slices.Contains(comps, lora.TextEncoder):
		r.FamilyName = "SD 1.x or 2.x (one text encoder; its width does not tell which)"
	default:
		r.FamilyName = "unknown"
	}
	if r.Metadata == nil {
		r.Metadata = map[string]string{}
	}
	for _, m := range l.Modules {
		alpha := float64(m.Rank)
		if m.HasAlpha && m.Alpha != 0 {
			alpha = float64(m.Alpha)
		}
		kernel := []int{1, 1}
		if d := m.Down.Shape; len(d) == 4 {
			kernel = d[2:]
		}
		if m.Mid.Data != nil {
			kernel = m.Mid.Shape[2:]
		}
		r.Modules = append(r.Modules, loraModule{Key: m.Key, Component: m.Component, Path: m.Path, Rank: m.Rank, Alpha: alpha,
			In: m.In(), Out: m.Out(), Kernel: kernel, Tucker: m.Mid.Data != nil})
		r.Params += int64(m.Params())
	}
	return r
}

// tally writes counts as "4 (120), 8 (30)", most frequent first.
func tally[K comparable](m map[K]int, label func(K) string) string {
	type kv struct {
		k K
		n int
	}
	var all []kv
	for k, n := range m {
		all = append(all, kv{k, n})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].n != all[j].n {
			return all[i].n > all[j].n
		}
		return label(all[i].k) < label(all[j].k)
	})
	var parts []string
	for _, e := range all {
		parts = append(parts, fmt.Sprintf("%s (%d)", label(e.k), e.n))
	}
	return strings.Join(parts, ", ")
}

func printLoRAInfo(w io.Writer, r loraInfo) error {
	ranks, alphas, comps, layers, kinds := map[int]int{}, map[float64]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	for _, m := range r.Modules {
		ranks[m.Rank]++
		alphas[m.Alpha]++
		comps[m.Component]++
		layers[layerName(m.Path)]++
		switch {
		case m.Tucker:
			kinds[fmt.Sprintf("LoCon %dx%d (Tucker)", m.Kernel[0], m.Kernel[1])]++
		case m.Kernel[0] != 1 || m.Kernel[1] != 1:
			kinds[fmt.Sprintf("LoCon %dx%d", m.Kernel[0], m.Kernel[1])]++
		default:
			kinds["linear or 1x1"]++
		}
	}
	family := r.FamilyName
	if r.FamilyFrom != "" {
		family += " (from " + r.FamilyFrom + ")"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "lora\t%s\n", r.Path)
	fmt.Fprintf(tw, "format\t%s\n", r.Format)
	fmt.Fprintf(tw, "family\t%s\n", family)
	fmt.Fprintf(tw, "modules\t%d (%s params)\n", len(r.Modules), count(r.Params))
	fmt.Fprintf(tw, "components\t%s\n", tally(comps, func(s string) string { return s }))
	fmt.Fprintf(tw, "ranks\t%s\n", tally(ranks, strconv.Itoa))
	fmt.Fprintf(tw, "alphas\t%s\n", tally(alphas, func(a float64) string { return strconv.FormatFloat(a, 'g', -1, 64) }))
	fmt.Fprintf(tw, "layers\t%s\n", tally(kinds, func(s string) string { return s }))
	fmt.Fprintf(tw, "touches\t%s\n", tally(layers, func(s string) string { return s }))
	for _, k := range []string{"ss_output_name", "ss_base_model_version", "ss_sd_model_name", "modelspec.architecture", "modelspec.title", "ss_network_module"} {
		if v := r.Metadata[k]; v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	fmt.Fprintf(tw, "\t(sd info --json lists every module with its shape)\n")
	return tw.Flush()
}

// layerName is the kind of layer a module path ends in: "attn1.to_q",
// "ff.net.0.proj", "proj_in", "self_attn.q_proj", "mlp.fc1", ...
func layerName(path string) string {
	p := strings.ReplaceAll(path, "_", ".")
	for _, n := range []string{"attn1.to.q", "attn1.to.k", "attn1.to.v", "attn1.to.out.0", "attn2.to.q", "attn2.to.k", "attn2.to.v", "attn2.to.out.0",
		"ff.net.0.proj", "ff.net.2", "proj.in", "proj.out", "self.attn.q.proj", "self.attn.k.proj", "self.attn.v.proj", "self.attn.out.proj",
		"mlp.fc1", "mlp.fc2", "conv1", "conv2", "conv.shortcut", "time.emb.proj", "in.layers.2", "out.layers.3", "emb.layers.1", "skip.connection"} {
		if strings.HasSuffix(p, "."+n) || p == n {
			return strings.NewReplacer("to.", "to_", "proj.", "proj_", "self.attn", "self_attn", "q.proj", "q_proj", "k.proj", "k_proj",
				"v.proj", "v_proj", "out.proj", "out_proj", "conv.shortcut", "conv_shortcut", "time.emb.proj", "time_emb_proj",
				"in.layers", "in_layers", "out.layers", "out_layers", "emb.layers", "emb_layers", "skip.connection", "skip_connection").Replace(n)
		}
	}
	return "other"
}

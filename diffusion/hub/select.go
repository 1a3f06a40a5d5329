package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/sdgo/sdgo/internal/pyjson"
)

// The file names diffusers and transformers give weights:
// diffusion_pytorch_model.safetensors, model.fp16.safetensors,
// model-00001-of-00002.safetensors, model.fp16-00001-of-00002.safetensors,
// pytorch_model.bin, ... and the indexes of sharded ones:
// diffusion_pytorch_model.safetensors.index.json,
// model.safetensors.index.fp16.json.
var (
	weightRe = regexp.MustCompile(`^(diffusion_pytorch_model|model|pytorch_model)(?:\.([A-Za-z0-9_]+))?(-\d{5}-of-\d{5})?\.(safetensors|bin)$`)
	indexRe  = regexp.MustCompile(`^(diffusion_pytorch_model|model|pytorch_model)\.(safetensors|bin)\.index(?:\.([A-Za-z0-9_]+))?\.json$`)
)

// weightFile is a weight file (or shard index) of a component folder.
type weightFile struct {
	path    string
	variant string // "" for the plain weights
	ext     string // "safetensors" or "bin"
	shard   bool   // one shard of several
	index   bool   // a shard index
}

func parseWeight(p string) (weightFile, bool) {
	base := path.Base(p)
	if m := weightRe.FindStringSubmatch(base); m != nil {
		return weightFile{path: p, variant: m[2], ext: m[4], shard: m[3] != ""}, true
	}
	if m := indexRe.FindStringSubmatch(base); m != nil {
		return weightFile{path: p, variant: m[3], ext: m[2], index: true}, true
	}
	return weightFile{}, false
}

// isWeightExt reports whether ext is a weight format: a component folder's
// files in these formats but not named as diffusers and transformers name
// weights (flax, ONNX, TF, single-file checkpoints) are not fetched.
func isWeightExt(ext string) bool {
	switch ext {
	case ".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".h5", ".onnx", ".onnx_data", ".pb", ".gguf", ".tflite", ".ot":
		return true
	}
	return false
}

// isDocExt reports whether ext is a document, image or code, which a
// pipeline does not load.
func isDocExt(ext string) bool {
	switch ext {
	case ".md", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".mp4", ".pdf", ".ipynb", ".py":
		return true
	}
	return false
}

func extOf(p string) string { return strings.ToLower(path.Ext(p)) }

// skipped reports whether a non-weight-named file of a component is left out.
func skipped(p string) bool {
	return strings.HasPrefix(path.Base(p), ".") || isWeightExt(extOf(p)) || isDocExt(extOf(p))
}

// selection decides which files of a repository to fetch. load returns the
// contents of the given files (online, it downloads them first); it is used
// for model_index.json and the shard indexes.
type selection struct {
	repo   string
	opts   Options
	files  map[string]treeEntry
	load   func(paths []string) ([][]byte, error)
	warn   func(msg string, args ...any)
	chosen map[string]bool
}

// selectFiles returns the sorted paths to fetch; see Snapshot for the rules.
func selectFiles(repo string, tree []treeEntry, o Options, load func([]string) ([][]byte, error), warn func(string, ...any)) ([]string, error) {
	s := &selection{repo: repo, opts: o, files: map[string]treeEntry{}, load: load, warn: warn, chosen: map[string]bool{}}
	for _, e := range tree {
		s.files[e.Path] = e
	}
	include, err := compileGlobs(o.Include)
	if err != nil {
		return nil, err
	}
	exclude, err := compileGlobs(o.Exclude)
	if err != nil {
		return nil, err
	}
	switch {
	case o.All:
		for p := range s.files {
			s.chosen[p] = true
		}
	case len(include) > 0:
		for p := range s.files {
			if matchAny(include, p) {
				s.chosen[p] = true
			}
		}
		if len(s.chosen) == 0 {
			return nil, fmt.Errorf("hub: no file of %s matches %s; it has %s", repo, strings.Join(o.Include, " or "), s.listing(false))
		}
	default:
		if err := s.auto(); err != nil {
			return nil, err
		}
	}
	var out []string
	for p := range s.chosen {
		if !matchAny(exclude, p) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("hub: nothing of %s left to fetch after excluding %s", repo, strings.Join(o.Exclude, ", "))
	}
	slices.Sort(out)
	return out, nil
}

// auto selects what a diffusers pipeline loads: model_index.json and, for
// each component it names, the folder's configs and tokenizer files and its
// weights (safetensors over .bin, the variant if asked for and present, a
// shard index with its shards). A repository without model_index.json but
// with a config.json at its root is one component (a lone UNet or VAE).
func (s *selection) auto() error {
	var comps []string
	if _, ok := s.files["model_index.json"]; ok {
		data, err := s.load([]string{"model_index.json"})
		if err != nil {
			return err
		}
		comps, err = components(data[0])
		if err != nil {
			return fmt.Errorf("hub: %s model_index.json: %w", s.repo, err)
		}
		s.chosen["model_index.json"] = true
	} else if _, ok := s.files["config.json"]; ok {
		comps = []string{""}
	} else {
		return fmt.Errorf("hub: %s has no model_index.json, so it is not a diffusers pipeline: choose files with --include (Options.Include), or take everything with --all; it has %s", s.repo, s.listing(true))
	}
	var indexes []string
	for _, c := range comps {
		idx, err := s.component(c)
		if err != nil {
			return err
		}
		indexes = append(indexes, idx...)
	}
	if len(indexes) == 0 {
		return nil
	}
	data, err := s.load(indexes)
	if err != nil {
		return err
	}
	for i, idx := range indexes {
		var index struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(data[i], &index); err != nil {
			return fmt.Errorf("hub: %s %s: %w", s.repo, idx, err)
		}
		if len(index.WeightMap) == 0 {
			return fmt.Errorf("hub: %s %s: no weight_map", s.repo, idx)
		}
		for _, shard := range index.WeightMap {
			p := path.Join(path.Dir(idx), shard)
			if checkRelPath(shard) != nil || strings.Contains(shard, "/") {
				return fmt.Errorf("hub: %s %s names shard %q, which is not a file name", s.repo, idx, shard)
			}
			if _, ok := s.files[p]; !ok {
				return fmt.Errorf("hub: %s %s names shard %s, which the repository does not have", s.repo, idx, p)
			}
			s.chosen[p] = true
		}
	}
	return nil
}

// components returns the component folders model_index.json names: the keys
// whose value is a [library, class] pair with both set (diffusers writes
// [null, null] for a component left out, as safety_checker often is). The
// safety checker and its feature extractor are skipped: sdgo never runs them,
// and the checker alone is 1.2 GB (--include or --all still fetch them).
func components(data []byte) ([]string, error) {
	var raw map[string]json.RawMessage
	if err := pyjson.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	var out []string
	for k, v := range raw {
		if strings.HasPrefix(k, "_") || k == "safety_checker" || k == "feature_extractor" {
			continue
		}
		var pair []*string
		if json.Unmarshal(v, &pair) != nil || len(pair) != 2 || pair[0] == nil || pair[1] == nil {
			continue
		}
		if checkRelPath(k) != nil || strings.Contains(k, "/") {
			return nil, fmt.Errorf("component %q is not a folder name", k)
		}
		out = append(out, k)
	}
	slices.Sort(out)
	return out, nil
}

// component selects the files of one component folder ("" for the root) and
// returns the shard indexes among them, whose shards are still to be added.
func (s *selection) component(dir string) (indexes []string, err error) {
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	var weights []weightFile
	n := 0
	for p := range s.files {
		rel, ok := strings.CutPrefix(p, prefix)
		if !ok {
			continue
		}
		n++
		nested := strings.Contains(rel, "/")
		if dir == "" && nested {
			continue // the root component is the top-level files only
		}
		if w, ok := parseWeight(p); ok && !nested {
			weights = append(weights, w)
			continue
		}
		if !skipped(p) {
			s.chosen[p] = true
		}
	}
	if n == 0 {
		s.warn("hub: model_index.json names a component the repository has no folder for", "repo", s.repo, "component", dir)
		return nil, nil
	}
	if len(weights) == 0 {
		return nil, nil // a tokenizer, scheduler or feature extractor
	}
	ext := "bin"
	for _, w := range weights {
		if w.ext == "safetensors" {
			ext = "safetensors"
		}
	}
	have := map[string]bool{}
	for _, w := range weights {
		if w.ext == ext {
			have[w.variant] = true
		}
	}
	variant := s.opts.Variant
	switch {
	case variant != "" && have[variant]:
	case have[""]:
		variant = ""
	default:
		var vs []string
		for v := range have {
			vs = append(vs, v)
		}
		slices.Sort(vs)
		name := dir
		if name == "" {
			name = "(root)"
		}
		if variant != "" {
			return nil, fmt.Errorf("hub: %s component %s has neither %s nor plain .%s weights, only the variants %s", s.repo, name, variant, ext, strings.Join(vs, ", "))
		}
		return nil, fmt.Errorf("hub: %s component %s has only variant weights (%s): choose one with --variant %s (Options.Variant)", s.repo, name, strings.Join(vs, ", "), vs[0])
	}
	var singles, shards []string
	for _, w := range weights {
		if w.ext != ext || w.variant != variant {
			continue
		}
		switch {
		case w.index:
			indexes = append(indexes, w.path)
		case w.shard:
			shards = append(shards, w.path)
		default:
			singles = append(singles, w.path)
		}
	}
	slices.Sort(indexes)
	switch {
	case len(indexes) > 0:
		for _, p := range indexes {
			s.chosen[p] = true
		}
	case len(singles) > 0:
		for _, p := range singles {
			s.chosen[p] = true
		}
	default: // shards without an index: take them all
		for _, p := range shards {
			s.chosen[p] = true
		}
	}
	return indexes, nil
}

// listing describes the repository's files for an error message: its weight
// files (or all files) with sizes, at most 12.
func (s *selection) listing(weightsOnly bool) string {
	var ps []string
	for p := range s.files {
		if weightsOnly && !isWeightExt(extOf(p)) {
			continue
		}
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		if weightsOnly {
			return "no weight files"
		}
		return "no files"
	}
	slices.Sort(ps)
	var b strings.Builder
	for i, p := range ps {
		if i == 12 {
			fmt.Fprintf(&b, ", and %d more", len(ps)-12)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (%s)", p, FormatBytes(s.files[p].Size))
	}
	return b.String()
}

// FormatBytes writes a byte count for people: "512 B", "1.5 kB", "2.13 GB"
// (powers of 1000, as the Hub's pages show sizes).
func FormatBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"kB", "MB", "GB", "TB"} {
		f /= unit
		if f < unit || u == "TB" {
			switch {
			case f < 10:
				return fmt.Sprintf("%.2f %s", f, u)
			case f < 100:
				return fmt.Sprintf("%.1f %s", f, u)
			}
			return fmt.Sprintf("%.0f %s", f, u)
		}
	}
	panic("unreachable")
}

// glob is a compiled fnmatch pattern.
type glob = *regexp.Regexp

// compileGlobs compiles patterns with the semantics of huggingface_hub's
// filter_repo_objects (Python's fnmatchcase): '*' matches any run of
// characters, '/' included; '?' one character; [seq] and [!seq] a class;
// backslashes are separators; a pattern ending in '/' matches everything
// under it.
func compileGlobs(patterns []string) ([]glob, error) {
	var out []glob
	for _, p := range patterns {
		if p == "" {
			return nil, errors.New("hub: empty file pattern")
		}
		q := strings.ReplaceAll(p, `\`, "/")
		if strings.HasSuffix(q, "/") {
			q += "*"
		}
		re, err := regexp.Compile(translateGlob(q))
		if err != nil {
			return nil, fmt.Errorf("hub: file pattern %q: %w", p, err)
		}
		out = append(out, re)
	}
	return out, nil
}

func translateGlob(p string) string {
	var b strings.Builder
	b.WriteString(`^(?s:`)
	var lit []byte
	flush := func() {
		b.WriteString(regexp.QuoteMeta(string(lit)))
		lit = lit[:0]
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '*' && c != '?' && c != '[' {
			lit = append(lit, c)
			continue
		}
		flush()
		switch c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '[':
			j := i + 1
			if j < len(p) && p[j] == '!' {
				j++
			}
			if j < len(p) && p[j] == ']' {
				j++
			}
			for j < len(p) && p[j] != ']' {
				j++
			}
			if j >= len(p) {
				b.WriteString(`\[`) // no closing ']': a literal '['
				continue
			}
			class := p[i+1 : j]
			i = j
			neg := strings.HasPrefix(class, "!")
			if neg {
				class = class[1:]
			}
			b.WriteString("[")
			if neg {
				b.WriteString("^")
			}
			for k := 0; k < len(class); k++ {
				if ch := class[k]; ch == '\\' || ch == '[' || ch == ']' || (ch == '^' && k == 0) {
					b.WriteByte('\\')
				}
				b.WriteByte(class[k])
			}
			b.WriteString("]")
		}
	}
	flush()
	b.WriteString(`)$`)
	return b.String()
}

func matchAny(gs []glob, p string) bool {
	for _, g := range gs {
		if g.MatchString(p) {
			return true
		}
	}
	return false
}

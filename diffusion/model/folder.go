package model

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/sdgo/sdgo/diffusion/clip"
	"github.com/sdgo/sdgo/diffusion/unet"
	"github.com/sdgo/sdgo/diffusion/vae"
	"github.com/sdgo/sdgo/diffusion/weights"
	"github.com/sdgo/sdgo/internal/pyjson"
)

// arch is a model's architecture without its weights: what a diffusers
// folder's configs say, or a family's standard configs.
type arch struct {
	dir            string // the folder it was read from; "" for standard configs
	index          ModelIndex
	unet           unet.Config
	vae            vae.Config
	texts          []TextEncoder // without weights
	schedulerClass string
	scheduler      []byte
	prediction     string // the scheduler config's prediction_type (default epsilon)
	family         Family
	inpaint        bool
}

// textComponents lists the text encoder components and their tokenizers.
func textComponents() []struct{ encoder, tokenizer string } {
	return []struct{ encoder, tokenizer string }{
		{"text_encoder", "tokenizer"},
		{"text_encoder_2", "tokenizer_2"},
	}
}

// readArch reads a diffusers folder's model_index.json and configs.
func readArch(dir string) (*arch, error) {
	idx, err := LoadModelIndex(filepath.Join(dir, "model_index.json"))
	if err != nil {
		return nil, err
	}
	a := &arch{dir: dir, index: idx}
	// need checks that a component is listed, of an expected class, and present.
	need := func(name string, classes ...string) (Component, error) {
		c, ok := idx.Components[name]
		if !ok {
			return c, fmt.Errorf("%s: model_index.json lists no %s component", dir, name)
		}
		if len(classes) > 0 && !slices.Contains(classes, c.Class) {
			return c, fmt.Errorf("%s: model_index.json: component %s is a %s; want %s", dir, name, c.Class, strings.Join(classes, " or "))
		}
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err != nil || !st.IsDir() {
			return c, fmt.Errorf("%s: component %s (%s) is listed in model_index.json but its folder is missing", p, name, c.Class)
		}
		return c, nil
	}
	if _, err := need("unet", unet.ClassName); err != nil {
		return nil, err
	}
	if a.unet, err = unet.LoadConfig(filepath.Join(dir, "unet", "config.json")); err != nil {
		return nil, err
	}
	if _, err := need("vae", vae.ClassName); err != nil {
		return nil, err
	}
	if a.vae, err = vae.LoadConfig(filepath.Join(dir, "vae", "config.json")); err != nil {
		return nil, err
	}
	sc, err := need("scheduler")
	if err != nil {
		return nil, err
	}
	scPath := filepath.Join(dir, "scheduler", "scheduler_config.json")
	if a.scheduler, err = os.ReadFile(scPath); err != nil {
		return nil, fmt.Errorf("scheduler config: %w", err)
	}
	var s struct {
		ClassName      string `json:"_class_name"`
		PredictionType string `json:"prediction_type"`
	}
	if err := pyjson.Unmarshal(a.scheduler, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", scPath, err)
	}
	a.schedulerClass, a.prediction = s.ClassName, s.PredictionType
	if a.schedulerClass == "" {
		a.schedulerClass = sc.Class
	}
	if a.prediction == "" {
		a.prediction = Epsilon
	}
	for _, tc := range textComponents() {
		if !idx.Has(tc.encoder) {
			continue
		}
		c, err := need(tc.encoder, "CLIPTextModel", "CLIPTextModelWithProjection")
		if err != nil {
			return nil, err
		}
		cfg, err := clip.LoadConfig(filepath.Join(dir, tc.encoder, "config.json"))
		if err != nil {
			return nil, fmt.Errorf("text encoder config: %w", err)
		}
		if c.Class == "CLIPTextModelWithProjection" && !cfg.WithProjection() {
			cfg.Architectures = append(cfg.Architectures, c.Class)
			if err := cfg.Validate(); err != nil {
				return nil, fmt.Errorf("%s: %w", filepath.Join(dir, tc.encoder, "config.json"), err)
			}
		}
		te := TextEncoder{Name: tc.encoder, Class: c.Class, Config: cfg}
		if idx.Has(tc.tokenizer) {
			if _, err := need(tc.tokenizer); err != nil {
				return nil, err
			}
			te.Tokenizer = filepath.Join(dir, tc.tokenizer)
		}
		a.texts = append(a.texts, te)
	}
	if len(a.texts) == 0 {
		return nil, fmt.Errorf("%s: model_index.json lists no text_encoder or text_encoder_2 component", dir)
	}
	// The family: SDXL pipelines have a second text encoder (the refiner only
	// that one); SD 2.x conditions on OpenCLIP, whose activation is gelu where
	// OpenAI CLIP's (SD 1.x) is quick_gelu.
	switch {
	case idx.Has("text_encoder_2") || strings.Contains(idx.ClassName, "XL"):
		if !idx.Has("text_encoder_2") {
			return nil, fmt.Errorf("%s: %s lists no text_encoder_2 component", dir, idx.ClassName)
		}
		a.family = SDXL
		if !idx.Has("text_encoder") {
			a.family = SDXLRefiner
		}
	case a.texts[0].Config.HiddenAct == "gelu":
		a.family = SD2
	default:
		a.family = SD1
	}
	a.inpaint = a.unet.InChannels == 9
	return a, nil
}

// loadFolder loads a diffusers folder.
func loadFolder(dir string, opts Options) (_ *Model, err error) {
	a, err := readArch(dir)
	if err != nil {
		return nil, err
	}
	m := newModel(dir, Folder, a)
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	src, err := m.openComponent(dir, "unet", opts)
	if err != nil {
		return nil, err
	}
	m.UNetWeights = src
	if src, err = m.openComponent(dir, "vae", opts); err != nil {
		return nil, err
	}
	// diffusers < 0.14 saved the VAE's mid attention as query/key/value/proj_attn.
	if m.VAEWeights, err = renamed(src, describeFiles(m.files["vae"]), vaeCurrentName); err != nil {
		src.Close()
		return nil, err
	}
	for i := range m.TextEncoders {
		te := &m.TextEncoders[i]
		if src, err = m.openComponent(dir, te.Name, opts); err != nil {
			return nil, err
		}
		// transformers 5 writes CLIPTextModel without the text_model. root.
		if te.Weights, err = renamed(src, describeFiles(m.files[te.Name]), textCanonicalName); err != nil {
			src.Close()
			return nil, err
		}
	}
	if err := m.finish(a, opts); err != nil {
		return nil, err
	}
	return m, nil
}

// newModel makes a Model of an architecture, without weights.
func newModel(path string, layout Layout, a *arch) *Model {
	m := &Model{
		Path: path, Layout: layout, ConfigDir: a.dir, Family: a.family, Inpaint: a.inpaint,
		Index: a.index, UNet: a.unet, VAE: a.vae, SchedulerClass: a.schedulerClass,
		SchedulerConfig: a.scheduler, files: map[string][]string{},
	}
	m.TextEncoders = slices.Clone(a.texts)
	return m
}

// finish checks the weights against the configs and settles the prediction type.
func (m *Model) finish(a *arch, opts Options) error {
	if err := checkUNet(m.UNetWeights, m.UNet, describeFiles(m.files["unet"])); err != nil {
		return err
	}
	if err := checkVAE(m.VAEWeights, m.VAE, describeFiles(m.files["vae"])); err != nil {
		return err
	}
	for _, te := range m.TextEncoders {
		if err := checkText(te.Weights, te.Config, describeFiles(m.files[te.Name]), te.Name); err != nil {
			return err
		}
	}
	m.PredictionType = a.prediction
	if opts.PredictionType != "" && opts.PredictionType != a.prediction {
		b, err := setPredictionType(m.SchedulerConfig, opts.PredictionType)
		if err != nil {
			return fmt.Errorf("scheduler config: %w", err)
		}
		m.SchedulerConfig = b
		m.PredictionType = opts.PredictionType
		m.Notes = append(m.Notes, fmt.Sprintf("prediction type %s as asked (the scheduler config says %s)", opts.PredictionType, a.prediction))
	}
	return nil
}

// textCanonicalName gives a text encoder tensor its name in the Hub layout:
// under text_model., except the projection of CLIPTextModelWithProjection.
func textCanonicalName(n string) string {
	if strings.HasPrefix(n, "text_model.") || n == "text_projection.weight" {
		return n
	}
	return "text_model." + n
}

// vaeCurrentName renames the mid-block attention of VAEs saved by diffusers
// before 0.14 (query, key, value, proj_attn) to today's names.
func vaeCurrentName(n string) string {
	for _, r := range [...][2]string{{".query.", ".to_q."}, {".key.", ".to_k."}, {".value.", ".to_v."}, {".proj_attn.", ".to_out.0."}} {
		if strings.Contains(n, ".mid_block.attentions.") && strings.Contains(n, r[0]) {
			return strings.Replace(n, r[0], r[1], 1)
		}
	}
	return n
}

// weightCandidates lists the weight files a component folder may hold, in the
// order diffusers prefers them, for a variant ("" for none).
func weightCandidates(variant string) []string {
	v := ""
	if variant != "" {
		v = "." + variant
	}
	var c []string
	for _, base := range []string{"diffusion_pytorch_model", "model"} {
		c = append(c, base+v+".safetensors", base+".safetensors.index"+v+".json")
	}
	for _, base := range []string{"diffusion_pytorch_model", "pytorch_model"} {
		c = append(c, base+v+".bin", base+".bin.index"+v+".json")
	}
	return c
}

// openComponent finds and opens the weights of a component folder, recording
// the files it reads.
func (m *Model) openComponent(dir, name string, opts Options) (weights.Source, error) {
	cdir := filepath.Join(dir, name)
	find := func(variant string) string {
		for _, f := range weightCandidates(variant) {
			if st, err := os.Stat(filepath.Join(cdir, f)); err == nil && !st.IsDir() {
				return f
			}
		}
		return ""
	}
	file := ""
	if opts.Variant != "" {
		if file = find(opts.Variant); file == "" {
			if file = find(""); file != "" {
				m.Notes = append(m.Notes, fmt.Sprintf("%s: no %q variant in %s; using %s", name, opts.Variant, cdir, file))
			}
		}
	} else {
		file = find("")
	}
	if file == "" {
		return nil, missingWeights(cdir, name, opts.Variant)
	}
	path := filepath.Join(cdir, file)
	if strings.HasSuffix(file, ".json") {
		src, files, err := openSharded(path, opts)
		if err != nil {
			return nil, err
		}
		m.files[name] = files
		return src, nil
	}
	src, err := openWeights(path, opts)
	if err != nil {
		return nil, err
	}
	m.files[name] = []string{path}
	return src, nil
}

// missingWeights explains why a component folder has no usable weights.
func missingWeights(cdir, name, variant string) error {
	ents, _ := os.ReadDir(cdir)
	var found []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, ".safetensors") || strings.HasSuffix(n, ".bin") || (strings.Contains(n, ".index.") && strings.HasSuffix(n, ".json")) {
			found = append(found, n)
		}
	}
	want := weightCandidates(variant)
	if len(found) > 0 {
		return fmt.Errorf("%s: no weights for component %s: want one of %s, found only %s (another variant? set Options.Variant)",
			cdir, name, strings.Join(want, ", "), strings.Join(found, ", "))
	}
	return fmt.Errorf("%s: no weights for component %s: want one of %s", cdir, name, strings.Join(want, ", "))
}

// openSharded opens a sharded checkpoint through its index
// (*.safetensors.index.json, or *.bin.index.json for pickles), checking that
// each tensor is in the shard the index names.
func openSharded(indexPath string, opts Options) (weights.Source, []string, error) {
	b, err := os.ReadFile(indexPath)
	if err != nil {
		return nil, nil, fmt.Errorf("sharded weights: %w", err)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := pyjson.Unmarshal(b, &idx); err != nil {
		return nil, nil, fmt.Errorf("%s: not a weights index: %w", indexPath, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, nil, fmt.Errorf("%s: no weight_map: not a weights index", indexPath)
	}
	dir := filepath.Dir(indexPath)
	var shards []string
	for key, s := range idx.WeightMap {
		if s == "" || s != filepath.Base(s) || s == "." || s == ".." {
			return nil, nil, fmt.Errorf("%s: weight_map puts %q in %q, which is not a file of this folder", indexPath, key, s)
		}
		if !slices.Contains(shards, s) {
			shards = append(shards, s)
		}
	}
	sort.Strings(shards)
	var srcs []weights.Source
	var paths []string
	closeAll := func() {
		for _, s := range srcs {
			s.Close()
		}
	}
	for _, s := range shards {
		p := filepath.Join(dir, s)
		src, err := openWeights(p, opts)
		if err != nil {
			closeAll()
			if errors.Is(err, os.ErrNotExist) {
				return nil, nil, fmt.Errorf("%s names shard %s, which is missing: %w", indexPath, s, err)
			}
			return nil, nil, err
		}
		srcs = append(srcs, src)
		paths = append(paths, p)
	}
	for key, s := range idx.WeightMap {
		i := slices.Index(shards, s)
		if _, ok := srcs[i].Info(key); !ok {
			closeAll()
			return nil, nil, fmt.Errorf("%s: weight_map puts %q in %s, which has no such tensor", indexPath, key, s)
		}
	}
	u, err := newUnion(paths, srcs)
	if err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("%s: %w", indexPath, err)
	}
	return u, paths, nil
}

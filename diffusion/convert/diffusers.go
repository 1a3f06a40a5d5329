package convert

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sdgo/sdgo/diffusion/model"
	"github.com/sdgo/sdgo/diffusion/safetensors"
)

// folderPart is one component of a diffusers folder and its weights.
type folderPart struct {
	name, file string
	recipes    []recipe
	infos      []safetensors.Info
}

// ToDiffusers writes m as a diffusers folder at dst (see the package
// documentation for its layout). The configs are m's (the source folder's
// config.json files, with every key the engine reads rewritten from the
// parsed configs, or the family's standard configs), the scheduler config is
// m.SchedulerConfig, and model_index.json lists exactly the components
// written. Text encoders without a tokenizer folder (single files) get the
// built-in CLIP vocabulary, padding with <|endoftext|> for CLIP ViT-L and
// with "!" for the OpenCLIP encoders.
//
// dst must not exist unless opts.Force is set; its folder must. m stays open.
func ToDiffusers(ctx context.Context, m *model.Model, dst string, opts Options) (*Result, error) {
	dt, err := opts.check()
	if err != nil {
		return nil, err
	}
	if err := checkModel(m); err != nil {
		return nil, err
	}
	if dst != "" {
		dst = filepath.Clean(dst)
	}
	exists, err := checkDst(m, dst, true, opts.Force)
	if err != nil {
		return nil, err
	}
	res := &Result{Path: dst}
	noteUnused(m, res)
	w := newWriter(ctx, dt, opts, res)
	// The plan: every component's tensors under their own names.
	var parts []*folderPart
	for _, p := range m.Parts() {
		fp := &folderPart{name: p.Name, file: "diffusion_pytorch_model.safetensors"}
		if p.Name != "unet" && p.Name != "vae" {
			fp.file = "model.safetensors"
		}
		for _, n := range p.Weights.Names() {
			r, err := identity(p.Weights, n)
			if err != nil {
				return nil, fmt.Errorf("convert: %s: %s: %w", m.Path, p.Name, err)
			}
			fp.recipes = append(fp.recipes, r)
		}
		if fp.infos, err = w.layout(fp.recipes); err != nil {
			return nil, fmt.Errorf("convert: %s: %s: %w", m.Path, p.Name, err)
		}
		w.total += len(fp.recipes)
		parts = append(parts, fp)
	}

	tmp, err := os.MkdirTemp(filepath.Dir(dst), tempName(dst))
	if err != nil {
		return nil, fmt.Errorf("convert: cannot write %s: %w", dst, err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	fail := func(what string, err error) (*Result, error) {
		return nil, fmt.Errorf("convert: writing %s: %s: %w", dst, what, err)
	}

	// The small files first: a config that cannot be written fails at once.
	tokClass := map[string]string{}
	for _, te := range m.TextEncoders {
		tok := tokenizerOf(te.Name)
		class, err := writeTokenizer(m, te, filepath.Join(tmp, tok), res)
		if err != nil {
			return fail(tok, err)
		}
		tokClass[tok] = class
	}
	if err := writeJSON(filepath.Join(tmp, "scheduler", "scheduler_config.json"), m.SchedulerConfig); err != nil {
		return fail("scheduler/scheduler_config.json", err)
	}
	for _, fp := range parts {
		var cfg []byte
		switch fp.name {
		case "unet":
			cfg, err = componentConfig(m, "unet", m.UNet)
		case "vae":
			cfg, err = componentConfig(m, "vae", m.VAE)
		default:
			for _, te := range m.TextEncoders {
				if te.Name == fp.name {
					cfg, err = textConfig(m, te, dominant(fp.infos))
				}
			}
		}
		if err == nil {
			err = writeJSON(filepath.Join(tmp, fp.name, "config.json"), cfg)
		}
		if err != nil {
			return fail(fp.name+"/config.json", err)
		}
	}
	idx, err := modelIndex(m, tokClass)
	if err == nil {
		err = writeJSON(filepath.Join(tmp, "model_index.json"), idx)
	}
	if err != nil {
		return fail("model_index.json", err)
	}

	for _, fp := range parts {
		rel := filepath.Join(fp.name, fp.file)
		if err := w.writeFile(filepath.Join(tmp, rel), fp.recipes, fp.infos); err != nil {
			return fail(rel, err)
		}
		res.Files = append(res.Files, filepath.Join(dst, rel))
	}
	if err := commitFolder(tmp, dst, exists, res); err != nil {
		return nil, err
	}
	done = true
	return res, nil
}

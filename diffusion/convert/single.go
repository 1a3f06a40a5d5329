package convert

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/sdgo/sdgo/diffusion/model"
	"github.com/sdgo/sdgo/diffusion/weights"
)

// ToSingleFile writes m as one .safetensors checkpoint at dst, in the original
// layout of its family, as A1111 and ComfyUI read them:
//
//   - UNet under model.diffusion_model. (LDM input_blocks / middle_block /
//     output_blocks; SDXL's label_emb);
//   - VAE under first_stage_model., its mid attention's weights as 1x1
//     convolutions;
//   - SD 1.x's text encoder under cond_stage_model.transformer.text_model.;
//     SD 2.x's as OpenCLIP under cond_stage_model.model. (resblocks, fused
//     attn.in_proj_weight/bias); SDXL's under
//     conditioner.embedders.0.transformer.text_model. and, in OpenCLIP layout,
//     conditioner.embedders.1.model. with text_projection a bare transposed
//     tensor (the refiner's OpenCLIP encoder under conditioner.embedders.0.model.).
//
// model.Load of the file, given m's configs, presents the same tensors as m.
// A single file carries no configs, tokenizers or scheduler: the family's
// standard ones apply when it is loaded, unless a config folder is given.
// transformers' position_ids buffer has no place in the OpenCLIP layout and is
// left out (with a note).
//
// dst must end in .safetensors and must not exist unless opts.Force is set.
// m stays open.
func ToSingleFile(ctx context.Context, m *model.Model, dst string, opts Options) (*Result, error) {
	dt, err := opts.check()
	if err != nil {
		return nil, err
	}
	if err := checkModel(m); err != nil {
		return nil, err
	}
	dst = filepath.Clean(dst)
	if filepath.Ext(dst) != ".safetensors" {
		return nil, fmt.Errorf("convert: %s: a single file is written as .safetensors (want a name ending in .safetensors)", dst)
	}
	exists, err := checkDst(m, dst, false, opts.Force)
	if err != nil {
		return nil, err
	}
	res := &Result{Path: dst}
	noteUnused(m, res)
	rs, err := singleRecipes(m, res)
	if err != nil {
		return nil, fmt.Errorf("convert: %s: %w", m.Path, err)
	}
	w := newWriter(ctx, dt, opts, res)
	infos, err := w.layout(rs)
	if err != nil {
		return nil, fmt.Errorf("convert: %s: %w", m.Path, err)
	}
	w.total = len(rs)

	tmp, err := os.CreateTemp(filepath.Dir(dst), tempName(dst)+"*")
	if err != nil {
		return nil, fmt.Errorf("convert: cannot write %s: %w", dst, err)
	}
	tmpName := tmp.Name()
	done := false
	defer func() {
		if !done {
			os.Remove(tmpName)
		}
	}()
	err = tmp.Chmod(0o644)
	if err == nil {
		err = w.writeTo(tmp, rs, infos)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("convert: writing %s: %w", dst, err)
	}
	if err := commitFile(tmpName, dst, exists); err != nil {
		return nil, err
	}
	done = true
	res.Files = []string{dst}
	return res, nil
}

// singleRecipes maps every tensor of m onto its single-file key.
func singleRecipes(m *model.Model, res *Result) ([]recipe, error) {
	var rs []recipe
	owner := map[string]string{} // output key -> the component tensor it comes from
	add := func(component string, r recipe) error {
		if prev, dup := owner[r.name]; dup {
			return fmt.Errorf("%s tensor %q and %s both map to %q", component, r.from[0], prev, r.name)
		}
		owner[r.name] = component + " tensor " + fmt.Sprintf("%q", r.from[0])
		rs = append(rs, r)
		return nil
	}

	layout := layoutOf(m.UNet)
	for _, n := range m.UNetWeights.Names() {
		key, err := ldmUNetKey(n, m.UNet, layout)
		if err != nil {
			return nil, fmt.Errorf("unet tensor %q: %v (no place for it in the single-file layout)", n, err)
		}
		r, err := identity(m.UNetWeights, n)
		if err != nil {
			return nil, err
		}
		r.name = prefixUNet + key
		if err := add("unet", r); err != nil {
			return nil, err
		}
	}

	for _, n := range m.VAEWeights.Names() {
		key, reshape, err := ldmVAEKey(n, m.VAE)
		if err != nil {
			return nil, fmt.Errorf("vae tensor %q: %v (no place for it in the single-file layout)", n, err)
		}
		r, err := identity(m.VAEWeights, n)
		if err != nil {
			return nil, err
		}
		r.name = prefixVAE + key
		if reshape {
			if len(r.shape) != 2 {
				return nil, fmt.Errorf("vae tensor %q has shape %v; want a matrix, the weight of a linear layer", n, r.shape)
			}
			r.shape = []int{r.shape[0], r.shape[1], 1, 1}
		}
		if err := add("vae", r); err != nil {
			return nil, err
		}
	}

	for _, te := range m.TextEncoders {
		spec, ok := textSpecOf(m.Family, te.Name)
		if !ok {
			return nil, fmt.Errorf("a %s model has no %s in the single-file layout", m.Family, te.Name)
		}
		if !spec.openCLIP {
			for _, n := range te.Weights.Names() {
				r, err := identity(te.Weights, n)
				if err != nil {
					return nil, err
				}
				r.name = spec.prefix + n
				if err := add(te.Name, r); err != nil {
					return nil, err
				}
			}
			continue
		}
		more, err := openCLIPRecipes(te, spec.prefix, res)
		if err != nil {
			return nil, err
		}
		for _, r := range more {
			if err := add(te.Name, r); err != nil {
				return nil, err
			}
		}
	}
	return rs, nil
}

// openCLIPRecipes maps a text encoder onto OpenCLIP's keys, fusing each
// layer's q, k and v projections into in_proj.
func openCLIPRecipes(te model.TextEncoder, prefix string, res *Result) ([]recipe, error) {
	src := te.Weights
	var rs []recipe
	fused := map[string]*[3]string{} // in_proj key -> q, k, v names
	for _, n := range src.Names() {
		key, part, transpose, skip, err := openCLIPKey(n)
		if err != nil {
			return nil, fmt.Errorf("%s tensor %q: %v (no place for it in the OpenCLIP layout)", te.Name, n, err)
		}
		if skip {
			res.Notes = append(res.Notes, fmt.Sprintf("%s: %q has no place in the OpenCLIP layout and is left out", te.Name, n))
			continue
		}
		if part >= 0 {
			f := fused[key]
			if f == nil {
				f = &[3]string{}
				fused[key] = f
			}
			f[part] = n
			continue
		}
		r, err := identity(src, n)
		if err != nil {
			return nil, err
		}
		r.name = prefix + key
		if transpose {
			if len(r.shape) != 2 {
				return nil, fmt.Errorf("%s tensor %q has shape %v; want a matrix", te.Name, n, r.shape)
			}
			r.transpose = true
			r.shape = []int{r.shape[1], r.shape[0]}
		}
		rs = append(rs, r)
	}
	keys := make([]string, 0, len(fused))
	for k := range fused {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		names := fused[key]
		var infos [3]weights.Info
		for i, n := range names {
			if n == "" {
				have := slices.DeleteFunc(slices.Clone(names[:]), func(s string) bool { return s == "" })
				return nil, fmt.Errorf("%s: %s needs q, k and v projections; only %q are there", te.Name, key, have)
			}
			infos[i], _ = src.Info(n)
		}
		for i := 1; i < 3; i++ {
			if infos[i].DType != infos[0].DType || !slices.Equal(infos[i].Shape, infos[0].Shape) {
				return nil, fmt.Errorf("%s: %q is %s%v but %q is %s%v: the projections fused into %s must match",
					te.Name, names[0], infos[0].DType, infos[0].Shape, names[i], infos[i].DType, infos[i].Shape, key)
			}
		}
		s := infos[0].Shape
		if len(s) == 0 || len(s) > 2 {
			return nil, fmt.Errorf("%s: %q has shape %v; want a vector or a matrix", te.Name, names[0], s)
		}
		shape := slices.Clone(s)
		shape[0] *= 3
		rs = append(rs, recipe{name: prefix + key, src: src, from: names[:], shape: shape, stored: infos[0].DType})
	}
	return rs, nil
}

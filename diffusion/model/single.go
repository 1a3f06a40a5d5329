package model

import (
	"fmt"
	"sort"
	"strings"

	"github.com/sdgo/sdgo/diffusion/weights"
)

// textSpec says where a text encoder lives in a single file.
type textSpec struct {
	prefix   string
	openCLIP bool // OpenCLIP layout (resblocks, fused in_proj) rather than transformers'
}

// textSpecs gives the text encoders of each family in a single file.
func textSpecs(f Family) map[string]textSpec {
	switch f {
	case SD1:
		return map[string]textSpec{"text_encoder": {prefixSD1Text, false}}
	case SD2:
		return map[string]textSpec{"text_encoder": {prefixSD2Text, true}}
	case SDXL:
		return map[string]textSpec{"text_encoder": {prefixXLText1, false}, "text_encoder_2": {prefixXLText2, true}}
	case SDXLRefiner:
		return map[string]textSpec{"text_encoder_2": {prefixRefiner2, true}}
	}
	return nil
}

// detectFamily recognises a single file's family from its keys and shapes:
// SDXL has a second (OpenCLIP) embedder, the refiner only an OpenCLIP one at
// index 0, SD 2.x an OpenCLIP cond_stage_model, SD 1.x a transformers CLIP one.
// A file without text encoder keys is judged by its cross-attention width. A
// 9-channel UNet input means inpainting.
func detectFamily(src weights.Source, path string) (Family, bool, error) {
	var hasUNet, sd1, sd2, xl1, xl2, ref bool
	names := src.Names()
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, prefixUNet):
			hasUNet = true
		case strings.HasPrefix(n, prefixSD1Text):
			sd1 = true
		case strings.HasPrefix(n, prefixSD2Text):
			sd2 = true
		case strings.HasPrefix(n, prefixXLText1):
			xl1 = true
		case strings.HasPrefix(n, prefixXLText2):
			xl2 = true
		case strings.HasPrefix(n, prefixRefiner2):
			ref = true
		}
	}
	if !hasUNet {
		some := names[:min(len(names), 4)]
		return "", false, fmt.Errorf("%s: %w: no UNet weights (%s*); its tensors are named like %s",
			path, ErrUnknownModel, prefixUNet, strings.Join(quote(some), ", "))
	}
	convIn := prefixUNet + "input_blocks.0.0.weight"
	info, ok := src.Info(convIn)
	if !ok || len(info.Shape) != 4 {
		return "", false, fmt.Errorf("%s: %w: no UNet input convolution %q of rank 4 (got shape %v)", path, ErrUnknownModel, convIn, info.Shape)
	}
	inpaint := false
	switch in := info.Shape[1]; in {
	case 4:
	case 9:
		inpaint = true
	default:
		return "", false, fmt.Errorf("%s: %w: tensor %q has shape %v: a UNet of %d input channels (want 4, or 9 for inpainting; instruct-pix2pix and depth models are not supported)",
			path, ErrUnknownModel, convIn, info.Shape, in)
	}
	switch {
	case xl2:
		return SDXL, inpaint, nil
	case ref:
		return SDXLRefiner, inpaint, nil
	case sd2:
		return SD2, inpaint, nil
	case sd1:
		return SD1, inpaint, nil
	case xl1:
		return SDXL, inpaint, nil
	}
	// No text encoder: the width of the text the UNet attends to tells.
	for _, n := range names {
		if strings.HasPrefix(n, prefixUNet) && strings.HasSuffix(n, ".attn2.to_k.weight") {
			info, _ := src.Info(n)
			if len(info.Shape) == 2 {
				switch info.Shape[1] {
				case 768:
					return SD1, inpaint, nil
				case 1024:
					return SD2, inpaint, nil
				case 2048:
					return SDXL, inpaint, nil
				case 1280:
					return SDXLRefiner, inpaint, nil
				}
				return "", false, fmt.Errorf("%s: %w: no text encoder weights, and tensor %q has shape %v: cross-attention over %d-wide text, which no known family has",
					path, ErrUnknownModel, n, info.Shape, info.Shape[1])
			}
		}
	}
	return "", false, fmt.Errorf("%s: %w: neither text encoder weights nor UNet cross-attention to tell the family by", path, ErrUnknownModel)
}

func quote(s []string) []string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = fmt.Sprintf("%q", x)
	}
	return q
}

// loadSingle loads a single-file checkpoint.
func loadSingle(path string, opts Options) (_ *Model, err error) {
	src, err := openWeights(path, opts)
	if err != nil {
		return nil, err
	}
	sh := newShared(src)
	sh.retain() // this function's reference, dropped on return; the components hold theirs
	defer func() {
		if rerr := sh.release(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	family, inpaint, err := detectFamily(src, path)
	if err != nil {
		return nil, err
	}
	var a *arch
	if opts.Config != "" {
		if a, err = readArch(opts.Config); err != nil {
			return nil, err
		}
		if a.family != family || a.inpaint != inpaint {
			return nil, fmt.Errorf("%s holds %s weights, but the config folder %s describes %s", path, describeFamily(family, inpaint), opts.Config, describeFamily(a.family, a.inpaint))
		}
	} else {
		prediction := opts.PredictionType
		if prediction == "" {
			prediction = defaultPrediction(src, family, inpaint)
		}
		if a, err = standardArch(family, inpaint, prediction); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	m := newModel(path, SingleFile, a)
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if err := m.mapSingle(sh, src, a); err != nil {
		return nil, err
	}
	if err := m.finish(a, opts); err != nil {
		if opts.Config == "" {
			return nil, fmt.Errorf("%w (checked against the standard %s architecture; a model of another size needs its diffusers config folder as Options.Config)", err, describeFamily(family, inpaint))
		}
		return nil, err
	}
	if opts.Config == "" && family == SD2 && !inpaint && opts.PredictionType == "" {
		if a.prediction == Epsilon {
			m.Notes = append(m.Notes, "global_step "+sd2BaseStep+": the SD 2 512-base model (epsilon), as diffusers decides")
		} else {
			m.Notes = append(m.Notes, "an SD 2.x single file is taken as a 768-v model (v_prediction), as diffusers does; for a 512-base model ask for prediction type epsilon")
		}
	}
	return m, nil
}

func describeFamily(f Family, inpaint bool) string {
	if inpaint {
		return f.String() + " inpainting"
	}
	return f.String()
}

// mapSingle maps the file's keys onto the components' diffusers names.
func (m *Model) mapSingle(sh *shared, src weights.Source, a *arch) error {
	path := m.Path
	arch := "the standard " + a.family.String() + " architecture"
	if a.dir != "" {
		arch = "the architecture of " + a.dir
	}
	fail := func(name string, err error) error {
		return fmt.Errorf("%s: tensor %q: %v (mapping onto %s)", path, name, err, arch)
	}
	unetMap, vaeMap := newMapping(), newMapping()
	specs := textSpecs(a.family)
	textMaps := map[string]*mapping{}
	for _, te := range m.TextEncoders {
		if _, ok := specs[te.Name]; !ok {
			return fmt.Errorf("%s: %s has no %s in a single file", path, a.family, te.Name)
		}
		textMaps[te.Name] = newMapping()
	}
	names := src.Names()
	vaePrefix := prefixVAE
	if !hasPrefix(names, prefixVAE) && hasPrefix(names, prefixVAEAlt) {
		vaePrefix = prefixVAEAlt
	}
	layout := layoutOf(a.unet)
	var unused []string
	for _, n := range names {
		info, _ := src.Info(n)
		if k, ok := strings.CutPrefix(n, prefixUNet); ok {
			to, err := unetName(k, a.unet, layout)
			if err != nil {
				return fail(n, err)
			}
			if err := unetMap.add(to, unetEntry(to, n, info, a.unet)); err != nil {
				return fail(n, err)
			}
			continue
		}
		if k, ok := strings.CutPrefix(n, vaePrefix); ok {
			to, reshape, ignore, err := vaeName(k, a.vae)
			if err != nil {
				return fail(n, err)
			}
			if ignore {
				unused = append(unused, n)
			} else if err := vaeMap.add(to, vaeEntry(n, info, reshape)); err != nil {
				return fail(n, err)
			}
			continue
		}
		used := false
		for _, te := range m.TextEncoders {
			spec := specs[te.Name]
			k, ok := strings.CutPrefix(n, spec.prefix)
			if !ok {
				continue
			}
			if spec.openCLIP {
				u, err := openCLIPEntries(textMaps[te.Name], k, n, info, te.Config)
				if err != nil {
					return fail(n, err)
				}
				used = u
			} else if to := clipName(k, te.Config); to != "" {
				if err := textMaps[te.Name].add(to, entry{from: n, info: info}); err != nil {
					return fail(n, err)
				}
				used = true
			}
		}
		if !used {
			unused = append(unused, n)
		}
	}
	if len(unetMap.entries) == 0 {
		return fmt.Errorf("%s: no UNet weights (%s*)", path, prefixUNet)
	}
	if len(vaeMap.entries) == 0 {
		return fmt.Errorf("%s: no VAE weights (%s*): a single file must hold the autoencoder", path, prefixVAE)
	}
	for _, te := range m.TextEncoders {
		if len(textMaps[te.Name].entries) == 0 {
			return fmt.Errorf("%s: no %s weights (%s*) for %s", path, te.Name, specs[te.Name].prefix, a.family)
		}
	}
	m.UNetWeights = unetMap.build(sh, path+" (unet)")
	m.VAEWeights = vaeMap.build(sh, path+" (vae)")
	m.files["unet"], m.files["vae"] = []string{path}, []string{path}
	for i := range m.TextEncoders {
		te := &m.TextEncoders[i]
		te.Weights = textMaps[te.Name].build(sh, path+" ("+te.Name+")")
		m.files[te.Name] = []string{path}
	}
	sort.Strings(unused)
	m.Unused = unused
	if len(unused) > 0 {
		what := fmt.Sprintf("%d tensors of the file are", len(unused))
		if len(unused) == 1 {
			what = "1 tensor of the file is"
		}
		m.Notes = append(m.Notes, fmt.Sprintf("%s not used by the model: %s", what, strings.Join(quote(unused[:min(3, len(unused))]), ", ")))
		if len(unused) > 3 {
			m.Notes[len(m.Notes)-1] += ", ..."
		}
	}
	return nil
}

func hasPrefix(names []string, p string) bool {
	for _, n := range names {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

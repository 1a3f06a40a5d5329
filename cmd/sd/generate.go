package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sdgo/sdgo/diffusion"
	"github.com/sdgo/sdgo/diffusion/lora"
	"github.com/sdgo/sdgo/internal/pngtext"
	"github.com/sdgo/sdgo/internal/pyjson"
)

func init() {
	register(command{name: "generate", summary: "generate images from a prompt (text-to-image, image-to-image, inpainting)", run: runGenerate})
}

// optString is a string flag that remembers whether it was given, so that an
// absent negative prompt differs from an empty one (SDXL zeroes the former).
type optString struct {
	v   string
	set bool
}

func (o *optString) String() string { return o.v }
func (o *optString) Set(s string) error {
	o.v, o.set = s, true
	return nil
}
func (o *optString) ptr() *string {
	if !o.set {
		return nil
	}
	v := o.v
	return &v
}

// optFloat is a float flag that remembers whether it was given.
type optFloat struct {
	v   float64
	set bool
}

func (o *optFloat) String() string {
	if !o.set {
		return ""
	}
	return strconv.FormatFloat(o.v, 'g', -1, 64)
}
func (o *optFloat) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("not a number")
	}
	o.v, o.set = v, true
	return nil
}

// sizeFlag is WxH.
type sizeFlag struct{ p image.Point }

func (s *sizeFlag) String() string {
	if s.p == (image.Point{}) {
		return ""
	}
	return fmt.Sprintf("%dx%d", s.p.X, s.p.Y)
}
func (s *sizeFlag) Set(v string) error {
	w, h, ok := strings.Cut(v, "x")
	x, err1 := strconv.Atoi(w)
	y, err2 := strconv.Atoi(h)
	if !ok || err1 != nil || err2 != nil || x <= 0 || y <= 0 {
		return fmt.Errorf("want WIDTHxHEIGHT, e.g. 1024x1024")
	}
	s.p = image.Pt(x, y)
	return nil
}

// cropFlag is Y,X.
type cropFlag struct{ p image.Point }

func (c *cropFlag) String() string { return fmt.Sprintf("%d,%d", c.p.Y, c.p.X) }
func (c *cropFlag) Set(v string) error {
	a, b, ok := strings.Cut(v, ",")
	y, err1 := strconv.Atoi(a)
	x, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || x < 0 || y < 0 {
		return fmt.Errorf("want TOP,LEFT, e.g. 0,0")
	}
	c.p = image.Pt(x, y)
	return nil
}

type generateFlags struct {
	model, config, predictionType         string
	prompt, prompt2                       string
	negative, negative2                   optString
	width, height, steps, batch, clipSkip int
	strength, eta                         float64
	guidance                              optFloat
	seed                                  string
	rngKind, scheduler, schedulerConfig   string
	karras                                bool
	timestepSpacing                       string
	initImage, mask, out, device          string
	precision                             string
	vaeTiling                             string
	originalSize, targetSize              sizeFlag
	crop                                  cropFlag
	plainPrompt, jsonOut, quiet, offload  bool
	loras                                 loraList
	loraDir                               string
}

// loraList collects the repeatable --lora FILE[:SCALE].
type loraList []string

func (l *loraList) String() string { return strings.Join(*l, ",") }
func (l *loraList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// usedLoRA is a LoRA of the run, for the JSON result and the PNG parameters.
type usedLoRA struct {
	File  string  `json:"file"`
	Scale float64 `json:"scale"`
	// Tag is set when the prompt named it (<lora:NAME:SCALE>).
	Tag string `json:"tag,omitempty"`
}

// loadLoRAs reads the --lora files and the LoRAs the prompts name with
// A1111's <lora:NAME:SCALE>, which are resolved in --lora-dir and removed
// from the prompt text.
func (f *generateFlags) loadLoRAs(req *diffusion.Request) ([]lora.Adapter, []usedLoRA, error) {
	var used []usedLoRA
	for _, spec := range f.loras {
		file, scale := spec, 1.0
		if st, err := os.Stat(spec); err != nil || !st.Mode().IsRegular() {
			var perr error
			if file, scale, perr = lora.ParseSpec(spec); perr != nil {
				return nil, nil, fmt.Errorf("%w: --lora: %v", errUsage, perr)
			}
		}
		used = append(used, usedLoRA{File: file, Scale: scale})
	}
	prompts := []*string{&req.Prompt}
	if req.Prompt2 != nil {
		p2 := *req.Prompt2
		req.Prompt2 = &p2
		prompts = append(prompts, req.Prompt2)
	}
	for _, p := range prompts {
		clean, tags, err := lora.ExtractPromptTags(*p)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		*p = clean
		for _, t := range tags {
			if f.loraDir == "" {
				return nil, nil, fmt.Errorf("%w: the prompt names LoRA %q (<lora:%s:%g>); give the folder it is in with --lora-dir", errUsage, t.Name, t.Name, t.Scale)
			}
			path, err := lora.Resolve(f.loraDir, t.Name)
			if err != nil {
				return nil, nil, err
			}
			used = append(used, usedLoRA{File: path, Scale: t.Scale, Tag: t.Name})
		}
	}
	var adapters []lora.Adapter
	read := map[string]*lora.LoRA{}
	for _, u := range used {
		l := read[u.File]
		if l == nil {
			var err error
			if l, err = lora.Open(u.File); err != nil {
				return nil, nil, err
			}
			read[u.File] = l
		}
		adapters = append(adapters, lora.Adapter{LoRA: l, Scale: u.Scale})
	}
	return adapters, used, nil
}

func runGenerate(ctx context.Context, e *env, args []string) error {
	var f generateFlags
	fs := newFlags(e, "generate", "--model MODEL --prompt TEXT [flags]")
	fs.StringVar(&f.model, "model", "", "a preset (v1-5, v2-1, xl, turbo, ...), a Hub repository id (org/name[@rev]), a diffusers folder or a single-file checkpoint")
	fs.StringVar(&f.config, "config", "", "a diffusers folder giving a single file's architecture")
	fs.StringVar(&f.prompt, "prompt", "", "what to draw")
	fs.StringVar(&f.prompt, "p", "", "shorthand for --prompt")
	fs.Var(&f.negative, "negative-prompt", "what not to draw")
	fs.Var(&f.negative, "n", "shorthand for --negative-prompt")
	fs.StringVar(&f.prompt2, "prompt-2", "", "SDXL: the second text encoder's prompt (default: --prompt)")
	fs.Var(&f.negative2, "negative-prompt-2", "SDXL: the second text encoder's negative prompt")
	fs.IntVar(&f.width, "width", 0, "image width, a multiple of 8 (default: the model's native size)")
	fs.IntVar(&f.height, "height", 0, "image height, a multiple of 8")
	fs.IntVar(&f.steps, "steps", 0, "denoising steps (default 30; SDXL 30)")
	fs.Var(&f.guidance, "guidance", "classifier-free guidance scale (default 7.5; SDXL 5; 0 or 1 turns it off)")
	fs.StringVar(&f.seed, "seed", "", "random seed, 0 to 2^64-1 (default: random, and reported)")
	fs.StringVar(&f.rngKind, "rng", "cpu", "random number generator: cpu (diffusers' default) or cuda (A1111's GPU seeds)")
	fs.StringVar(&f.scheduler, "scheduler", "", `scheduler: euler, euler_a, ddim, dpmpp_2m, "DPM++ 2M Karras", ... (default: the model's)`)
	fs.StringVar(&f.schedulerConfig, "scheduler-config", "", "a diffusers scheduler_config.json to use instead of the model's")
	fs.BoolVar(&f.karras, "karras", false, "use Karras sigmas")
	fs.StringVar(&f.timestepSpacing, "timestep-spacing", "", "leading, linspace or trailing")
	fs.StringVar(&f.predictionType, "prediction-type", "", "what the model predicts: epsilon, v_prediction or sample (for SD 2.x single files)")
	fs.Float64Var(&f.eta, "eta", 0, "DDIM eta")
	fs.StringVar(&f.vaeTiling, "vae-tiling", "auto", "decode in tiles: auto (above one megapixel), on or off")
	fs.StringVar(&f.initImage, "init-image", "", "image-to-image: the starting image (PNG, JPEG or WebP)")
	fs.Float64Var(&f.strength, "strength", 0, "how much of the init image to repaint, in (0, 1] (default 0.8; inpainting 1)")
	fs.StringVar(&f.mask, "mask", "", "inpainting: the mask image, white = repaint")
	fs.IntVar(&f.clipSkip, "clip-skip", 0, "skip final text-encoder layers (diffusers' meaning: 1 = A1111's 'Clip skip 2')")
	fs.Var(&f.originalSize, "original-size", "SDXL size conditioning: WxH")
	fs.Var(&f.targetSize, "target-size", "SDXL size conditioning: WxH")
	fs.Var(&f.crop, "crop-top-left", "SDXL crop conditioning: Y,X")
	fs.IntVar(&f.batch, "batch", 1, "images to generate")
	fs.StringVar(&f.device, "device", "cpu", "where to run: cpu, cuda or cuda:N")
	fs.StringVar(&f.precision, "precision", "", precisionUsage)
	fs.BoolVar(&f.offload, "offload", true, "drop each network's weights from memory once its stage is done, as stable-diffusion.cpp does (--offload=false keeps them)")
	fs.BoolVar(&f.plainPrompt, "plain-prompt", false, "diffusers' prompt handling: no weighting syntax, truncated to 77 tokens")
	fs.StringVar(&f.out, "out", "out.png", "output PNG (numbered when --batch > 1)")
	fs.BoolVar(&f.jsonOut, "json", false, "print a JSON result on stdout")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress output")
	fs.Var(&f.loras, "lora", "apply a LoRA: FILE or FILE:SCALE (scale 1 by default); repeat for several")
	fs.StringVar(&f.loraDir, "lora-dir", "", "the folder where the prompt's <lora:NAME:SCALE> tags find NAME.safetensors")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q (quote the prompt and pass it with --prompt)", errUsage, fs.Args())
	}
	req, seed, err := f.request()
	if err != nil {
		return err
	}
	outs := outputPaths(f.out, f.batch)
	if err := checkWritable(outs); err != nil {
		return err
	}
	promptText := f.prompt // as given, with its <lora:...> tags, for the PNG
	adapters, loras, err := f.loadLoRAs(&req)
	if err != nil {
		return err
	}

	// A preset name stands for its Hub repository and brings its defaults.
	modelPath := f.model
	preset, isPreset := diffusion.LookupPreset(f.model)
	if isPreset {
		modelPath = preset.Repo
		if req.Scheduler == "" {
			req.Scheduler = preset.Scheduler
		}
	}
	start := time.Now()
	backend, err := openDevice(f.device, f.precision)
	if err != nil {
		return err
	}
	defer closeDevice(backend)
	p, err := diffusion.Load(ctx, modelPath, diffusion.Options{Config: f.config, PredictionType: f.predictionType, LoRAs: adapters, Offload: f.offload, Backend: backend})
	if err != nil {
		return err
	}
	defer p.Close()
	load := time.Since(start)
	if req.SchedulerConfig, err = f.schedulerJSON(p); err != nil {
		return err
	}
	if f.steps == 0 {
		req.Steps = 30
		if isPreset {
			req.Steps = preset.Steps
		}
	}
	if !f.guidance.set {
		req.Guidance = 7.5
		if p.Model.Family == "sdxl" {
			req.Guidance = 5
		}
		if isPreset {
			req.Guidance = preset.Guidance
		}
	}
	if isPreset && req.InitImage == nil && req.Width == 0 && req.Height == 0 {
		req.Width, req.Height = preset.Size, preset.Size
	}
	progress := newProgress(e.stderr, f.quiet)
	req.Progress = func(pr diffusion.Progress) { progress.step(pr.Step, pr.Steps) }
	res, err := p.Generate(ctx, req)
	progress.done()
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		e.log.Warn(w)
	}
	shown := req
	shown.Prompt = promptText
	for _, l := range loras {
		if l.Tag == "" {
			shown.Prompt += fmt.Sprintf(" <lora:%s:%g>", strings.TrimSuffix(filepath.Base(l.File), filepath.Ext(l.File)), l.Scale)
		}
	}
	params := f.parameters(p, shown, seed)
	type imageOut struct {
		Path string `json:"path"`
		Seed uint64 `json:"seed"`
	}
	var written []imageOut
	for i, img := range res.Images {
		data, err := pngtext.Encode(img, [][2]string{{"parameters", params}})
		if err != nil {
			return err
		}
		if err := writeFileAtomic(outs[i], data); err != nil {
			return err
		}
		written = append(written, imageOut{outs[i], seed})
	}
	if f.jsonOut {
		enc := json.NewEncoder(e.stdout)
		if loras == nil {
			loras = []usedLoRA{}
		}
		return enc.Encode(map[string]any{
			"images": written, "seed": seed, "width": res.Images[0].Rect.Dx(), "height": res.Images[0].Rect.Dy(),
			"steps": req.Steps, "guidance": req.Guidance, "loras": loras,
			"timings_ms": map[string]int64{"load": load.Milliseconds(), "encode": res.Encode.Milliseconds(), "denoise": res.Denoise.Milliseconds(), "decode": res.Decode.Milliseconds()},
		})
	}
	for _, w := range written {
		fmt.Fprintf(e.stdout, "%s (seed %d)\n", w.Path, w.Seed)
	}
	return nil
}

// request builds the library request from the flags (the model-dependent
// defaults are filled in after loading).
func (f *generateFlags) request() (diffusion.Request, uint64, error) {
	var req diffusion.Request
	if f.model == "" {
		return req, 0, fmt.Errorf("%w: --model is required", errUsage)
	}
	if f.prompt == "" && f.initImage == "" {
		return req, 0, fmt.Errorf("%w: --prompt is required", errUsage)
	}
	if err := checkDevice(f.device); err != nil {
		return req, 0, err
	}
	if err := checkPrecision(f.device, f.precision); err != nil {
		return req, 0, err
	}
	if f.width%8 != 0 || f.height%8 != 0 || f.width < 0 || f.height < 0 {
		return req, 0, fmt.Errorf("%w: size %dx%d is not a multiple of 8 (nearest: %dx%d)", errUsage, f.width, f.height, max(8, f.width/8*8), max(8, f.height/8*8))
	}
	if f.steps < 0 {
		return req, 0, fmt.Errorf("%w: --steps must be at least 1", errUsage)
	}
	if g := f.guidance.v; f.guidance.set && (math.IsNaN(g) || math.IsInf(g, 0) || g < 0) {
		return req, 0, fmt.Errorf("%w: --guidance %v must be a finite number >= 0", errUsage, g)
	}
	if f.strength != 0 && !(f.strength > 0 && f.strength <= 1) {
		return req, 0, fmt.Errorf("%w: --strength %v must be in (0, 1]", errUsage, f.strength)
	}
	if f.mask != "" && f.initImage == "" {
		return req, 0, fmt.Errorf("%w: --mask needs --init-image", errUsage)
	}
	if f.batch < 1 || f.batch > 64 {
		return req, 0, fmt.Errorf("%w: --batch %d must be 1 to 64", errUsage, f.batch)
	}
	tiling, ok := map[string]diffusion.Tiling{"auto": diffusion.TilingAuto, "on": diffusion.TilingOn, "off": diffusion.TilingOff}[f.vaeTiling]
	if !ok {
		return req, 0, fmt.Errorf("%w: --vae-tiling %q (want auto, on or off)", errUsage, f.vaeTiling)
	}
	seed, err := parseSeed(f.seed)
	if err != nil {
		return req, 0, err
	}
	gen, err := diffusion.NewGenerator(f.rngKind, seed)
	if err != nil {
		return req, 0, fmt.Errorf("%w: %v", errUsage, err)
	}
	req = diffusion.Request{
		Prompt: f.prompt, NegativePrompt: f.negative.ptr(), NegativePrompt2: f.negative2.ptr(),
		Width: f.width, Height: f.height, Steps: f.steps, Guidance: f.guidance.v, Generator: gen,
		Scheduler: f.scheduler, Eta: f.eta, Strength: f.strength, ClipSkip: f.clipSkip,
		PlainPrompt: f.plainPrompt, OriginalSize: f.originalSize.p, TargetSize: f.targetSize.p,
		CropTopLeft: f.crop.p, Batch: f.batch, VAETiling: tiling,
	}
	if f.prompt2 != "" {
		req.Prompt2 = &f.prompt2
	}
	if f.initImage != "" {
		if req.InitImage, err = readImage(f.initImage); err != nil {
			return req, 0, err
		}
	}
	if f.mask != "" {
		if req.Mask, err = readImage(f.mask); err != nil {
			return req, 0, err
		}
	}
	return req, seed, nil
}

func parseSeed(s string) (uint64, error) {
	if s == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return 0, err
		}
		return binary.LittleEndian.Uint64(b[:]) >> 11, nil // 53 bits: exact in JSON numbers
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: --seed %q is not an integer from 0 to 2^64-1", errUsage, s)
	}
	return v, nil
}

func readImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := diffusion.DecodeImage(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// schedulerJSON is the scheduler config with the command line's overrides.
func (f *generateFlags) schedulerJSON(p *diffusion.Pipeline) ([]byte, error) {
	base := p.Model.SchedulerConfig
	if f.schedulerConfig != "" {
		b, err := os.ReadFile(f.schedulerConfig)
		if err != nil {
			return nil, err
		}
		base = b
	}
	if !f.karras && f.timestepSpacing == "" {
		return base, nil
	}
	var m map[string]any
	if err := pyjson.Unmarshal(base, &m); err != nil {
		return nil, fmt.Errorf("scheduler config: %w", err)
	}
	if f.karras {
		m["use_karras_sigmas"] = true
	}
	if f.timestepSpacing != "" {
		m["timestep_spacing"] = f.timestepSpacing
	}
	return json.Marshal(m)
}

// parameters renders the generation in A1111's "parameters" text, which other
// tools read back from the PNG.
func (f *generateFlags) parameters(p *diffusion.Pipeline, req diffusion.Request, seed uint64) string {
	var b strings.Builder
	b.WriteString(req.Prompt)
	if req.NegativePrompt != nil {
		fmt.Fprintf(&b, "\nNegative prompt: %s", *req.NegativePrompt)
	}
	sampler := f.scheduler
	if sampler == "" {
		sampler = p.Model.SchedulerClass
	}
	w, h := req.Width, req.Height
	if w == 0 || h == 0 {
		w, h = p.DefaultSize()
	}
	fmt.Fprintf(&b, "\nSteps: %d, Sampler: %s, CFG scale: %g, Seed: %d, Size: %dx%d, Model: %s", req.Steps, sampler, req.Guidance, seed, w, h, filepath.Base(f.model))
	if f.karras {
		b.WriteString(", Schedule type: Karras")
	}
	if req.ClipSkip > 0 {
		fmt.Fprintf(&b, ", Clip skip: %d", req.ClipSkip+1)
	}
	if req.InitImage != nil {
		fmt.Fprintf(&b, ", Denoising strength: %g", req.Strength)
	}
	if f.rngKind != "cpu" {
		b.WriteString(", RNG: NV")
	}
	b.WriteString(", Version: sdgo")
	return b.String()
}

// outputPaths numbers the output file for a batch: out.png -> out-1.png, ...
func outputPaths(out string, n int) []string {
	if n == 1 {
		return []string{out}
	}
	ext := filepath.Ext(out)
	base := strings.TrimSuffix(out, ext)
	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("%s-%d%s", base, i+1, ext)
	}
	return paths
}

// checkWritable makes sure the outputs can be written before minutes of work.
func checkWritable(paths []string) error {
	for _, p := range paths {
		dir := filepath.Dir(p)
		f, err := os.CreateTemp(dir, ".sd-write-check-*")
		if err != nil {
			return fmt.Errorf("cannot write %s: %w", p, err)
		}
		f.Close()
		os.Remove(f.Name())
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return fmt.Errorf("cannot write %s: it is a directory", p)
		}
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// progress prints the denoising progress: a bar redrawn in place on a
// terminal, one line per step otherwise.
type progress struct {
	w        io.Writer
	quiet    bool
	terminal bool
	start    time.Time
	drawn    bool
}

func newProgress(w io.Writer, quiet bool) *progress {
	p := &progress{w: w, quiet: quiet, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

func (p *progress) step(i, n int) {
	if p.quiet {
		return
	}
	el := time.Since(p.start)
	rate := float64(i) / el.Seconds()
	eta := time.Duration(float64(n-i) / rate * float64(time.Second)).Round(time.Second)
	if p.terminal {
		const width = 30
		done := width * i / n
		fmt.Fprintf(p.w, "\r[%s%s] %d/%d  %.2f it/s  ETA %s ", strings.Repeat("=", done), strings.Repeat(" ", width-done), i, n, rate, eta)
		p.drawn = true
		return
	}
	fmt.Fprintf(p.w, "step %d/%d %.2f it/s eta %s\n", i, n, rate, eta)
}

func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

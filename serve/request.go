package serve

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sdgo/sdgo/diffusion"
	"github.com/sdgo/sdgo/diffusion/sched"
)

// JobRequest is the body of POST /v1/jobs: the fields of a generation. Absent
// fields take the model's defaults (see Info).
type JobRequest struct {
	Prompt string `json:"prompt"`
	// NegativePrompt absent differs from "": SDXL then uses zero embeddings.
	NegativePrompt *string `json:"negative_prompt,omitempty"`
	// Prompt2 and NegativePrompt2 go to SDXL's second text encoder.
	Prompt2         *string `json:"prompt_2,omitempty"`
	NegativePrompt2 *string `json:"negative_prompt_2,omitempty"`
	// Width and Height in pixels, multiples of 8; 0 means the model's size,
	// or the init image's (rounded down to a multiple of 8).
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
	Steps  int `json:"steps,omitempty"`
	// Guidance is the classifier-free guidance scale (0 or 1 turns it off).
	Guidance *float64 `json:"guidance,omitempty"`
	// Seed is the first image's seed; image i uses Seed+i. Absent or -1 is random.
	Seed *Seed `json:"seed,omitempty"`
	// RNG is the random number generator: "cpu" (diffusers' default) or
	// "cuda" (the Philox stream of A1111's GPU seeds).
	RNG string `json:"rng,omitempty"`
	// Scheduler names a scheduler (euler_a, dpmpp_2m_karras, "DPM++ 2M
	// Karras", ...); "" keeps the model's.
	Scheduler string  `json:"scheduler,omitempty"`
	Eta       float64 `json:"eta,omitempty"`
	// InitImage is a PNG or JPEG image, base64 or a data URL: image-to-image,
	// or inpainting with Mask (white = repaint).
	InitImage string `json:"init_image,omitempty"`
	Mask      string `json:"mask,omitempty"`
	// Strength in (0, 1] is how much of the init image is repainted (0: 0.8,
	// or 1 for inpainting).
	Strength    float64 `json:"strength,omitempty"`
	ClipSkip    int     `json:"clip_skip,omitempty"`
	PlainPrompt bool    `json:"plain_prompt,omitempty"`
	// SDXL size conditioning: [width, height], and the crop as [top, left].
	OriginalSize *Pair `json:"original_size,omitempty"`
	TargetSize   *Pair `json:"target_size,omitempty"`
	CropTopLeft  *Pair `json:"crop_top_left,omitempty"`
	// Batch is the number of images (default 1), with seeds Seed, Seed+1, ...
	Batch int `json:"batch,omitempty"`
	// LoRAs are adapters from the worker's LoRA folder, by name (the file name
	// without .safetensors), each with a scale (default 1).
	LoRAs []LoRARef `json:"loras,omitempty"`
}

// LoRARef names a LoRA of the worker's folder and its scale.
type LoRARef struct {
	Name  string   `json:"name"`
	Scale *float64 `json:"scale,omitempty"`
}

// Seed is a request's seed: an integer from 0 to 2^64-1, or -1 for a random
// one. It reads and writes as a JSON number.
type Seed struct {
	Value  uint64
	Random bool
}

// MarshalJSON writes the seed as a number (-1 when random).
func (s Seed) MarshalJSON() ([]byte, error) {
	if s.Random {
		return []byte("-1"), nil
	}
	return strconv.AppendUint(nil, s.Value, 10), nil
}

// UnmarshalJSON reads an integer from -1 to 2^64-1.
func (s *Seed) UnmarshalJSON(b []byte) error {
	str := string(b)
	switch str {
	case "null":
		return nil
	case "-1":
		*s = Seed{Random: true}
		return nil
	}
	v, err := strconv.ParseUint(str, 10, 64)
	if err != nil {
		return &json.UnmarshalTypeError{Value: jsonKind(b), Type: reflect.TypeFor[Seed]()}
	}
	*s = Seed{Value: v}
	return nil
}

// Pair is two integers, a JSON array of exactly two numbers.
type Pair [2]int

// UnmarshalJSON reads an array of two integers.
func (p *Pair) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var v []int
	if err := json.Unmarshal(b, &v); err != nil || len(v) != 2 {
		return &json.UnmarshalTypeError{Value: jsonKind(b), Type: reflect.TypeFor[Pair]()}
	}
	*p = Pair{v[0], v[1]}
	return nil
}

// jsonKind names a JSON value for an error message.
func jsonKind(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	if len(b) > 40 {
		b = b[:40]
	}
	return "number " + string(b)
}

// readBody reads a request body of at most max bytes.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, *APIError) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, &APIError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large", Message: fmt.Sprintf("the request body is larger than %d bytes", max)}
		}
		return nil, &APIError{Status: http.StatusBadRequest, Code: "invalid_body", Message: "reading the request body: " + err.Error()}
	}
	return data, nil
}

// decodeJSON decodes one JSON object into v, refusing unknown fields and
// trailing data.
func decodeJSON(data []byte, v any) *APIError {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return &APIError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the request body is empty; expected a JSON object"}
	}
	if trimmed[0] != '{' {
		return &APIError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "expected a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return &APIError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "unexpected data after the JSON object"}
	}
	return nil
}

func jsonError(err error) *APIError {
	bad := func(code, field, msg string) *APIError {
		return &APIError{Status: http.StatusBadRequest, Code: code, Field: field, Message: msg}
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return bad("invalid_json", "", fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, se))
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return bad("invalid_json", "", fmt.Sprintf("expected a JSON object, got %s", te.Value))
		}
		return bad("invalid_field", te.Field, fmt.Sprintf("expected %s, got %s", typeName(te.Type), te.Value))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return bad("invalid_json", "", "the JSON is truncated")
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, _ = strconv.Unquote(name)
		return bad("unknown_field", name, fmt.Sprintf("unknown field %q", name))
	}
	return bad("invalid_json", "", err.Error())
}

func typeName(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t {
	case reflect.TypeFor[Seed]():
		return "an integer from -1 to 2^64-1"
	case reflect.TypeFor[Pair]():
		return "an array of two integers"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Pointer:
		return typeName(t.Elem())
	}
	return t.String()
}

// genParams is a generation request in any of the APIs' shapes, before
// validation. Zero values mean defaults.
type genParams struct {
	prompt                                string
	negative, prompt2, negative2          *string
	width, height, steps                  int
	guidance                              *float64
	seed                                  *Seed
	randomSeedBits                        int // 0: 53
	rng, scheduler                        string
	eta                                   float64
	initImage, mask                       string
	invertMask                            bool
	strength                              float64
	clipSkip                              int
	plain                                 bool
	originalSize, targetSize, cropTopLeft *Pair
	images                                int
	loras                                 []loraRef
	// names maps the native field names to the API's, for error messages.
	names map[string]string
}

func (g *genParams) field(native string) string {
	if n, ok := g.names[native]; ok {
		return n
	}
	return native
}

// loraRef is a requested LoRA: a name in the worker's folder and a scale.
type loraRef struct {
	name  string
	scale float64
	field string // the request field, for errors
}

// nameField is the request field that names the LoRA: loras[i].name, or the
// prompt holding an A1111 <lora:NAME:SCALE> tag.
func (l loraRef) nameField() string {
	if l.field == "prompt" {
		return l.field
	}
	return l.field + ".name"
}

// jobSpec is a validated job: the generation request (Generator, Progress and
// Batch are set per image when it runs) and how to name it.
type jobSpec struct {
	req     diffusion.Request
	rng     string
	seed    uint64
	images  int
	sampler string // the scheduler's name for the infotext
	model   string
	guided  bool
	loras   []loraRef // resolved into req.LoRAs when the job is submitted
}

// seeds are the images' seeds.
func (sp *jobSpec) seeds() []uint64 {
	out := make([]uint64, sp.images)
	for i := range out {
		out[i] = sp.seed + uint64(i)
	}
	return out
}

// infotext renders image i's parameters as A1111 writes them into a PNG's
// "parameters" text and its API's info.
func (sp *jobSpec) infotext(i int) string {
	var b strings.Builder
	r := sp.req
	b.WriteString(r.Prompt)
	if r.NegativePrompt != nil {
		fmt.Fprintf(&b, "\nNegative prompt: %s", *r.NegativePrompt)
	}
	fmt.Fprintf(&b, "\nSteps: %d, Sampler: %s, CFG scale: %g, Seed: %d, Size: %dx%d, Model: %s",
		r.Steps, sp.sampler, r.Guidance, sp.seed+uint64(i), r.Width, r.Height, sp.model)
	if r.ClipSkip > 0 {
		fmt.Fprintf(&b, ", Clip skip: %d", r.ClipSkip+1)
	}
	if r.InitImage != nil {
		fmt.Fprintf(&b, ", Denoising strength: %g", r.Strength)
	}
	if sp.rng == "cuda" {
		b.WriteString(", RNG: NV")
	}
	b.WriteString(", Version: sdgo")
	return b.String()
}

// maxLoRAs bounds the LoRAs one request may stack.
const maxLoRAs = 8

// minSide is the smallest image side accepted: the UNet halves the latent
// three times.
const minSide = 64

// validate checks g against the limits and the model and fills in the
// defaults. Images are decoded here (their headers checked first).
func validate(g *genParams, info Info, lim Limits) (*jobSpec, *APIError) {
	sp := &jobSpec{model: info.Model}
	r := &sp.req
	for _, p := range []struct {
		name string
		s    *string
	}{{"prompt", &g.prompt}, {"negative_prompt", g.negative}, {"prompt_2", g.prompt2}, {"negative_prompt_2", g.negative2}} {
		if p.s == nil {
			continue
		}
		if len(*p.s) > lim.MaxPromptBytes {
			return nil, fieldError(g.field(p.name), "is %d bytes; at most %d are allowed", len(*p.s), lim.MaxPromptBytes)
		}
		if !utf8.ValidString(*p.s) {
			return nil, fieldError(g.field(p.name), "is not valid UTF-8")
		}
	}
	r.Prompt, r.NegativePrompt, r.Prompt2, r.NegativePrompt2 = g.prompt, g.negative, g.prompt2, g.negative2
	if len(g.loras) > maxLoRAs {
		return nil, fieldError(g.field("loras"), "names %d LoRAs; at most %d are allowed", len(g.loras), maxLoRAs)
	}
	for i, l := range g.loras {
		if l.field == "" {
			l.field = fmt.Sprintf("%s[%d]", g.field("loras"), i)
		}
		if l.name == "" || len(l.name) > 128 {
			return nil, fieldError(l.nameField(), "expected a LoRA name of 1 to 128 bytes")
		}
		if math.IsNaN(l.scale) || math.Abs(l.scale) > 10 {
			scaleField := l.field + ".scale"
			if l.field == "prompt" {
				scaleField = "prompt"
			}
			return nil, fieldError(scaleField, "LoRA scale is %v; expected a number from -10 to 10", l.scale)
		}
		sp.loras = append(sp.loras, l)
	}

	sp.images = g.images
	if sp.images == 0 {
		sp.images = 1
	}
	if sp.images < 1 || sp.images > lim.MaxBatch {
		return nil, fieldError(g.field("batch"), "is %d; expected 1 to %d images", sp.images, lim.MaxBatch)
	}

	r.Steps = g.steps
	if r.Steps == 0 {
		r.Steps = info.Steps
	}
	if r.Steps < 1 || r.Steps > lim.MaxSteps {
		return nil, fieldError(g.field("steps"), "is %d; expected 1 to %d", r.Steps, lim.MaxSteps)
	}
	r.Guidance = info.Guidance
	if g.guidance != nil {
		r.Guidance = *g.guidance
	}
	if math.IsNaN(r.Guidance) || r.Guidance < 0 || r.Guidance > 100 {
		return nil, fieldError(g.field("guidance"), "is %v; expected a number from 0 to 100", r.Guidance)
	}
	sp.guided = r.Guidance > 1

	// Seed and generator.
	switch {
	case g.seed == nil || g.seed.Random:
		bits := g.randomSeedBits
		if bits == 0 {
			bits = 53
		}
		sp.seed = randomSeed(bits)
	default:
		sp.seed = g.seed.Value
	}
	sp.rng = g.rng
	if sp.rng == "" {
		sp.rng = "cpu"
	}
	if _, err := diffusion.NewGenerator(sp.rng, 0); err != nil || len(sp.rng) > 16 {
		return nil, fieldError(g.field("rng"), "is %q; expected cpu or cuda", truncate(sp.rng, 16))
	}

	// Scheduler.
	r.Scheduler = g.scheduler
	if r.Scheduler == "" {
		r.Scheduler = info.Scheduler
	}
	sp.sampler = r.Scheduler
	if sp.sampler == "" {
		sp.sampler = info.SchedulerClass
	}
	if len(g.scheduler) > 64 {
		return nil, fieldError(g.field("scheduler"), "is longer than 64 bytes")
	}
	if math.IsNaN(g.eta) || g.eta < 0 || g.eta > 10 {
		return nil, fieldError(g.field("eta"), "is %v; expected a number from 0 to 10", g.eta)
	}
	r.Eta = g.eta
	if r.Scheduler != "" {
		s, err := sched.FromName(r.Scheduler, nil)
		if err != nil {
			return nil, fieldError(g.field("scheduler"), "%q is not a known scheduler (GET /sdapi/v1/samplers lists them)", truncate(r.Scheduler, 64))
		}
		if r.Eta != 0 {
			es, ok := s.(sched.EtaScheduler)
			if !ok {
				return nil, fieldError(g.field("eta"), "is set but %s takes none", s.Class())
			}
			if err := es.SetEta(r.Eta); err != nil {
				return nil, fieldError(g.field("eta"), "%v", err)
			}
		}
	}

	// Images.
	var err *APIError
	if g.initImage != "" {
		if r.InitImage, err = decodeImageField(g.field("init_image"), g.initImage, lim.MaxInputPixels); err != nil {
			return nil, err
		}
	}
	if g.mask != "" {
		if r.InitImage == nil {
			return nil, fieldError(g.field("mask"), "a mask needs an init image")
		}
		if r.Mask, err = decodeImageField(g.field("mask"), g.mask, lim.MaxInputPixels); err != nil {
			return nil, err
		}
		if g.invertMask {
			r.Mask = invertedMask{r.Mask}
		}
	}
	if info.Inpaint && r.Mask == nil {
		return nil, fieldError(g.field("mask"), "this is an inpainting model: give an init image and a mask")
	}
	if math.IsNaN(g.strength) || g.strength < 0 || g.strength > 1 {
		return nil, fieldError(g.field("strength"), "is %v; expected a number in (0, 1]", g.strength)
	}
	r.Strength = g.strength
	if r.InitImage != nil && r.Strength == 0 {
		r.Strength = 0.8
		if r.Mask != nil {
			r.Strength = 1
		}
	}

	// Size.
	r.Width, r.Height = g.width, g.height
	for _, d := range []struct {
		name   string
		v, max int
	}{{"width", r.Width, lim.MaxWidth}, {"height", r.Height, lim.MaxHeight}} {
		if d.v != 0 && (d.v < minSide || d.v > d.max || d.v%8 != 0) {
			return nil, fieldError(g.field(d.name), "is %d; expected a multiple of 8 from %d to %d", d.v, minSide, d.max)
		}
	}
	if r.InitImage != nil {
		b := r.InitImage.Bounds()
		if r.Width == 0 {
			r.Width = b.Dx() / 8 * 8
		}
		if r.Height == 0 {
			r.Height = b.Dy() / 8 * 8
		}
	}
	if r.Width == 0 {
		r.Width = info.Width
	}
	if r.Height == 0 {
		r.Height = info.Height
	}
	if r.Width < minSide || r.Height < minSide || r.Width > lim.MaxWidth || r.Height > lim.MaxHeight {
		f := g.field("width")
		if r.InitImage != nil {
			f = g.field("init_image")
		}
		return nil, fieldError(f, "the image would be %dx%d; sizes from %d to %dx%d are allowed (give width and height)", r.Width, r.Height, minSide, lim.MaxWidth, lim.MaxHeight)
	}

	// The rest.
	if g.clipSkip < 0 || g.clipSkip > 12 {
		return nil, fieldError(g.field("clip_skip"), "is %d; expected 0 to 12", g.clipSkip)
	}
	r.ClipSkip, r.PlainPrompt = g.clipSkip, g.plain
	for _, p := range []struct {
		name string
		v    *Pair
		dst  *image.Point
		yx   bool
	}{{"original_size", g.originalSize, &r.OriginalSize, false}, {"target_size", g.targetSize, &r.TargetSize, false}, {"crop_top_left", g.cropTopLeft, &r.CropTopLeft, true}} {
		if p.v == nil {
			continue
		}
		a, b := p.v[0], p.v[1]
		if a < 0 || b < 0 || a > 16384 || b > 16384 {
			return nil, fieldError(g.field(p.name), "is [%d, %d]; expected two integers from 0 to 16384", a, b)
		}
		if p.yx {
			*p.dst = image.Pt(b, a)
		} else {
			*p.dst = image.Pt(a, b)
		}
	}
	return sp, nil
}

// fromJobRequest maps the native request.
func fromJobRequest(jr *JobRequest) *genParams {
	g := &genParams{
		prompt: jr.Prompt, negative: jr.NegativePrompt, prompt2: jr.Prompt2, negative2: jr.NegativePrompt2,
		width: jr.Width, height: jr.Height, steps: jr.Steps, guidance: jr.Guidance, seed: jr.Seed,
		rng: jr.RNG, scheduler: jr.Scheduler, eta: jr.Eta, initImage: jr.InitImage, mask: jr.Mask,
		strength: jr.Strength, clipSkip: jr.ClipSkip, plain: jr.PlainPrompt,
		originalSize: jr.OriginalSize, targetSize: jr.TargetSize, cropTopLeft: jr.CropTopLeft, images: jr.Batch,
	}
	for _, l := range jr.LoRAs {
		scale := 1.0
		if l.Scale != nil {
			scale = *l.Scale
		}
		g.loras = append(g.loras, loraRef{name: l.Name, scale: scale})
	}
	return g
}

// DecodeRequest decodes and validates a POST /v1/jobs body for a model
// described by info: the same checks the server makes before queueing a job.
// The error is always an *APIError with a 4xx status.
func DecodeRequest(data []byte, info Info, lim Limits) (*JobRequest, error) {
	var jr JobRequest
	if err := decodeJSON(data, &jr); err != nil {
		return nil, err
	}
	if _, err := validate(fromJobRequest(&jr), info, lim.withDefaults()); err != nil {
		return nil, err
	}
	return &jr, nil
}

func randomSeed(bits int) uint64 {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
	return binary.LittleEndian.Uint64(b[:]) >> (64 - bits)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// invertedMask swaps a mask's white and black (A1111's inpainting_mask_invert).
type invertedMask struct{ image.Image }

func (m invertedMask) ColorModel() color.Model { return color.GrayModel }

func (m invertedMask) At(x, y int) color.Color {
	g := color.GrayModel.Convert(m.Image.At(x, y)).(color.Gray)
	return color.Gray{Y: 255 - g.Y}
}

package serve

import (
	"bytes"
	"encoding/json"
	"github.com/sdgo/sdgo/diffusion/lora"
	"net/http"
	"strings"

	"github.com/sdgo/sdgo/diffusion/sched"
)

// a1111Request is the body of AUTOMATIC1111's /sdapi/v1/txt2img and
// /sdapi/v1/img2img, in the common subset this worker runs. Absent fields take
// the model's defaults (not A1111's fixed 512x512, 50 steps, CFG 7).
type a1111Request struct {
	Prompt               string                     `json:"prompt"`
	NegativePrompt       *string                    `json:"negative_prompt"`
	Steps                int                        `json:"steps"`
	CfgScale             *float64                   `json:"cfg_scale"`
	Width                int                        `json:"width"`
	Height               int                        `json:"height"`
	Seed                 *Seed                      `json:"seed"`
	SamplerName          string                     `json:"sampler_name"`
	SamplerIndex         string                     `json:"sampler_index"`
	Scheduler            string                     `json:"scheduler"`
	BatchSize            int                        `json:"batch_size"`
	NIter                int                        `json:"n_iter"`
	Eta                  *float64                   `json:"eta"`
	OverrideSettings     map[string]json.RawMessage `json:"override_settings"`
	SendImages           *bool                      `json:"send_images"`
	InitImages           []string                   `json:"init_images"`
	DenoisingStrength    *float64                   `json:"denoising_strength"`
	Mask                 *string                    `json:"mask"`
	InpaintingMaskInvert int                        `json:"inpainting_mask_invert"`
	a1111Extras
}

// a1111Extras are A1111 fields that clients send with their default values:
// accepted and ignored, or refused when they ask for what this worker does not
// do (hires fix, face restoration, tiling, variation seeds, scripts, refiner).
type a1111Extras struct {
	Styles                            json.RawMessage `json:"styles"`
	Subseed                           json.RawMessage `json:"subseed"`
	SubseedStrength                   json.RawMessage `json:"subseed_strength"`
	SeedResizeFromH                   json.RawMessage `json:"seed_resize_from_h"`
	SeedResizeFromW                   json.RawMessage `json:"seed_resize_from_w"`
	RestoreFaces                      json.RawMessage `json:"restore_faces"`
	Tiling                            json.RawMessage `json:"tiling"`
	DoNotSaveSamples                  json.RawMessage `json:"do_not_save_samples"`
	DoNotSaveGrid                     json.RawMessage `json:"do_not_save_grid"`
	SChurn                            json.RawMessage `json:"s_churn"`
	STmax                             json.RawMessage `json:"s_tmax"`
	STmin                             json.RawMessage `json:"s_tmin"`
	SNoise                            json.RawMessage `json:"s_noise"`
	SMinUncond                        json.RawMessage `json:"s_min_uncond"`
	OverrideSettingsRestoreAfterwards json.RawMessage `json:"override_settings_restore_afterwards"`
	ScriptName                        json.RawMessage `json:"script_name"`
	ScriptArgs                        json.RawMessage `json:"script_args"`
	AlwaysonScripts                   json.RawMessage `json:"alwayson_scripts"`
	SaveImages                        json.RawMessage `json:"save_images"`
	Comments                          json.RawMessage `json:"comments"`
	DisableExtraNetworks              json.RawMessage `json:"disable_extra_networks"`
	ForceTaskID                       json.RawMessage `json:"force_task_id"`
	Infotext                          json.RawMessage `json:"infotext"`
	RefinerCheckpoint                 json.RawMessage `json:"refiner_checkpoint"`
	RefinerSwitchAt                   json.RawMessage `json:"refiner_switch_at"`
	EnableHR                          json.RawMessage `json:"enable_hr"`
	HRScale                           json.RawMessage `json:"hr_scale"`
	HRUpscaler                        json.RawMessage `json:"hr_upscaler"`
	HRSecondPassSteps                 json.RawMessage `json:"hr_second_pass_steps"`
	HRResizeX                         json.RawMessage `json:"hr_resize_x"`
	HRResizeY                         json.RawMessage `json:"hr_resize_y"`
	HRCheckpointName                  json.RawMessage `json:"hr_checkpoint_name"`
	HRSamplerName                     json.RawMessage `json:"hr_sampler_name"`
	HRScheduler                       json.RawMessage `json:"hr_scheduler"`
	HRPrompt                          json.RawMessage `json:"hr_prompt"`
	HRNegativePrompt                  json.RawMessage `json:"hr_negative_prompt"`
	HRAdditionalModules               json.RawMessage `json:"hr_additional_modules"`
	FirstphaseWidth                   json.RawMessage `json:"firstphase_width"`
	FirstphaseHeight                  json.RawMessage `json:"firstphase_height"`
	FirstpassImage                    json.RawMessage `json:"firstpass_image"`
	ResizeMode                        json.RawMessage `json:"resize_mode"`
	ImageCfgScale                     json.RawMessage `json:"image_cfg_scale"`
	MaskBlur                          json.RawMessage `json:"mask_blur"`
	MaskBlurX                         json.RawMessage `json:"mask_blur_x"`
	MaskBlurY                         json.RawMessage `json:"mask_blur_y"`
	MaskRound                         json.RawMessage `json:"mask_round"`
	InpaintingFill                    json.RawMessage `json:"inpainting_fill"`
	InpaintFullRes                    json.RawMessage `json:"inpaint_full_res"`
	InpaintFullResPadding             json.RawMessage `json:"inpaint_full_res_padding"`
	InitialNoiseMultiplier            json.RawMessage `json:"initial_noise_multiplier"`
	LatentMask                        json.RawMessage `json:"latent_mask"`
	IncludeInitImages                 json.RawMessage `json:"include_init_images"`
}

// unsupported refuses the extras that would change the result if honoured.
func (x *a1111Extras) unsupported() *APIError {
	for _, f := range []struct {
		name string
		v    json.RawMessage
	}{
		{"enable_hr", x.EnableHR}, {"restore_faces", x.RestoreFaces}, {"tiling", x.Tiling},
		{"subseed_strength", x.SubseedStrength}, {"script_name", x.ScriptName},
		{"alwayson_scripts", x.AlwaysonScripts}, {"refiner_checkpoint", x.RefinerCheckpoint},
	} {
		switch string(bytes.TrimSpace(f.v)) {
		case "", "null", "false", "0", "0.0", `""`, "{}", "[]":
		default:
			return fieldError(f.name, "is not supported by this worker; leave it out or at its default")
		}
	}
	return nil
}

// a1111Sampler joins A1111's sampler and schedule type ("DPM++ 2M" and
// "Karras") into one scheduler name.
func a1111Sampler(req *a1111Request) (string, *APIError) {
	name := req.SamplerName
	if name == "" {
		name = req.SamplerIndex
	}
	switch strings.ToLower(strings.TrimSpace(req.Scheduler)) {
	case "", "automatic":
	case "karras", "exponential", "beta":
		if name == "" {
			return "", fieldError("scheduler", "needs a sampler_name")
		}
		name += " " + req.Scheduler
	default:
		return "", fieldError("scheduler", "is %q; expected Automatic, Karras, Exponential or Beta", truncate(req.Scheduler, 32))
	}
	return name, nil
}

func parseA1111(req *a1111Request, img2img bool) parser {
	return func(data []byte, info Info, lim Limits) (*jobSpec, *APIError) {
		if err := decodeJSON(data, req); err != nil {
			return nil, err
		}
		if err := req.unsupported(); err != nil {
			return nil, err
		}
		g := &genParams{
			prompt: req.Prompt, negative: req.NegativePrompt, steps: req.Steps, guidance: req.CfgScale,
			width: req.Width, height: req.Height, seed: req.Seed, randomSeedBits: 32,
			names: map[string]string{"guidance": "cfg_scale", "scheduler": "sampler_name", "batch": "batch_size",
				"strength": "denoising_strength", "init_image": "init_images", "clip_skip": "override_settings.CLIP_stop_at_last_layers"},
		}
		// A1111 clients ask for LoRAs with <lora:NAME:SCALE> in the prompt.
		prompt, tags, terr := lora.ExtractPromptTags(req.Prompt)
		if terr != nil {
			return nil, fieldError("prompt", "%v", terr)
		}
		g.prompt = prompt
		for _, tag := range tags {
			g.loras = append(g.loras, loraRef{name: tag.Name, scale: tag.Scale, field: "prompt"})
		}
		var err *APIError
		if g.scheduler, err = a1111Sampler(req); err != nil {
			return nil, err
		}
		if req.Eta != nil {
			g.eta = *req.Eta
		}
		if req.BatchSize < 0 || req.NIter < 0 {
			return nil, fieldError("batch_size", "batch_size and n_iter must be positive")
		}
		n := max(req.BatchSize, 1) * max(req.NIter, 1)
		if n > lim.MaxBatch {
			return nil, fieldError("batch_size", "batch_size x n_iter is %d; at most %d images are allowed", n, lim.MaxBatch)
		}
		g.images = n
		if raw, ok := req.OverrideSettings["CLIP_stop_at_last_layers"]; ok {
			var stop int
			if json.Unmarshal(raw, &stop) != nil || stop < 1 || stop > 12 {
				return nil, fieldError("override_settings.CLIP_stop_at_last_layers", "expected an integer from 1 to 12")
			}
			g.clipSkip = stop - 1
		}
		if !img2img {
			if len(req.InitImages) > 0 || req.Mask != nil {
				return nil, fieldError("init_images", "images go to /sdapi/v1/img2img")
			}
			return validate(g, info, lim)
		}
		if len(req.InitImages) != 1 || req.InitImages[0] == "" {
			return nil, fieldError("init_images", "expected one base64 image")
		}
		g.initImage = req.InitImages[0]
		if req.Mask != nil {
			if *req.Mask == "" {
				return nil, fieldError("mask", "is empty")
			}
			g.mask = *req.Mask
		}
		switch req.InpaintingMaskInvert {
		case 0:
		case 1:
			g.invertMask = true
		default:
			return nil, fieldError("inpainting_mask_invert", "expected 0 or 1")
		}
		g.strength = 0.75
		if req.DenoisingStrength != nil {
			if !(*req.DenoisingStrength > 0) {
				return nil, fieldError("denoising_strength", "is %v; expected a number in (0, 1]", *req.DenoisingStrength)
			}
			g.strength = *req.DenoisingStrength
		}
		return validate(g, info, lim)
	}
}

func (s *Server) handleTxt2Img(w http.ResponseWriter, r *http.Request) { s.handleA1111(w, r, false) }
func (s *Server) handleImg2Img(w http.ResponseWriter, r *http.Request) { s.handleA1111(w, r, true) }

// handleA1111 runs an A1111 generation synchronously and answers
// {images, parameters, info}; a client that disconnects cancels its job.
func (s *Server) handleA1111(w http.ResponseWriter, r *http.Request, img2img bool) {
	api := "txt2img"
	if img2img {
		api = "img2img"
	}
	var req a1111Request
	j, err := s.accept(w, r, api, parseA1111(&req, img2img))
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("X-Job-Id", j.id)
	if !s.wait(r, j) {
		return
	}
	images, err := s.result(j)
	if err != nil {
		writeError(w, err)
		return
	}
	sp := j.spec
	rq := sp.req
	out := []string{}
	if req.SendImages == nil || *req.SendImages {
		for _, img := range images {
			out = append(out, b64(img))
		}
	}
	seeds := sp.seeds()
	n := len(seeds)
	infotexts := make([]string, n)
	subseeds := make([]int, n)
	prompts := make([]string, n)
	negatives := make([]string, n)
	neg := ""
	if rq.NegativePrompt != nil {
		neg = *rq.NegativePrompt
	}
	for i := range n {
		infotexts[i], subseeds[i], prompts[i], negatives[i] = sp.infotext(i), -1, rq.Prompt, neg
	}
	var strength any
	if rq.InitImage != nil {
		strength = rq.Strength
	}
	batch := max(req.BatchSize, 1)
	info := map[string]any{
		"prompt": rq.Prompt, "all_prompts": prompts, "negative_prompt": neg, "all_negative_prompts": negatives,
		"seed": sp.seed, "all_seeds": seeds, "subseed": -1, "all_subseeds": subseeds, "subseed_strength": 0,
		"width": rq.Width, "height": rq.Height, "sampler_name": sp.sampler, "cfg_scale": rq.Guidance, "steps": rq.Steps,
		"batch_size": batch, "restore_faces": false, "face_restoration_model": nil,
		"sd_model_name": sp.model, "sd_model_hash": nil, "sd_vae_name": nil, "sd_vae_hash": nil,
		"seed_resize_from_w": -1, "seed_resize_from_h": -1, "denoising_strength": strength,
		"extra_generation_params": map[string]any{}, "index_of_first_image": 0, "infotexts": infotexts,
		"styles": []string{}, "job_timestamp": j.created.Format("20060102150405"), "clip_skip": rq.ClipSkip + 1,
		"is_using_inpainting_conditioning": rq.Mask != nil, "version": "sdgo",
	}
	infoJSON, jerr := json.Marshal(info)
	if jerr != nil {
		writeError(w, &APIError{Status: http.StatusInternalServerError, Code: "internal", Message: "encoding the info"})
		return
	}
	params := map[string]any{
		"prompt": rq.Prompt, "negative_prompt": neg, "steps": rq.Steps, "cfg_scale": rq.Guidance,
		"width": rq.Width, "height": rq.Height, "seed": sp.seed, "sampler_name": sp.sampler, "scheduler": req.Scheduler,
		"batch_size": batch, "n_iter": max(req.NIter, 1), "eta": rq.Eta, "clip_skip": rq.ClipSkip + 1,
		"override_settings": req.OverrideSettings,
	}
	if img2img {
		params["denoising_strength"] = rq.Strength
		params["init_images"] = nil // not echoed back
		params["mask"] = nil
		params["inpainting_mask_invert"] = req.InpaintingMaskInvert
	}
	writeJSON(w, http.StatusOK, map[string]any{"images": out, "parameters": params, "info": string(infoJSON)})
}

func (s *Server) handleSamplers(w http.ResponseWriter, r *http.Request) {
	type sampler struct {
		Name    string            `json:"name"`
		Aliases []string          `json:"aliases"`
		Options map[string]string `json:"options"`
	}
	out := []sampler{}
	for _, n := range sched.Names() {
		out = append(out, sampler{Name: n, Aliases: []string{}, Options: map[string]string{}})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleSchedulers(w http.ResponseWriter, r *http.Request) {
	type schedule struct {
		Name  string `json:"name"`
		Label string `json:"label"`
	}
	writeJSON(w, http.StatusOK, []schedule{
		{"automatic", "Automatic"}, {"karras", "Karras"}, {"exponential", "Exponential"}, {"beta", "Beta"},
	})
}

// modelLoaded writes 503 and returns false while the model loads.
func (s *Server) modelLoaded(w http.ResponseWriter) (Info, bool) {
	info, ok := s.infoNow()
	if !ok {
		writeError(w, &APIError{Status: http.StatusServiceUnavailable, Code: "loading", Message: "the model is loading", RetryAfter: 5})
	}
	return info, ok
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	info, ok := s.modelLoaded(w)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, []map[string]any{{
		"title": info.Model, "model_name": info.Model, "hash": nil, "sha256": nil, "filename": info.Model, "config": nil,
	}})
}

func (s *Server) handleOptions(w http.ResponseWriter, r *http.Request) {
	info, ok := s.modelLoaded(w)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sd_model_checkpoint": info.Model, "CLIP_stop_at_last_layers": 1})
}

// handleProgress reports the oldest running job, as A1111's progress endpoint.
func (s *Server) handleProgress(w http.ResponseWriter, r *http.Request) {
	skip := r.URL.Query().Get("skip_current_image") == "true"
	s.mu.Lock()
	var cur *job
	for _, j := range s.jobs {
		if j.state == stateRunning && (cur == nil || j.started.Before(cur.started)) {
			cur = j
		}
	}
	state := map[string]any{"skipped": false, "interrupted": false, "job": "", "job_count": s.running + len(s.queue),
		"job_timestamp": "0", "job_no": 0, "sampling_step": 0, "sampling_steps": 0}
	body := map[string]any{"progress": 0.0, "eta_relative": 0.0, "state": state, "current_image": nil, "textinfo": nil}
	if cur != nil {
		state["job"] = "task(" + cur.id + ")"
		state["job_timestamp"] = cur.created.Format("20060102150405")
		state["interrupted"] = cur.ctx.Err() != nil
		if p := cur.progressLocked(); p != nil {
			body["progress"] = float64(p.Step) / float64(p.Total)
			body["eta_relative"] = p.EtaS
			state["sampling_step"], state["sampling_steps"] = p.Step, p.Total
		}
		if cur.preview != nil && !skip {
			body["current_image"] = b64(cur.preview)
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// handleInterrupt cancels the running A1111 jobs, as A1111's interrupt does.
func (s *Server) handleInterrupt(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	var running []*job
	for _, j := range s.jobs {
		if j.state == stateRunning && (j.api == "txt2img" || j.api == "img2img") {
			running = append(running, j)
		}
	}
	s.mu.Unlock()
	for _, j := range running {
		s.cancel(j, errCancelRequested)
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

package model

import (
	"encoding/json"
	"fmt"

	"github.com/sdgo/sdgo/diffusion/clip"
	"github.com/sdgo/sdgo/diffusion/unet"
	"github.com/sdgo/sdgo/diffusion/vae"
	"github.com/sdgo/sdgo/internal/pyjson"
)

// The standard architecture of each family, for single files, which carry no
// config: the configs of the reference repositories diffusers'
// from_single_file falls back to (stable-diffusion-v1-5, stable-diffusion-2-1,
// stable-diffusion-2-inpainting, stable-diffusion-xl-base-1.0,
// stable-diffusion-xl-1.0-inpainting-0.1, stable-diffusion-xl-refiner-1.0).
//
// The scheduler is the reference repository's kind: PNDM for SD 1.x, DDIM for
// SD 2.x, Euler for SDXL, all with the scaled-linear betas the models were
// trained with.
//
// Prediction type: SD 2.x non-inpainting files are taken as the 768-v models
// (v_prediction, 96x96 latents, attention upcast), as diffusers does, since
// weights cannot tell 768-v from 512-base; asking for epsilon selects the
// 512-base configuration instead. Every other family predicts epsilon.
func standardArch(f Family, inpaint bool, prediction string) (*arch, error) {
	a := &arch{family: f, inpaint: inpaint, prediction: Epsilon}
	comp := func(lib, class string) Component { return Component{Library: lib, Class: class} }
	a.index = ModelIndex{Components: map[string]Component{
		"unet": comp("diffusers", unet.ClassName),
		"vae":  comp("diffusers", vae.ClassName),
	}}
	text := func(name, tokenizer string, c clip.Config) {
		class := "CLIPTextModel"
		if c.WithProjection() {
			class = "CLIPTextModelWithProjection"
		}
		a.texts = append(a.texts, TextEncoder{Name: name, Class: class, Config: c})
		a.index.Components[name] = comp("transformers", class)
		a.index.Components[tokenizer] = comp("transformers", "CLIPTokenizer")
	}
	switch f {
	case SD1:
		a.index.ClassName = "StableDiffusionPipeline"
		a.unet, a.vae = unet.SD15(), vae.SD()
		if inpaint {
			a.index.ClassName = "StableDiffusionInpaintPipeline"
			a.unet = unet.SD15Inpaint()
		}
		text("text_encoder", "tokenizer", clip.ViTL14())
		a.schedulerClass = "PNDMScheduler"
	case SD2:
		a.index.ClassName = "StableDiffusionPipeline"
		a.vae = vae.SD()
		switch {
		case inpaint:
			a.index.ClassName = "StableDiffusionInpaintPipeline"
			a.unet = unet.SD2Inpaint()
		case prediction == Epsilon:
			a.unet = unet.SD21Base()
		default:
			a.unet = unet.SD21()
			a.vae.SampleSize = vae.Size{768}
			a.prediction = VPrediction
		}
		text("text_encoder", "tokenizer", clip.OpenCLIPH14())
		a.schedulerClass = "DDIMScheduler"
	case SDXL:
		a.index.ClassName = "StableDiffusionXLPipeline"
		a.index.ForceZerosForEmptyPrompt = true
		a.unet, a.vae = unet.SDXL(), vae.SDXL()
		if inpaint {
			a.index.ClassName = "StableDiffusionXLInpaintPipeline"
			a.unet = unet.SDXLInpaint()
		}
		text("text_encoder", "tokenizer", clip.ViTL14())
		text("text_encoder_2", "tokenizer_2", clip.OpenCLIPBigG14())
		a.schedulerClass = "EulerDiscreteScheduler"
	case SDXLRefiner:
		if inpaint {
			return nil, fmt.Errorf("an SDXL refiner with a 9-channel (inpainting) UNet has no standard configuration; give one with Options.Config")
		}
		a.index.ClassName = "StableDiffusionXLImg2ImgPipeline"
		a.index.RequiresAestheticsScore = true
		a.unet, a.vae = unet.SDXLRefiner(), vae.SDXL()
		text("text_encoder_2", "tokenizer_2", clip.OpenCLIPBigG14())
		a.schedulerClass = "EulerDiscreteScheduler"
	default:
		return nil, fmt.Errorf("unknown family %q", f)
	}
	a.index.Components["scheduler"] = comp("diffusers", a.schedulerClass)
	var err error
	if a.scheduler, err = standardScheduler(a.schedulerClass, a.prediction); err != nil {
		return nil, err
	}
	return a, nil
}

// standardScheduler writes the scheduler_config.json of a reference repository.
func standardScheduler(class, prediction string) ([]byte, error) {
	c := map[string]any{
		"_class_name":         class,
		"beta_start":          0.00085,
		"beta_end":            0.012,
		"beta_schedule":       "scaled_linear",
		"num_train_timesteps": 1000,
		"prediction_type":     prediction,
		"set_alpha_to_one":    false,
		"steps_offset":        1,
		"clip_sample":         false,
		"timestep_spacing":    "leading",
		"trained_betas":       nil,
	}
	switch class {
	case "PNDMScheduler":
		c["skip_prk_steps"] = true
	case "EulerDiscreteScheduler":
		c["interpolation_type"] = "linear"
		c["use_karras_sigmas"] = false
	}
	return json.MarshalIndent(c, "", "  ")
}

// setPredictionType returns a scheduler config with prediction_type replaced.
// Python's non-finite numbers (Infinity, NaN) come out as strings, which
// pyjson.Float reads back.
func setPredictionType(b []byte, prediction string) ([]byte, error) {
	var raw map[string]json.RawMessage
	if err := pyjson.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	p, _ := json.Marshal(prediction)
	raw["prediction_type"] = p
	return json.MarshalIndent(raw, "", "  ")
}

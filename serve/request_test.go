package serve

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"testing"

	"github.com/sdgo/sdgo/diffusion/sched"
	"github.com/sdgo/sdgo/tensor"
	"github.com/stretchr/testify/require"
)

func mustValidate(t *testing.T, body string, info Info) *jobSpec {
	t.Helper()
	var jr JobRequest
	require.Nil(t, decodeJSON([]byte(body), &jr))
	sp, err := validate(fromJobRequest(&jr), info, Limits{}.withDefaults())
	require.Nil(t, err)
	return sp
}

// Absent fields take the model's defaults.
func TestValidateDefaults(t *testing.T) {
	info := Info{Model: "m", Family: "sdxl", SchedulerClass: "EulerDiscreteScheduler", Scheduler: "euler_a", Width: 1024, Height: 768, Steps: 4, Guidance: 0}
	sp := mustValidate(t, `{"prompt": "a"}`, info)
	r := sp.req
	require.Equal(t, [4]int{1024, 768, 4, 1}, [4]int{r.Width, r.Height, r.Steps, sp.images})
	require.Equal(t, 0.0, r.Guidance)
	require.Equal(t, "euler_a", r.Scheduler)
	require.Equal(t, "euler_a", sp.sampler)
	require.Equal(t, "cpu", sp.rng)
	require.Nil(t, r.NegativePrompt, "an absent negative prompt stays absent (SDXL zeroes it)")
	require.Less(t, sp.seed, uint64(1)<<53)

	sp = mustValidate(t, `{"prompt": "a", "negative_prompt": "", "seed": 18446744073709551615, "batch": 3, "rng": "cuda", "original_size": [512, 256], "crop_top_left": [10, 20]}`, info)
	require.NotNil(t, sp.req.NegativePrompt)
	require.Equal(t, []uint64{18446744073709551615, 0, 1}, sp.seeds(), "seeds wrap around")
	require.Equal(t, image.Pt(512, 256), sp.req.OriginalSize)
	require.Equal(t, image.Pt(20, 10), sp.req.CropTopLeft, "[top, left]")
	require.Equal(t, "cuda", sp.rng)

	info.Scheduler = ""
	sp = mustValidate(t, `{"prompt": "a"}`, info)
	require.Equal(t, "EulerDiscreteScheduler", sp.sampler, "the model's own scheduler")
}

// An init image gives the size (rounded down to 8) and the default strength.
func TestValidateInitImage(t *testing.T) {
	info := Info{Model: "m", Family: "sd1", Width: 512, Height: 512, Steps: 20, Guidance: 7.5}
	sp := mustValidate(t, `{"prompt": "a", "init_image": "`+b64png(t, 83, 70)+`"}`, info)
	require.Equal(t, [2]int{80, 64}, [2]int{sp.req.Width, sp.req.Height})
	require.Equal(t, 0.8, sp.req.Strength)
	require.Contains(t, sp.infotext(0), "Denoising strength: 0.8")

	sp = mustValidate(t, `{"prompt": "a", "init_image": "`+b64png(t, 64, 64)+`", "mask": "`+b64png(t, 64, 64)+`"}`, info)
	require.Equal(t, 1.0, sp.req.Strength)

	info.Inpaint = true
	var jr JobRequest
	require.Nil(t, decodeJSON([]byte(`{"prompt": "a", "init_image": "`+b64png(t, 64, 64)+`"}`), &jr))
	_, err := validate(fromJobRequest(&jr), info, Limits{}.withDefaults())
	require.NotNil(t, err)
	require.Equal(t, "mask", err.Field)
}

// Every scheduler the samplers endpoint lists is accepted by name, A1111's
// display names too.
func TestValidateSchedulerNames(t *testing.T) {
	info := Info{Model: "m", Family: "sd1", Width: 512, Height: 512, Steps: 20, Guidance: 7.5}
	names := append(sched.Names(), "DPM++ 2M Karras", "Euler a", "DPM++ SDE", "dpmpp_2m_exponential")
	for _, n := range names {
		sp := mustValidate(t, `{"prompt": "a", "scheduler": "`+n+`"}`, info)
		require.Equal(t, n, sp.req.Scheduler)
	}
	sp := mustValidate(t, `{"prompt": "a", "scheduler": "ddim", "eta": 0.5}`, info)
	require.Equal(t, 0.5, sp.req.Eta)
}

func TestInfotext(t *testing.T) {
	info := Info{Model: "v1-5", Family: "sd1", SchedulerClass: "PNDMScheduler", Width: 512, Height: 512, Steps: 20, Guidance: 7.5}
	sp := mustValidate(t, `{"prompt": "a cat", "negative_prompt": "dog", "seed": 5, "clip_skip": 1, "scheduler": "DPM++ 2M Karras", "rng": "cuda", "batch": 2}`, info)
	require.Equal(t, "a cat\nNegative prompt: dog\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 6, Size: 512x512, Model: v1-5, Clip skip: 2, RNG: NV, Version: sdgo", sp.infotext(1))
}

func TestSeedJSON(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Seed
	}{{"0", Seed{}}, {"-1", Seed{Random: true}}, {"18446744073709551615", Seed{Value: 1<<64 - 1}}} {
		var s Seed
		require.NoError(t, json.Unmarshal([]byte(c.in), &s))
		require.Equal(t, c.want, s)
		out, err := json.Marshal(s)
		require.NoError(t, err)
		require.Equal(t, c.in, string(out))
	}
	for _, bad := range []string{`"1"`, "1.5", "-2", "1e3", "true", "[]"} {
		var s Seed
		require.Error(t, json.Unmarshal([]byte(bad), &s), bad)
	}
}

func TestInvertedMask(t *testing.T) {
	m := image.NewGray(image.Rect(0, 0, 2, 1))
	m.Pix = []uint8{0, 255}
	inv := invertedMask{m}
	require.Equal(t, color.Gray{Y: 255}, inv.At(0, 0))
	require.Equal(t, color.Gray{Y: 0}, inv.At(1, 0))
	require.Equal(t, m.Bounds(), inv.Bounds())
}

// The cheap preview applies the 4x3 matrix per latent pixel and maps [-1, 1]
// to [0, 255].
func TestLatentPreview(t *testing.T) {
	const h, w = 2, 3
	lat := make([]float32, 4*h*w)
	img, err := latentPreview(lat, h, w, "sd1")
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, w, h), img.Rect)
	require.Equal(t, color.NRGBA{128, 128, 128, 255}, img.NRGBAAt(0, 0), "zero latents are mid grey")

	lat[0] = 1         // channel 0 of pixel (0, 0)
	lat[3*h*w+1] = 100 // channel 3 of pixel (1, 0): saturates
	img, err = latentPreview(lat, h, w, "sd1")
	require.NoError(t, err)
	// (1 + F[0][k]) / 2 * 255 with F[0] = (0.3512, 0.2297, 0.3227).
	require.Equal(t, color.NRGBA{172, 157, 169, 255}, img.NRGBAAt(0, 0))
	require.Equal(t, color.NRGBA{0, 0, 0, 255}, img.NRGBAAt(1, 0), "channel 3 weighs negatively on every colour")
	xl, err := latentPreview(lat, h, w, "sdxl")
	require.NoError(t, err)
	require.NotEqual(t, img.NRGBAAt(0, 0), xl.NRGBAAt(0, 0), "SDXL has its own factors")

	_, err = latentPreview(lat[:5], h, w, "sd1")
	require.Error(t, err)

	cpu := tensor.NewCPU()
	good, err := tensor.FromFloat32(cpu, make([]float32, 2*4*8*8), 2, 4, 8, 8)
	require.NoError(t, err)
	defer good.Release()
	data, err := previewPNG(good, "sd1")
	require.NoError(t, err)
	p, err := png.Decode(bytes.NewReader(data))
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 8, 8), p.Bounds(), "the first image of the batch, at latent size")
	bad, err := tensor.FromFloat32(cpu, make([]float32, 3*8*8), 1, 3, 8, 8)
	require.NoError(t, err)
	defer bad.Release()
	_, err = previewPNG(bad, "sd1")
	require.Error(t, err)
}

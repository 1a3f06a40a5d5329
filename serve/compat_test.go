package serve

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func decodePNG(t *testing.T, data []byte) (w, h int) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	require.NoError(t, err)
	return img.Bounds().Dx(), img.Bounds().Dy()
}

// Image-to-image and inpainting on the tiny model, through the native API
// (data URL and plain base64) and A1111's img2img (with an inverted mask).
func TestImageToImageAndInpainting(t *testing.T) {
	ts := startServer(t, Config{}, tinyEngine(t))
	ts.waitReady(t)
	init := "data:image/png;base64," + b64png(t, 80, 72)
	mask := b64png(t, 64, 64)

	id := submit(t, ts.URL, map[string]any{"prompt": "a cat", "init_image": init, "strength": 0.5, "steps": 4, "seed": 1})
	st := waitDone(t, ts.URL, id)
	require.Equal(t, stateCompleted, st.Status, "%+v", st.Error)
	_, _, img := call(t, "GET", ts.URL+st.Images[0], nil)
	w, h := decodePNG(t, img)
	require.Equal(t, [2]int{80, 72}, [2]int{w, h}, "the init image's size, a multiple of 8")
	require.Contains(t, string(img), "Denoising strength: 0.5")

	id = submit(t, ts.URL, map[string]any{"prompt": "a cat", "init_image": init, "mask": mask, "width": 64, "height": 64, "steps": 2})
	st = waitDone(t, ts.URL, id)
	require.Equal(t, stateCompleted, st.Status, "%+v", st.Error)
	_, _, img = call(t, "GET", ts.URL+st.Images[0], nil)
	w, h = decodePNG(t, img)
	require.Equal(t, [2]int{64, 64}, [2]int{w, h})

	code, _, data := call(t, "POST", ts.URL+"/sdapi/v1/img2img", map[string]any{
		"prompt": "a cat", "init_images": []string{b64png(t, 64, 64)}, "mask": mask, "inpainting_mask_invert": 1,
		"denoising_strength": 0.6, "steps": 3, "seed": 7, "width": 64, "height": 64, "cfg_scale": 5,
		"sampler_name": "Euler a", "resize_mode": 0, "mask_blur": 4, "inpainting_fill": 1, "restore_faces": false,
	})
	require.Equal(t, http.StatusOK, code, "%s", data)
	var out struct {
		Images     []string       `json:"images"`
		Parameters map[string]any `json:"parameters"`
		Info       string         `json:"info"`
	}
	require.NoError(t, json.Unmarshal(data, &out))
	require.Len(t, out.Images, 1)
	raw, err := base64.StdEncoding.DecodeString(out.Images[0])
	require.NoError(t, err)
	decodePNG(t, raw)
	require.EqualValues(t, 0.6, out.Parameters["denoising_strength"])
	var info map[string]any
	require.NoError(t, json.Unmarshal([]byte(out.Info), &info))
	require.EqualValues(t, 7, info["seed"])
	require.Equal(t, "Euler a", info["sampler_name"])
	require.Equal(t, true, info["is_using_inpainting_conditioning"])
}

// OpenAI's images API: b64_json and url answers, n images of size.
func TestOpenAI(t *testing.T) {
	ts := startServer(t, Config{}, tinyEngine(t))
	ts.waitReady(t)
	code, h, data := call(t, "POST", ts.URL+"/v1/images/generations", map[string]any{
		"prompt": "a lighthouse", "n": 2, "size": "64x64", "response_format": "b64_json", "model": "dall-e-2",
	})
	require.Equal(t, http.StatusOK, code, "%s", data)
	require.NotEmpty(t, h.Get("X-Job-Id"))
	var out struct {
		Created int64 `json:"created"`
		Data    []struct {
			B64JSON string `json:"b64_json"`
			URL     string `json:"url"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(data, &out))
	require.InDelta(t, time.Now().Unix(), out.Created, 60)
	require.Len(t, out.Data, 2)
	for _, d := range out.Data {
		require.Empty(t, d.URL)
		raw, err := base64.StdEncoding.DecodeString(d.B64JSON)
		require.NoError(t, err)
		w, _ := decodePNG(t, raw)
		require.Equal(t, 64, w)
	}

	code, _, data = call(t, "POST", ts.URL+"/v1/images/generations", map[string]any{"prompt": "a lighthouse"})
	require.Equal(t, http.StatusOK, code, "%s", data)
	out.Data = nil
	require.NoError(t, json.Unmarshal(data, &out))
	require.Len(t, out.Data, 1)
	require.True(t, strings.HasPrefix(out.Data[0].URL, ts.URL+"/v1/jobs/"), out.Data[0].URL)
	code, _, img := call(t, "GET", out.Data[0].URL, nil)
	require.Equal(t, http.StatusOK, code)
	decodePNG(t, img)

	for _, body := range []string{
		`{"prompt": ""}`, `{"prompt": "x", "size": "big"}`, `{"prompt": "x", "n": 0}`,
		`{"prompt": "x", "response_format": "gif"}`, `{"prompt": "x", "size": "100000x100000"}`, `{"prompt": "x", "n": 1000}`,
	} {
		code, _, data := call(t, "POST", ts.URL+"/v1/images/generations", body)
		apiError(t, code, data, http.StatusBadRequest, "invalid_field")
	}
}

// A1111's txt2img and its read-only endpoints.
func TestA1111(t *testing.T) {
	ts := startServer(t, Config{}, tinyEngine(t))
	ts.waitReady(t)
	code, _, data := call(t, "POST", ts.URL+"/sdapi/v1/txt2img", map[string]any{
		"prompt": "a house", "negative_prompt": "blurry", "steps": 2, "cfg_scale": 7, "width": 64, "height": 64,
		"seed": -1, "sampler_name": "DPM++ 2M", "scheduler": "Karras", "batch_size": 2, "n_iter": 1,
		"styles": []string{}, "subseed": -1, "enable_hr": false, "send_images": true, "save_images": false,
		"alwayson_scripts": map[string]any{}, "override_settings": map[string]any{
			"CLIP_stop_at_last_layers": 2, "sd_model_checkpoint": "other.safetensors",
		},
	})
	require.Equal(t, http.StatusOK, code, "%s", data)
	var out struct {
		Images     []string       `json:"images"`
		Parameters map[string]any `json:"parameters"`
		Info       string         `json:"info"`
	}
	require.NoError(t, json.Unmarshal(data, &out))
	require.Len(t, out.Images, 2)
	var info map[string]any
	require.NoError(t, json.Unmarshal([]byte(out.Info), &info))
	seed := info["seed"].(float64)
	require.Less(t, seed, float64(1<<32), "random seeds are 32-bit, as A1111's")
	require.Equal(t, []any{seed, seed + 1}, info["all_seeds"])
	require.EqualValues(t, 2, info["clip_skip"])
	require.Equal(t, "DPM++ 2M Karras", info["sampler_name"])
	infotexts := info["infotexts"].([]any)
	require.Contains(t, infotexts[0], "Negative prompt: blurry")
	require.Contains(t, infotexts[0], "Clip skip: 2")
	require.EqualValues(t, seed, out.Parameters["seed"])

	code, _, data = call(t, "GET", ts.URL+"/sdapi/v1/samplers", nil)
	require.Equal(t, http.StatusOK, code)
	var samplers []map[string]any
	require.NoError(t, json.Unmarshal(data, &samplers))
	var sn []string
	for _, s := range samplers {
		sn = append(sn, s["name"].(string))
	}
	require.Contains(t, sn, "euler_a")
	require.Contains(t, sn, "dpmpp_2m")

	code, _, data = call(t, "GET", ts.URL+"/sdapi/v1/sd-models", nil)
	require.Equal(t, http.StatusOK, code)
	var models []map[string]any
	require.NoError(t, json.Unmarshal(data, &models))
	require.Len(t, models, 1)
	require.Equal(t, "sd15", models[0]["model_name"], "the folder's name, never its path")

	code, _, data = call(t, "GET", ts.URL+"/sdapi/v1/schedulers", nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(data), "karras")
	code, _, data = call(t, "GET", ts.URL+"/sdapi/v1/options", nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "sd15", decode(t, data)["sd_model_checkpoint"])

	code, _, data = call(t, "GET", ts.URL+"/sdapi/v1/progress", nil)
	require.Equal(t, http.StatusOK, code)
	m := decode(t, data)
	require.EqualValues(t, 0, m["progress"])
	require.Nil(t, m["current_image"])

	for _, c := range []struct{ body, code, field string }{
		{`{"prompt": "x", "enable_hr": true}`, "invalid_field", "enable_hr"},
		{`{"prompt": "x", "restore_faces": true}`, "invalid_field", "restore_faces"},
		{`{"prompt": "x", "sampler_name": "Nope"}`, "invalid_field", "sampler_name"},
		{`{"prompt": "x", "scheduler": "SGM Uniform", "sampler_name": "Euler"}`, "invalid_field", "scheduler"},
		{`{"prompt": "x", "batch_size": 4, "n_iter": 4}`, "invalid_field", "batch_size"},
		{`{"prompt": "x", "cfg_scale": -1}`, "invalid_field", "cfg_scale"},
		{`{"prompt": "x", "init_images": ["AAAA"]}`, "invalid_field", "init_images"},
		{`{"prompt": "x", "frobnicate": 1}`, "unknown_field", "frobnicate"},
		{`{"prompt": "x", "override_settings": {"CLIP_stop_at_last_layers": 99}}`, "invalid_field", "override_settings.CLIP_stop_at_last_layers"},
	} {
		code, _, data := call(t, "POST", ts.URL+"/sdapi/v1/txt2img", c.body)
		e := apiError(t, code, data, http.StatusBadRequest, c.code)
		require.Equal(t, c.field, e["field"], c.body)
	}
	for _, c := range []struct{ body, field string }{
		{`{"prompt": "x"}`, "init_images"},
		{`{"prompt": "x", "init_images": ["` + b64png(t, 64, 64) + `"], "denoising_strength": 0}`, "denoising_strength"},
		{`{"prompt": "x", "init_images": ["` + b64png(t, 64, 64) + `"], "inpainting_mask_invert": 2, "mask": "` + b64png(t, 64, 64) + `"}`, "inpainting_mask_invert"},
		{`{"prompt": "x", "init_images": ["not base64!"]}`, "init_images"},
	} {
		code, _, data := call(t, "POST", ts.URL+"/sdapi/v1/img2img", c.body)
		e := apiError(t, code, data, http.StatusBadRequest, "invalid_field")
		require.Equal(t, c.field, e["field"], c.body)
	}
}

// A1111's progress reports the running job with its preview; interrupt
// cancels it, and the synchronous caller gets the cancellation.
func TestA1111ProgressAndInterrupt(t *testing.T) {
	fe := newFake(10 * time.Millisecond)
	ts := startServer(t, Config{PreviewEvery: 1}, fe)
	ts.waitReady(t)
	type answer struct {
		code int
		data []byte
	}
	done := make(chan answer, 1)
	go func() {
		code, _, data := call(t, "POST", ts.URL+"/sdapi/v1/txt2img", map[string]any{"prompt": "slow", "steps": 150})
		done <- answer{code, data}
	}()
	var m map[string]any
	require.Eventually(t, func() bool {
		_, _, data := call(t, "GET", ts.URL+"/sdapi/v1/progress", nil)
		m = decode(t, data)
		return m["progress"].(float64) > 0 && m["current_image"] != nil
	}, 10*time.Second, 10*time.Millisecond)
	state := m["state"].(map[string]any)
	require.EqualValues(t, 150, state["sampling_steps"])
	require.True(t, strings.HasPrefix(state["job"].(string), "task("))
	_, err := base64.StdEncoding.DecodeString(m["current_image"].(string))
	require.NoError(t, err)

	code, _, _ := call(t, "POST", ts.URL+"/sdapi/v1/interrupt", nil)
	require.Equal(t, http.StatusOK, code)
	select {
	case a := <-done:
		apiError(t, a.code, a.data, http.StatusServiceUnavailable, "cancelled")
	case <-time.After(5 * time.Second):
		t.Fatal("interrupt did not end the request")
	}
}

// A client that disconnects from a synchronous endpoint cancels its job.
func TestSyncDisconnectCancels(t *testing.T) {
	fe := newFake(10 * time.Millisecond)
	fe.info.Steps = 150 // OpenAI's API has no steps: the model's default
	ts := startServer(t, Config{}, fe)
	ts.waitReady(t)
	for _, ep := range []struct{ path, body string }{
		{"/v1/images/generations", `{"prompt": "gone", "size": "64x64"}`},
		{"/sdapi/v1/txt2img", `{"prompt": "gone", "steps": 150}`},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		req, err := http.NewRequestWithContext(ctx, "POST", ts.URL+ep.path, strings.NewReader(ep.body))
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		var id string
		require.Eventually(t, func() bool {
			_, _, data := call(t, "GET", ts.URL+"/sdapi/v1/progress", nil)
			job := decode(t, data)["state"].(map[string]any)["job"].(string)
			id = strings.TrimSuffix(strings.TrimPrefix(job, "task("), ")")
			return id != ""
		}, 10*time.Second, 5*time.Millisecond)
		cancel()
		require.Error(t, <-errc)
		st := waitDone(t, ts.URL, id)
		require.Equal(t, stateCancelled, st.Status, ep.path)
		require.Contains(t, st.Error.Message, "disconnected")
	}
}

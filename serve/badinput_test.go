package serve

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// pngHeader is the start of a PNG claiming w x h RGBA pixels: a valid
// signature and IHDR chunk, no pixel data.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6 // 8 bits, RGBA
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], 13)
	b.Write(n[:])
	chunk := append([]byte("IHDR"), ihdr...)
	b.Write(chunk)
	binary.BigEndian.PutUint32(n[:], crc32.ChecksumIEEE(chunk))
	b.Write(n[:])
	return b.Bytes()
}

type badCase struct {
	name   string
	body   string
	status int
	code   string
	field  string
}

// badCases are request bodies for POST /v1/jobs that must be refused; they
// also seed FuzzDecodeRequest.
func badCases(t testing.TB) []badCase {
	bomb := base64.StdEncoding.EncodeToString(pngHeader(50000, 50000))
	wide := base64.StdEncoding.EncodeToString(pngHeader(20000, 10))
	truncated := pngOf(t, 64, 64)
	truncated = truncated[:len(truncated)/2]
	good := b64png(t, 64, 64)
	text := base64.StdEncoding.EncodeToString([]byte("hello, this is not an image"))
	const bad, json, field, unknown = http.StatusBadRequest, "invalid_json", "invalid_field", "unknown_field"
	return []badCase{
		{"empty body", ``, bad, json, ""},
		{"spaces", `   `, bad, json, ""},
		{"not JSON", `prompt=cat`, bad, json, ""},
		{"truncated JSON", `{"prompt": "x"`, bad, json, ""},
		{"syntax error", `{"prompt" "x"}`, bad, json, ""},
		{"trailing data", `{"prompt": "x"} {"prompt": "y"}`, bad, json, ""},
		{"array", `[{"prompt": "x"}]`, bad, json, ""},
		{"null", `null`, bad, json, ""},
		{"string", `"a cat"`, bad, json, ""},
		{"NaN literal", `{"guidance": NaN}`, bad, json, ""},
		{"Infinity literal", `{"guidance": Infinity}`, bad, json, ""},
		{"prompt number", `{"prompt": 1}`, bad, field, "prompt"},
		{"prompt object", `{"prompt": {"text": "x"}}`, bad, field, "prompt"},
		{"steps string", `{"prompt": "x", "steps": "10"}`, bad, field, "steps"},
		{"steps fraction", `{"prompt": "x", "steps": 2.5}`, bad, field, "steps"},
		{"steps exponent", `{"prompt": "x", "steps": 1e9}`, bad, field, "steps"},
		{"width bool", `{"prompt": "x", "width": true}`, bad, field, "width"},
		{"guidance string NaN", `{"prompt": "x", "guidance": "NaN"}`, bad, field, "guidance"},
		{"seed string", `{"prompt": "x", "seed": "42"}`, bad, field, "seed"},
		{"seed fraction", `{"prompt": "x", "seed": 4.2}`, bad, field, "seed"},
		{"seed -2", `{"prompt": "x", "seed": -2}`, bad, field, "seed"},
		{"seed 2^64", `{"prompt": "x", "seed": 18446744073709551616}`, bad, field, "seed"},
		{"negative_prompt number", `{"prompt": "x", "negative_prompt": 5}`, bad, field, "negative_prompt"},
		{"original_size short", `{"prompt": "x", "original_size": [1]}`, bad, field, "original_size"},
		{"crop long", `{"prompt": "x", "crop_top_left": [1, 2, 3]}`, bad, field, "crop_top_left"},
		{"batch bool", `{"prompt": "x", "batch": true}`, bad, field, "batch"},
		{"unknown field", `{"prompt": "x", "frobnicate": 1}`, bad, unknown, "frobnicate"},
		{"model path", `{"prompt": "x", "model": "/etc/passwd"}`, bad, unknown, "model"},
		{"checkpoint path", `{"prompt": "x", "checkpoint": "../../x.safetensors"}`, bad, unknown, "checkpoint"},
		{"negative steps", `{"prompt": "x", "steps": -1}`, bad, field, "steps"},
		{"huge steps", `{"prompt": "x", "steps": 1000000000}`, bad, field, "steps"},
		{"overflowing steps", `{"prompt": "x", "steps": 99999999999999999999}`, bad, field, "steps"},
		{"negative width", `{"prompt": "x", "width": -64}`, bad, field, "width"},
		{"huge width", `{"prompt": "x", "width": 50000, "height": 64}`, bad, field, "width"},
		{"odd width", `{"prompt": "x", "width": 65}`, bad, field, "width"},
		{"tiny height", `{"prompt": "x", "height": 8}`, bad, field, "height"},
		{"negative guidance", `{"prompt": "x", "guidance": -1}`, bad, field, "guidance"},
		{"huge guidance", `{"prompt": "x", "guidance": 1e308}`, bad, field, "guidance"},
		{"overflowing guidance", `{"prompt": "x", "guidance": 1e400}`, bad, field, "guidance"},
		{"negative batch", `{"prompt": "x", "batch": -1}`, bad, field, "batch"},
		{"huge batch", `{"prompt": "x", "batch": 1000}`, bad, field, "batch"},
		{"negative strength", `{"prompt": "x", "strength": -0.5}`, bad, field, "strength"},
		{"strength above 1", `{"prompt": "x", "strength": 1.5, "init_image": "` + good + `"}`, bad, field, "strength"},
		{"negative clip skip", `{"prompt": "x", "clip_skip": -1}`, bad, field, "clip_skip"},
		{"negative eta", `{"prompt": "x", "eta": -1}`, bad, field, "eta"},
		{"eta without eta", `{"prompt": "x", "scheduler": "euler", "eta": 0.5}`, bad, field, "eta"},
		{"unknown scheduler", `{"prompt": "x", "scheduler": "../../etc"}`, bad, field, "scheduler"},
		{"unknown rng", `{"prompt": "x", "rng": "tpu"}`, bad, field, "rng"},
		{"negative size conditioning", `{"prompt": "x", "original_size": [-1, 5]}`, bad, field, "original_size"},
		{"long prompt", `{"prompt": "` + strings.Repeat("a", 9000) + `"}`, bad, field, "prompt"},
		{"invalid base64", `{"prompt": "x", "init_image": "!!!not base64!!!"}`, bad, field, "init_image"},
		{"data URL without base64", `{"prompt": "x", "init_image": "data:image/png,abc"}`, bad, field, "init_image"},
		{"data URL with bad base64", `{"prompt": "x", "init_image": "data:image/png;base64,@@@@"}`, bad, field, "init_image"},
		{"non-image bytes", `{"prompt": "x", "init_image": "` + text + `"}`, bad, field, "init_image"},
		{"decompression bomb", `{"prompt": "x", "init_image": "` + bomb + `"}`, bad, field, "init_image"},
		{"too wide image", `{"prompt": "x", "init_image": "` + wide + `"}`, bad, field, "init_image"},
		{"bomb as mask", `{"prompt": "x", "init_image": "` + good + `", "mask": "` + bomb + `"}`, bad, field, "mask"},
		{"truncated PNG", `{"prompt": "x", "init_image": "` + base64.StdEncoding.EncodeToString(truncated) + `"}`, bad, field, "init_image"},
		{"mask without image", `{"prompt": "x", "mask": "` + good + `"}`, bad, field, "mask"},
		{"init image too large for the limits", `{"prompt": "x", "init_image": "` + b64png(t, 2048, 8) + `"}`, bad, field, "init_image"},
	}
}

// Every bad request gets a 4xx JSON error naming the field, and the worker
// goes on serving; nothing reaches the engine.
func TestBadInput(t *testing.T) {
	fe := newFake(0)
	ts := startServer(t, Config{MaxBody: 256 << 10, Limits: Limits{MaxWidth: 1024, MaxHeight: 1024}}, fe)
	ts.waitReady(t)
	for _, c := range badCases(t) {
		t.Run(c.name, func(t *testing.T) {
			code, h, data := call(t, "POST", ts.URL+"/v1/jobs", c.body)
			require.Equal(t, "application/json", h.Get("Content-Type"))
			e := apiError(t, code, data, c.status, c.code)
			require.Equal(t, c.field, e["field"], "%s", data)
		})
	}
	t.Run("oversized body", func(t *testing.T) {
		body := `{"prompt": "x", "init_image": "` + strings.Repeat("A", 300<<10) + `"}`
		for _, path := range []string{"/v1/jobs", "/v1/images/generations", "/sdapi/v1/img2img"} {
			code, _, data := call(t, "POST", ts.URL+path, body)
			apiError(t, code, data, http.StatusRequestEntityTooLarge, "body_too_large")
		}
	})
	t.Run("missing auth", func(t *testing.T) {
		locked := startServer(t, Config{APIKey: "k"}, fe)
		code, _, data := call(t, "POST", locked.URL+"/v1/jobs", `{"prompt": "x"}`)
		apiError(t, code, data, http.StatusUnauthorized, "unauthorized")
	})
	fe.mu.Lock()
	require.Empty(t, fe.calls, "no bad request reached the engine")
	fe.mu.Unlock()

	// Still serving.
	id := submit(t, ts.URL, map[string]any{"prompt": "fine", "steps": 1})
	require.Equal(t, stateCompleted, waitDone(t, ts.URL, id).Status)
	code, _, _ := call(t, "GET", ts.URL+"/health", nil)
	require.Equal(t, http.StatusOK, code)
}

var fuzzInfo = Info{Model: "fuzz", Family: "sd1", SchedulerClass: "PNDMScheduler", Width: 64, Height: 64, Steps: 2, Guidance: 7.5}

// FuzzDecodeRequest: whatever the body, the decoder answers a request or a
// 4xx *APIError, and never panics.
func FuzzDecodeRequest(f *testing.F) {
	for _, c := range badCases(f) {
		f.Add([]byte(c.body))
	}
	f.Add([]byte(`{"prompt": "a cat", "steps": 4, "seed": 18446744073709551615, "batch": 2, "guidance": 0}`))
	f.Add([]byte(`{"prompt": "a cat", "negative_prompt": null, "scheduler": "DPM++ 2M Karras", "original_size": [1024, 1024], "crop_top_left": [0, 0]}`))
	f.Add([]byte(`{"prompt": "x", "init_image": "data:image/png;base64,` + b64png(f, 64, 64) + `", "mask": "` + b64png(f, 16, 16) + `", "strength": 0.5}`))
	lim := Limits{MaxWidth: 512, MaxHeight: 512, MaxSteps: 50, MaxBatch: 4, MaxInputPixels: 256 * 256, MaxPromptBytes: 1024}
	f.Fuzz(func(t *testing.T, data []byte) {
		jr, err := DecodeRequest(data, fuzzInfo, lim)
		if err != nil {
			require.Nil(t, jr)
			ae, ok := errors.AsType[*APIError](err)
			require.True(t, ok, "%T %v", err, err)
			require.GreaterOrEqual(t, ae.Status, 400)
			require.Less(t, ae.Status, 500)
			require.NotEmpty(t, ae.Code)
			require.NotEmpty(t, ae.Message)
			return
		}
		require.NotNil(t, jr)
		sp, aerr := validate(fromJobRequest(jr), fuzzInfo, lim.withDefaults())
		require.Nil(t, aerr)
		r := sp.req
		require.True(t, r.Width >= minSide && r.Width <= lim.MaxWidth && r.Width%8 == 0, "width %d", r.Width)
		require.True(t, r.Height >= minSide && r.Height <= lim.MaxHeight && r.Height%8 == 0, "height %d", r.Height)
		require.True(t, r.Steps >= 1 && r.Steps <= lim.MaxSteps)
		require.True(t, sp.images >= 1 && sp.images <= lim.MaxBatch)
	})
}

package serve

import (
	"bytes"
	"context"
	"image/png"
	"net/http"
	"testing"

	"github.com/sdgo/sdgo/diffusion"
	"github.com/sdgo/sdgo/diffusion/lora"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/stretchr/testify/require"
)

// jobImage fetches image 0 of a finished job and returns its pixels.
func jobImage(t *testing.T, base, id string) []byte {
	t.Helper()
	st := waitDone(t, base, id)
	require.Equal(t, stateCompleted, st.Status, "%+v", st)
	code, _, data := call(t, "GET", base+"/v1/jobs/"+id+"/images/0.png", nil)
	require.Equal(t, http.StatusOK, code)
	img, err := png.Decode(bytes.NewReader(data))
	require.NoError(t, err)
	var pix []byte
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			pix = append(pix, byte(r>>8), byte(g>>8), byte(bl>>8))
		}
	}
	return pix
}

// LoRAs by name from the worker's folder: the image equals the library's with
// the same LoRA; a later job without LoRAs is the plain image again; names that
// are paths, unknown names and a worker without a folder are 400s.
func TestWorkerLoRAs(t *testing.T) {
	dir := fixture.Path(t, "lora")
	ts := startServer(t, Config{LoRADir: dir}, tinyEngine(t))
	ts.waitReady(t)
	body := func(loras any) map[string]any {
		m := map[string]any{"prompt": "a photo of an astronaut", "steps": 2, "seed": 42}
		if loras != nil {
			m["loras"] = loras
		}
		return m
	}
	withLoRA := jobImage(t, ts.URL, submit(t, ts.URL, body([]map[string]any{{"name": "sd15.a.diffusers", "scale": 0.8}})))
	plain := jobImage(t, ts.URL, submit(t, ts.URL, body(nil)))
	require.NotEqual(t, withLoRA, plain, "the LoRA changes the image")

	// The same through the library.
	p, err := diffusion.Load(context.Background(), fixture.Path(t, "models/sd15"), diffusion.Options{})
	require.NoError(t, err)
	defer p.Close()
	l, err := lora.Open(fixture.Path(t, "lora/sd15.a.diffusers.safetensors"))
	require.NoError(t, err)
	g, err := diffusion.NewGenerator("cpu", 42)
	require.NoError(t, err)
	res, err := p.Generate(context.Background(), diffusion.Request{Prompt: "a photo of an astronaut", Steps: 2, Guidance: 7.5, Generator: g,
		LoRAs: []lora.Adapter{{LoRA: l, Scale: 0.8}}})
	require.NoError(t, err)
	var want []byte
	img := res.Images[0]
	for i := 0; i < len(img.Pix); i += 4 {
		want = append(want, img.Pix[i:i+3]...)
	}
	require.Equal(t, want, withLoRA)

	// A1111 clients put the LoRA in the prompt.
	code, _, data := call(t, "POST", ts.URL+"/sdapi/v1/txt2img", map[string]any{"prompt": "a photo of an astronaut <lora:sd15.a.diffusers:0.8>", "steps": 2, "seed": 42, "cfg_scale": 7.5})
	require.Equal(t, http.StatusOK, code, "%s", data)

	for _, c := range []struct {
		loras any
		field string
	}{
		{[]map[string]any{{"name": "../lora/sd15.a.diffusers"}}, "loras[0].name"},
		{[]map[string]any{{"name": "/etc/passwd"}}, "loras[0].name"},
		{[]map[string]any{{"name": "missing"}}, "loras[0].name"},
		{[]map[string]any{{"name": "sd15.a.diffusers", "scale": 1e9}}, "loras[0].scale"},
		{[]map[string]any{{"name": ""}}, "loras[0].name"},
	} {
		code, _, data := call(t, "POST", ts.URL+"/v1/jobs", body(c.loras))
		e := apiError(t, code, data, http.StatusBadRequest, "invalid_field")
		require.Equal(t, c.field, e["field"], "%s", data)
	}
	code, _, data = call(t, "POST", ts.URL+"/sdapi/v1/txt2img", map[string]any{"prompt": "x <lora:../../x:1>", "steps": 2})
	e := apiError(t, code, data, http.StatusBadRequest, "invalid_field")
	require.Equal(t, "prompt", e["field"])

	bare := startServer(t, Config{}, tinyEngine(t))
	bare.waitReady(t)
	code, _, data = call(t, "POST", bare.URL+"/v1/jobs", body([]map[string]any{{"name": "sd15.a.diffusers"}}))
	e = apiError(t, code, data, http.StatusBadRequest, "invalid_field")
	require.Contains(t, e["message"], "no LoRA folder")
}

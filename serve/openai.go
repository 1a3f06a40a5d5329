package serve

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// openAIRequest is the body of OpenAI's POST /v1/images/generations. model,
// quality, style and user are accepted and ignored: this worker serves one
// model, and no request chooses another.
type openAIRequest struct {
	Prompt         string `json:"prompt"`
	N              *int   `json:"n"`
	Size           string `json:"size"`
	ResponseFormat string `json:"response_format"`
	Model          string `json:"model"`
	Quality        string `json:"quality"`
	Style          string `json:"style"`
	User           string `json:"user"`
}

func parseOpenAI(req *openAIRequest) parser {
	return func(data []byte, info Info, lim Limits) (*jobSpec, *APIError) {
		if err := decodeJSON(data, req); err != nil {
			return nil, err
		}
		if strings.TrimSpace(req.Prompt) == "" {
			return nil, fieldError("prompt", "is required")
		}
		switch req.ResponseFormat {
		case "", "url", "b64_json":
		default:
			return nil, fieldError("response_format", "is %q; expected url or b64_json", truncate(req.ResponseFormat, 32))
		}
		g := &genParams{prompt: req.Prompt, names: map[string]string{"batch": "n", "width": "size", "height": "size"}}
		if req.N != nil {
			if *req.N < 1 {
				return nil, fieldError("n", "is %d; expected 1 to %d", *req.N, lim.MaxBatch)
			}
			g.images = *req.N
		}
		if req.Size != "" && req.Size != "auto" {
			w, h, ok := strings.Cut(req.Size, "x")
			x, err1 := strconv.Atoi(w)
			y, err2 := strconv.Atoi(h)
			if !ok || err1 != nil || err2 != nil || x <= 0 || y <= 0 {
				return nil, fieldError("size", "is %q; expected WIDTHxHEIGHT, e.g. 512x512", truncate(req.Size, 32))
			}
			g.width, g.height = x, y
		}
		return validate(g, info, lim)
	}
}

type openAIImage struct {
	URL     string `json:"url,omitempty"`
	B64JSON string `json:"b64_json,omitempty"`
}

// handleOpenAI is OpenAI's image generation: synchronous, answered when the
// images are made. A client that disconnects cancels its job.
func (s *Server) handleOpenAI(w http.ResponseWriter, r *http.Request) {
	var req openAIRequest
	j, err := s.accept(w, r, "openai", parseOpenAI(&req))
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
	data := make([]openAIImage, len(images))
	for i, img := range images {
		if req.ResponseFormat == "b64_json" {
			data[i].B64JSON = b64(img)
		} else {
			data[i].URL = baseURL(r) + j.imageURL(i)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"created": time.Now().Unix(), "data": data})
}

// baseURL is the scheme and host the client reached the server at.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

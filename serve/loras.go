package serve

import (
	"errors"
	"fmt"
	"sync"

	"github.com/sdgo/sdgo/diffusion/lora"
)

// loraCache keeps the LoRA files requests have used, parsed, so that a LoRA
// used job after job is read once (and, the adapters being the same, attached
// once). It holds at most loraCacheSize files, dropping the least recently used.
type loraCache struct {
	mu    sync.Mutex
	files map[string]*lora.LoRA
	order []string // least recently used first
}

const loraCacheSize = 16

func (c *loraCache) open(path string) (*lora.LoRA, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l, ok := c.files[path]; ok {
		c.touch(path)
		return l, nil
	}
	l, err := lora.Open(path)
	if err != nil {
		return nil, err
	}
	if c.files == nil {
		c.files = map[string]*lora.LoRA{}
	}
	if len(c.order) >= loraCacheSize {
		delete(c.files, c.order[0])
		c.order = c.order[1:]
	}
	c.files[path] = l
	c.order = append(c.order, path)
	return l, nil
}

func (c *loraCache) touch(path string) {
	for i, p := range c.order {
		if p == path {
			c.order = append(append(c.order[:i:i], c.order[i+1:]...), path)
			return
		}
	}
}

// resolveLoRAs turns a job's LoRA names into adapters from the worker's
// folder. A job without LoRAs gets an empty, non-nil list, so that the
// pipeline drops the previous job's.
func (s *Server) resolveLoRAs(sp *jobSpec) *APIError {
	sp.req.LoRAs = []lora.Adapter{}
	for _, ref := range sp.loras {
		if s.cfg.LoRADir == "" {
			return fieldError(ref.nameField(), "this worker has no LoRA folder (sd serve --lora-dir)")
		}
		path, err := lora.Resolve(s.cfg.LoRADir, ref.name)
		if err != nil {
			if errors.Is(err, lora.ErrNotFound) {
				return fieldError(ref.nameField(), "no LoRA called %q in the worker's folder", truncate(ref.name, 128))
			}
			return fieldError(ref.nameField(), "%q is not a LoRA name: %v", truncate(ref.name, 128), err)
		}
		l, err := s.loras.open(path)
		if err != nil {
			return &APIError{Status: 422, Code: "invalid_lora", Field: ref.nameField(), Message: fmt.Sprintf("LoRA %q: %v", ref.name, err)}
		}
		sp.req.LoRAs = append(sp.req.LoRAs, lora.Adapter{LoRA: l, Scale: ref.scale})
	}
	return nil
}

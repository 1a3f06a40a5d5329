package main

import (
	"context"
	"fmt"

	"github.com/sdgo/sdgo/diffusion"
	"github.com/sdgo/sdgo/diffusion/hub"
)

// resolveModel turns what --model (or a MODEL argument) names into a local
// path: a preset's repository or a Hub repository id is downloaded into (or
// found in) the Hugging Face cache; a local path is returned as it is.
func resolveModel(ctx context.Context, name, variant string) (string, error) {
	if p, ok := diffusion.LookupPreset(name); ok {
		name = p.Repo
	}
	if !hub.IsRepoID(name) {
		return name, nil
	}
	c, err := hub.NewClientFromEnv()
	if err != nil {
		return "", err
	}
	dir, err := c.LocalPath(ctx, name, &hub.Options{Variant: variant})
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return dir, nil
}

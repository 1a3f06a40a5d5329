package diffusion

import (
	"context"
	"testing"

	"github.com/sdgo/sdgo/diffusion/hub"
	"github.com/sdgo/sdgo/diffusion/hub/hubtest"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/stretchr/testify/require"
)

// A repository id loads like the folder it names: the fixture's sd15 folder,
// served by a fake Hub, downloads into the cache and generates the same image.
func TestLoadFromHub(t *testing.T) {
	srv := hubtest.NewServer(t)
	dir := fixture.Path(t, "models/sd15")
	files := hubtest.FilesFromDir(t, dir)
	srv.AddRepo("tiny/sd15", files...)
	client := &hub.Client{Endpoint: srv.URL, CacheDir: t.TempDir()}

	ctx := context.Background()
	fromHub, err := Load(ctx, "tiny/sd15", Options{Hub: client})
	require.NoError(t, err)
	defer fromHub.Close()
	fromDir, err := Load(ctx, dir, Options{})
	require.NoError(t, err)
	defer fromDir.Close()
	gen := func(p *Pipeline) []byte {
		g, err := NewGenerator("cpu", 5)
		require.NoError(t, err)
		res, err := p.Generate(ctx, Request{Prompt: "a red fox", Steps: 2, Guidance: 7.5, Generator: g})
		require.NoError(t, err)
		return res.Images[0].Pix
	}
	require.Equal(t, gen(fromDir), gen(fromHub))

	// Offline, the cached snapshot is enough.
	offline := &hub.Client{Endpoint: "http://127.0.0.1:1", CacheDir: client.CacheDir, Offline: true}
	again, err := Load(ctx, "tiny/sd15", Options{Hub: offline})
	require.NoError(t, err)
	again.Close()
}

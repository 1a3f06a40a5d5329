package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdgo/sdgo/diffusion/hub"
	"github.com/sdgo/sdgo/diffusion/hub/hubtest"
)

// fakeHubEnv starts a fake Hub and points the environment at it, with a
// fresh HF_HOME.
func fakeHubEnv(t *testing.T) (srv *hubtest.Server, home string) {
	srv = hubtest.NewServer(t)
	home = t.TempDir()
	for k, v := range map[string]string{
		"HF_ENDPOINT": srv.URL, "HF_HOME": home, "HF_HUB_CACHE": "", "HUGGINGFACE_HUB_CACHE": "",
		"HF_TOKEN": "", "HUGGING_FACE_HUB_TOKEN": "", "HF_TOKEN_PATH": "", "HF_HUB_OFFLINE": "", "TRANSFORMERS_OFFLINE": "",
	} {
		t.Setenv(k, v)
	}
	return srv, home
}

func file(p, data string, lfs bool) hubtest.File {
	return hubtest.File{Path: p, Data: []byte(data), LFS: lfs}
}

func TestDownload(t *testing.T) {
	srv, home := fakeHubEnv(t)
	repo := srv.AddRepo("org/tiny",
		file("model_index.json", `{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"], "scheduler": ["diffusers", "DDIMScheduler"]}`, false),
		file("scheduler/scheduler_config.json", `{"num_train_timesteps": 1000}`, false),
		file("unet/config.json", `{"sample_size": 8}`, false),
		file("unet/diffusion_pytorch_model.safetensors", strings.Repeat("w32", 1000), true),
		file("unet/diffusion_pytorch_model.fp16.safetensors", strings.Repeat("w16", 500), true),
		file("v1-5-pruned.ckpt", strings.Repeat("ckpt", 100), true),
		file("README.md", "hello", false),
	)
	commit := repo.Head("main")
	snap := filepath.Join(home, "hub", "models--org--tiny", "snapshots", commit)

	status, out, errOut := sd(t, "download", "org/tiny", "--variant", "fp16")
	require.Equal(t, 0, status, errOut)
	require.Equal(t, snap+"\n", out)
	require.NotContains(t, errOut, "\r", "no progress bar when stderr is not a terminal")
	require.Contains(t, errOut, "snapshot ready")
	var got []string
	require.NoError(t, filepath.Walk(snap, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(snap, p)
			got = append(got, filepath.ToSlash(rel))
		}
		return err
	}))
	require.ElementsMatch(t, []string{"model_index.json", "scheduler/scheduler_config.json", "unet/config.json",
		"unet/diffusion_pytorch_model.fp16.safetensors"}, got)
	ref, err := os.ReadFile(filepath.Join(home, "hub", "models--org--tiny", "refs", "main"))
	require.NoError(t, err)
	require.Equal(t, commit, string(ref))

	// Quiet: only the path. And one named file.
	status, out, errOut = sd(t, "download", "--quiet", "org/tiny@"+commit, "--include", "*.ckpt", "--include", "README.md")
	require.Equal(t, 0, status, errOut)
	require.Equal(t, snap+"\n", out)
	require.Empty(t, errOut)
	data, err := os.ReadFile(filepath.Join(snap, "v1-5-pruned.ckpt"))
	require.NoError(t, err)
	require.Equal(t, strings.Repeat("ckpt", 100), string(data))

	// Offline, from the cache; and a miss.
	t.Setenv("HF_HUB_OFFLINE", "1")
	srv.ResetRequests()
	status, out, errOut = sd(t, "download", "org/tiny", "--variant", "fp16")
	require.Equal(t, 0, status, errOut)
	require.Equal(t, snap+"\n", out)
	require.Empty(t, srv.Requests())
	status, _, errOut = sd(t, "download", "org/tiny@dev")
	require.Equal(t, 1, status)
	require.Contains(t, errOut, "sd download: hub: org/tiny@dev is not in the cache")
	require.Contains(t, errOut, "HF_HUB_OFFLINE")
}

func TestDownloadErrors(t *testing.T) {
	srv, home := fakeHubEnv(t)
	srv.AddRepo("org/single", file("sd_xl.safetensors", "weights", true), file("README.md", "x", false))
	gated := srv.AddRepo("org/gated", file("model_index.json", `{}`, false))
	gated.SetGated(true)

	for _, c := range []struct {
		args   []string
		status int
		msg    string
	}{
		{[]string{"download"}, 2, "want one repository id"},
		{[]string{"download", "a", "b"}, 2, "want one repository id"},
		{[]string{"download", "not-a-repo"}, 2, `"not-a-repo" is not a repository id`},
		{[]string{"download", "org/x", "--all", "--variant", "fp16"}, 2, "--variant chooses among"},
		{[]string{"download", "org/x", "--all", "--include", "*"}, 2, "exclude each other"},
		{[]string{"download", "org/x", "--bogus"}, 2, "bogus"},
		{[]string{"download", "org/nope"}, 1, "repository org/nope not found"},
		{[]string{"download", "org/single@v2"}, 1, `revision "v2" not found in org/single`},
		{[]string{"download", "org/single"}, 1, "org/single has no model_index.json, so it is not a diffusers pipeline: choose files with --include"},
		{[]string{"download", "org/single", "--include", "*.gguf"}, 1, "no file of org/single matches *.gguf; it has README.md (1 B), sd_xl.safetensors (7 B)"},
		{[]string{"download", "org/gated"}, 1, "org/gated is a gated repository: accept its conditions at " + srv.URL + "/org/gated, then set HF_TOKEN"},
	} {
		status, _, errOut := sd(t, c.args...)
		require.Equal(t, c.status, status, "%v: %s", c.args, errOut)
		require.Contains(t, errOut, c.msg, c.args)
	}

	// A single-file repository, one named file.
	status, out, errOut := sd(t, "download", "org/single", "--include", "sd_xl.safetensors", "--cache-dir", filepath.Join(home, "elsewhere"))
	require.Equal(t, 0, status, errOut)
	require.True(t, strings.HasPrefix(out, filepath.Join(home, "elsewhere", "models--org--single", "snapshots")+string(filepath.Separator)), out)
	data, err := os.ReadFile(filepath.Join(strings.TrimSpace(out), "sd_xl.safetensors"))
	require.NoError(t, err)
	require.Equal(t, "weights", string(data))

	// The token opens the gated repository.
	srv.SetToken("hf_ok")
	t.Setenv("HF_TOKEN", "hf_ok")
	status, _, errOut = sd(t, "download", "org/gated")
	require.Equal(t, 0, status, errOut)
}

func TestProgressBar(t *testing.T) {
	p := hub.Progress{Repo: "org/tiny", Done: 1_230_000_000, Total: 2_910_000_000, FilesDone: 5, Files: 17}
	require.Equal(t, "org/tiny  42% [==========>             ] 1.23 GB / 2.91 GB  48.2 MB/s  ETA 35s  5/17 files",
		renderProgress(p, 48_200_000))
	p.Done = p.Total
	p.FilesDone = 17
	require.Equal(t, "org/tiny 100% [========================] 2.91 GB / 2.91 GB  48.2 MB/s  17/17 files",
		renderProgress(p, 48_200_000))
	require.Equal(t, "org/x 100% [========================] 0 B / 0 B  0/0 files", renderProgress(hub.Progress{Repo: "org/x"}, 0))

	// Log lines clear the bar and redraw it; finish ends the line.
	var buf bytes.Buffer
	b := &progressBar{w: &buf}
	b.update(hub.Progress{Repo: "r", Done: 10, Total: 100, Files: 2})
	b.Write([]byte("level=WARN msg=retrying\n"))
	b.finish()
	s := buf.String()
	require.True(t, strings.HasPrefix(s, "\rr  10% ["), s)
	require.Contains(t, s, "\r\x1b[Klevel=WARN msg=retrying\n\rr  10% [")
	require.True(t, strings.HasSuffix(s, "0/2 files\x1b[K\n"), s)

	// Updates come at most ten times a second, but the last always shows.
	buf.Reset()
	b = &progressBar{w: &buf}
	for i := range 100 {
		b.update(hub.Progress{Repo: "r", Done: int64(i), Total: 100, Files: 1})
	}
	require.Equal(t, 1, strings.Count(buf.String(), "\r"))
	b.update(hub.Progress{Repo: "r", Done: 100, Total: 100, Files: 1, FilesDone: 1})
	require.Equal(t, 2, strings.Count(buf.String(), "\r"))
}

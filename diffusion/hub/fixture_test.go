package hub

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/sdgo/sdgo/diffusion/hub/hubtest"
)

// blobOf returns n deterministic bytes, different for each name.
func blobOf(name string, n int) []byte {
	b := make([]byte, n)
	x := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		x = (x ^ uint32(name[i])) * 16777619
	}
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func text(p, s string) hubtest.File { return hubtest.File{Path: p, Data: []byte(s)} }

func lfs(p string, n int) hubtest.File { return hubtest.File{Path: p, Data: blobOf(p, n), LFS: true} }

const modelIndex = `{
  "_class_name": "StableDiffusionPipeline",
  "_diffusers_version": "0.30.0",
  "feature_extractor": [null, null],
  "requires_safety_checker": false,
  "safety_checker": [null, null],
  "scheduler": ["diffusers", "PNDMScheduler"],
  "text_encoder": ["transformers", "CLIPTextModel"],
  "tokenizer": ["transformers", "CLIPTokenizer"],
  "tokenizer_2": ["transformers", "CLIPTokenizer"],
  "unet": ["diffusers", "UNet2DConditionModel"],
  "vae": ["diffusers", "AutoencoderKL"]
}`

func shardIndex(prefix string, shards ...string) string {
	var b bytes.Buffer
	b.WriteString(`{"metadata": {"total_size": 1000}, "weight_map": {`)
	for i, s := range shards {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `"%s.t%d": "%s", "%s.u%d": "%s"`, prefix, i, s, prefix, i, s)
	}
	b.WriteString("}}")
	return b.String()
}

// pipelineFiles is a small diffusers repository: what a pipeline loads, and
// what it must not fetch (other formats, single-file checkpoints, docs, a
// component model_index.json leaves out).
func pipelineFiles() []hubtest.File {
	return []hubtest.File{
		text("model_index.json", modelIndex),
		text("README.md", "# tiny\n"),
		text(".gitattributes", "*.safetensors filter=lfs\n"),
		text("v1-inference.yaml", "model: {}\n"),
		lfs("v1-5-pruned.ckpt", 3000),
		lfs("v1-5-pruned-emaonly.safetensors", 2500),
		lfs("model.onnx", 100),
		lfs("openvino/openvino_model.bin", 100),
		text("openvino/openvino_model.xml", "<xml/>"),

		text("scheduler/scheduler_config.json", `{"_class_name": "PNDMScheduler", "beta_end": 0.012}`),

		text("text_encoder/config.json", `{"hidden_size": 32}`),
		lfs("text_encoder/model.safetensors", 700),
		lfs("text_encoder/pytorch_model.bin", 700),
		lfs("text_encoder/flax_model.msgpack", 700),

		text("tokenizer/merges.txt", "#version: 0.2\na b\n"),
		text("tokenizer/vocab.json", `{"a": 0, "b": 1}`),
		text("tokenizer/special_tokens_map.json", `{}`),
		text("tokenizer/tokenizer_config.json", `{"model_max_length": 77}`),
		// tokenizer_2 shares its files' contents with tokenizer: one blob each.
		text("tokenizer_2/merges.txt", "#version: 0.2\na b\n"),
		text("tokenizer_2/vocab.json", `{"a": 0, "b": 1}`),

		text("unet/config.json", `{"sample_size": 8}`),
		lfs("unet/diffusion_pytorch_model.safetensors", 200_000),
		lfs("unet/diffusion_pytorch_model.fp16.safetensors", 100_000),
		lfs("unet/diffusion_pytorch_model.bin", 200_000),
		lfs("unet/diffusion_pytorch_model.fp16.bin", 100_000),
		lfs("unet/diffusion_flax_model.msgpack", 1000),

		text("vae/config.json", `{"scaling_factor": 0.18215}`),
		text("vae/diffusion_pytorch_model.safetensors.index.json", shardIndex("decoder",
			"diffusion_pytorch_model-00001-of-00002.safetensors", "diffusion_pytorch_model-00002-of-00002.safetensors")),
		lfs("vae/diffusion_pytorch_model-00001-of-00002.safetensors", 30_000),
		lfs("vae/diffusion_pytorch_model-00002-of-00002.safetensors", 20_000),
		text("vae/diffusion_pytorch_model.safetensors.index.fp16.json", shardIndex("decoder",
			"diffusion_pytorch_model.fp16-00001-of-00002.safetensors", "diffusion_pytorch_model.fp16-00002-of-00002.safetensors")),
		lfs("vae/diffusion_pytorch_model.fp16-00001-of-00002.safetensors", 15_000),
		lfs("vae/diffusion_pytorch_model.fp16-00002-of-00002.safetensors", 10_000),

		text("safety_checker/config.json", `{}`),
		lfs("safety_checker/model.safetensors", 5000),
	}
}

// The files Snapshot must fetch from pipelineFiles, without and with the
// fp16 variant.
var (
	pipelineCommon = []string{
		"model_index.json",
		"scheduler/scheduler_config.json",
		"text_encoder/config.json",
		"text_encoder/model.safetensors", // no fp16 file: the plain one
		"tokenizer/merges.txt",
		"tokenizer/special_tokens_map.json",
		"tokenizer/tokenizer_config.json",
		"tokenizer/vocab.json",
		"tokenizer_2/merges.txt",
		"tokenizer_2/vocab.json",
		"unet/config.json",
		"vae/config.json",
	}
	pipelinePlain = append([]string{
		"unet/diffusion_pytorch_model.safetensors",
		"vae/diffusion_pytorch_model-00001-of-00002.safetensors",
		"vae/diffusion_pytorch_model-00002-of-00002.safetensors",
		"vae/diffusion_pytorch_model.safetensors.index.json",
	}, pipelineCommon...)
	pipelineFP16 = append([]string{
		"unet/diffusion_pytorch_model.fp16.safetensors",
		"vae/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
		"vae/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
		"vae/diffusion_pytorch_model.safetensors.index.fp16.json",
	}, pipelineCommon...)
)

// fakeHub starts a fake Hub with the pipeline repository "org/tiny" and a
// Client on it caching in a temporary folder.
func fakeHub(t *testing.T) (*hubtest.Server, *hubtest.Repo, *Client) {
	t.Helper()
	srv := hubtest.NewServer(t)
	repo := srv.AddRepo("org/tiny", pipelineFiles()...)
	c := &Client{Endpoint: srv.URL, CacheDir: t.TempDir(), RetryWait: time.Millisecond, Timeout: 5 * time.Second}
	return srv, repo, c
}

// fileOf returns the named file of pipelineFiles.
func fileOf(t *testing.T, p string) hubtest.File {
	t.Helper()
	for _, f := range pipelineFiles() {
		if f.Path == p {
			return f
		}
	}
	t.Fatalf("no fixture file %s", p)
	return hubtest.File{}
}

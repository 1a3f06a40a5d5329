//go:build ignore

// gen_builtin compresses the full CLIP vocabulary (vocab.json and merges.txt, as in
// openai/clip-vit-large-patch14 and testdata/fixtures/tokenizer/clip_full) into the gzip files
// that builtin.go embeds. Run it with `go generate` in this directory; the output depends only
// on the input files (no names or times in the gzip headers).
package main

import (
	"bytes"
	"compress/gzip"
	"log"
	"os"
	"path/filepath"
)

func main() {
	src := filepath.Join("..", "..", "testdata", "fixtures", "tokenizer", "clip_full")
	for _, f := range [][2]string{{"vocab.json", "clip_vocab.json.gz"}, {"merges.txt", "clip_merges.txt.gz"}} {
		data, err := os.ReadFile(filepath.Join(src, f[0]))
		if err != nil {
			log.Fatal(err)
		}
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := zw.Write(data); err != nil {
			log.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(f[1], buf.Bytes(), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

package tokenizer

//go:generate go run gen_builtin.go

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"io"
	"sync"
)

// The full CLIP vocabulary (49408 ids: 256 byte characters, the same with "</w>", 48894
// merges, <|startoftext|> and <|endoftext|>), gzip-compressed by gen_builtin.go from
// testdata/fixtures/tokenizer/clip_full, which holds the files of openai/clip-vit-large-patch14.
var (
	//go:embed clip_vocab.json.gz
	builtinVocabGz []byte
	//go:embed clip_merges.txt.gz
	builtinMergesGz []byte
)

// builtin builds the built-in tokenizer once, on first use.
var builtin = sync.OnceValues(func() (*Tokenizer, error) {
	vocab, err := parseVocab(gunzip(builtinVocabGz))
	if err != nil {
		return nil, fmt.Errorf("built-in vocab.json: %w", err)
	}
	merges, err := parseMerges(gunzip(builtinMergesGz))
	if err != nil {
		return nil, fmt.Errorf("built-in merges.txt: %w", err)
	}
	sp := defaultSpecials()
	model, err := newBPE(vocab, merges, sp.unk.Content)
	if err != nil {
		return nil, err
	}
	return newTokenizer(model, nil, sp, DefaultMaxLength)
})

// gunzip returns a reader of the decompressed data; a corrupt stream shows up as a read
// error of the parser.
func gunzip(data []byte) io.Reader {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return errReader{err}
	}
	return zr
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// Builtin returns the tokenizer of the CLIP vocabulary built into the binary, configured as
// SD 1.x's (and SDXL's first) tokenizer: bos <|startoftext|>, eos, unk and pad <|endoftext|>,
// MaxLength 77. Builtin().WithPad("!") is the SD 2.x / SDXL tokenizer_2 one. Single-file
// checkpoints carry no tokenizer; this is the one they were trained with.
//
// It is built on first use (about 0.1 s) and shared. The embedded data is checked by the
// package's tests; if it were ever corrupt, Builtin panics.
func Builtin() *Tokenizer {
	t, err := builtin()
	if err != nil {
		panic("tokenizer: built-in vocabulary: " + err.Error())
	}
	return t
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"

	"github.com/sdgo/sdgo/diffusion/tokenizer"
)

func init() {
	register(command{name: "tokenize", summary: "show the CLIP token ids and tokens of a prompt", run: runTokenize})
}

// namedTokenizer is one tokenizer that sd tokenize reports on.
type namedTokenizer struct {
	name string // "tokenizer", "tokenizer_2" or "builtin"
	path string // its folder, "" for the built-in one
	tok  *tokenizer.Tokenizer
}

// tokenization is one entry of sd tokenize --json; the field names and order are the contract.
type tokenization struct {
	Tokenizer string   `json:"tokenizer"`
	IDs       []int    `json:"ids"`
	Tokens    []string `json:"tokens"`
}

func runTokenize(ctx context.Context, e *env, args []string) error {
	flags := newFlags(e, "tokenize", "[--model MODEL_DIR] [--max-length N] [--pad-token TOKEN] [--json] TEXT")
	model := flags.String("model", "", "diffusers `MODEL_DIR` (reports its tokenizer and tokenizer_2), or one tokenizer folder; without it, the built-in CLIP vocabulary")
	maxLen := flags.Int("max-length", 0, "truncate and pad to `N` ids as the pipelines do (77 for Stable Diffusion); 0: bos + tokens + eos, untruncated")
	padToken := flags.String("pad-token", "", "pad with this `TOKEN` instead of the model's (the built-in vocabulary pads with <|endoftext|>; SD 2.x and SDXL's tokenizer_2 use \"!\")")
	asJSON := flags.Bool("json", false, `print [{"tokenizer": NAME, "ids": [...], "tokens": [...]}, ...]`)
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if flags.NArg() != 1 {
		return fmt.Errorf("%w: want one TEXT argument (quote the prompt), got %d", errUsage, flags.NArg())
	}
	if *maxLen < 0 {
		return fmt.Errorf("%w: --max-length %d is negative", errUsage, *maxLen)
	}
	text := flags.Arg(0)

	dir := *model
	if dir != "" {
		var err error
		if dir, err = resolveModel(ctx, dir, ""); err != nil {
			return err
		}
	}
	toks, err := tokenizersOf(dir)
	if err != nil {
		return err
	}
	if *padToken != "" {
		for i := range toks {
			if toks[i].tok, err = toks[i].tok.WithPad(*padToken); err != nil {
				return fmt.Errorf("%w: --pad-token: %v", errUsage, err)
			}
		}
	}

	out := make([]tokenization, len(toks))
	for i, nt := range toks {
		ids := nt.tok.EncodeForModel(text, *maxLen)
		out[i] = tokenization{Tokenizer: nt.name, IDs: ids, Tokens: nt.tok.Tokens(ids)}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetEscapeHTML(false)
		return enc.Encode(out)
	}
	for i, nt := range toks {
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		printTokenization(e, nt, out[i])
	}
	return nil
}

// tokenizersOf returns the tokenizers of a model folder: tokenizer and, when present,
// tokenizer_2; or the folder itself when it is a tokenizer folder; or the built-in vocabulary
// when model is "".
func tokenizersOf(model string) ([]namedTokenizer, error) {
	if model == "" {
		return []namedTokenizer{{name: "builtin", tok: tokenizer.Builtin()}}, nil
	}
	st, err := os.Stat(model)
	if err != nil {
		return nil, fmt.Errorf("--model: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("--model %s is a file: give a diffusers folder (a single-file checkpoint has no tokenizer; leave out --model to use the built-in CLIP vocabulary)", model)
	}
	if isTokenizerDir(model) {
		tok, err := tokenizer.Load(model)
		if err != nil {
			return nil, err
		}
		return []namedTokenizer{{name: "tokenizer", path: model, tok: tok}}, nil
	}
	var toks []namedTokenizer
	for _, name := range []string{"tokenizer", "tokenizer_2"} {
		dir := filepath.Join(model, name)
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		tok, err := tokenizer.Load(dir)
		if err != nil {
			return nil, err
		}
		toks = append(toks, namedTokenizer{name: name, path: dir, tok: tok})
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("--model %s has no tokenizer folder (tokenizer/, tokenizer_2/) and is not one", model)
	}
	return toks, nil
}

func isTokenizerDir(dir string) bool {
	for _, f := range []string{"tokenizer.json", "vocab.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

// printTokenization writes the readable listing of one tokenizer's result: a header, then a
// line per id with its token string and the text it stands for.
func printTokenization(e *env, nt namedTokenizer, r tokenization) {
	where := "built-in CLIP vocabulary"
	if nt.path != "" {
		where = nt.path
	}
	t := nt.tok
	fmt.Fprintf(e.stdout, "%s (%s): %d ids; bos %d, eos %d, pad %d %q, vocabulary %d\n",
		nt.name, where, len(r.IDs), t.BOS(), t.EOS(), t.Pad(), t.Token(t.Pad()), t.VocabSize())
	w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  #\t   id\ttoken\ttext")
	for i, id := range r.IDs {
		fmt.Fprintf(w, "%3d\t%5d\t%s\t%s\n", i, id, r.Tokens[i], strconv.Quote(t.Decode([]int{id})))
	}
	w.Flush()
}

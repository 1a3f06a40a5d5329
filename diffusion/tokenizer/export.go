package tokenizer

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteBuiltin writes the built-in CLIP vocabulary into dir as a tokenizer folder
// of the legacy layout the Hub's CLIP repositories use, which Load, transformers'
// CLIPTokenizer and diffusers read: vocab.json and merges.txt (byte for byte the
// files of openai/clip-vit-large-patch14), tokenizer_config.json and
// special_tokens_map.json naming <|startoftext|> as bos, <|endoftext|> as eos and
// unk, and pad as the pad token: EndOfText for CLIP ViT-L (SD 1.x, SDXL's first
// encoder), "!" for the OpenCLIP encoders (SD 2.x, SDXL's second).
//
// It gives a converted single-file checkpoint, which carries no tokenizer, the
// folders a diffusers pipeline needs. dir is created if missing; each file is
// written to a temporary file and renamed, so none is ever half-written.
func WriteBuiltin(dir, pad string) error {
	if _, err := Builtin().WithPad(pad); err != nil {
		return err
	}
	vocab, err := io.ReadAll(gunzip(builtinVocabGz))
	if err != nil {
		return fmt.Errorf("tokenizer: built-in vocab.json: %w", err)
	}
	merges, err := io.ReadAll(gunzip(builtinMergesGz))
	if err != nil {
		return fmt.Errorf("tokenizer: built-in merges.txt: %w", err)
	}
	// Keys in the order transformers writes them (sorted).
	config, err := json.MarshalIndent(struct {
		AddPrefixSpace bool   `json:"add_prefix_space"`
		BOS            string `json:"bos_token"`
		DoLowerCase    bool   `json:"do_lower_case"`
		EOS            string `json:"eos_token"`
		Errors         string `json:"errors"`
		MaxLength      int    `json:"model_max_length"`
		Pad            string `json:"pad_token"`
		Class          string `json:"tokenizer_class"`
		Unk            string `json:"unk_token"`
	}{false, StartOfText, true, EndOfText, "replace", DefaultMaxLength, pad, "CLIPTokenizer", EndOfText}, "", "  ")
	if err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	specials, err := json.MarshalIndent(struct {
		BOS string `json:"bos_token"`
		EOS string `json:"eos_token"`
		Pad string `json:"pad_token"`
		Unk string `json:"unk_token"`
	}{StartOfText, EndOfText, pad, EndOfText}, "", "  ")
	if err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"vocab.json", vocab},
		{"merges.txt", merges},
		{"tokenizer_config.json", append(config, '\n')},
		{"special_tokens_map.json", append(specials, '\n')},
	} {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data); err != nil {
			return fmt.Errorf("tokenizer: %w", err)
		}
	}
	return nil
}

// writeFileAtomic writes data to a temporary file beside path and renames it
// over path once complete.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}

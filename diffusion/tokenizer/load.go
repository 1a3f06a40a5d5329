package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Load reads the tokenizer in dir, a diffusers tokenizer folder (model/tokenizer,
// model/tokenizer_2) in either layout: tokenizer.json, or the older vocab.json + merges.txt.
// tokenizer_config.json and special_tokens_map.json, when present, give the special tokens
// (the latter wins where both do, as in transformers) and model_max_length; absent ones take
// CLIPTokenizer's defaults (<|startoftext|>, <|endoftext|> for eos, unk and pad, length 77).
//
// As transformers 5 does for CLIPTokenizer, only the vocabulary and merges are taken from a
// tokenizer.json: the normaliser, pre-tokenizer and post-processor are CLIP's whatever the
// file says, and its added tokens are kept. A tokenizer_config.json naming a class other than
// CLIPTokenizer(Fast) is refused.
func Load(dir string) (*Tokenizer, error) {
	cfg, err := readConfig(dir)
	if err != nil {
		return nil, err
	}
	var (
		vocab  map[string]int
		merges [][2]string
		preset []addedEntry
	)
	tjPath := filepath.Join(dir, "tokenizer.json")
	switch data, err := os.ReadFile(tjPath); {
	case err == nil:
		if vocab, merges, preset, err = parseTokenizerJSON(data); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %w", tjPath, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		vocabPath, mergesPath := filepath.Join(dir, "vocab.json"), filepath.Join(dir, "merges.txt")
		vf, err := os.Open(vocabPath)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("tokenizer: %s has neither tokenizer.json nor vocab.json and merges.txt", dir)
		}
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		defer vf.Close()
		if vocab, err = parseVocab(vf); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %w", vocabPath, err)
		}
		mf, err := os.Open(mergesPath)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		defer mf.Close()
		if merges, err = parseMerges(mf); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %w", mergesPath, err)
		}
	default:
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	preset = append(preset, cfg.decoder...)
	model, err := newBPE(vocab, merges, cfg.specials.unk.Content)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", dir, err)
	}
	t, err := newTokenizer(model, preset, cfg.specials, cfg.maxLength)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", dir, err)
	}
	return t, nil
}

// config is what tokenizer_config.json and special_tokens_map.json say.
type config struct {
	specials  specials
	maxLength int
	decoder   []addedEntry // added_tokens_decoder
}

func readConfig(dir string) (config, error) {
	cfg := config{specials: defaultSpecials(), maxLength: DefaultMaxLength}
	for _, name := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return cfg, fmt.Errorf("tokenizer: %w", err)
		}
		if err := cfg.parse(data); err != nil {
			return cfg, fmt.Errorf("tokenizer: %s: %w", path, err)
		}
	}
	return cfg, nil
}

func (c *config) parse(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	if v, ok := raw["tokenizer_class"]; ok {
		var class string
		if err := json.Unmarshal(v, &class); err == nil && class != "" && class != "CLIPTokenizer" && class != "CLIPTokenizerFast" {
			return fmt.Errorf("tokenizer_class %q is not a CLIP tokenizer", class)
		}
	}
	for key, dst := range map[string]*AddedToken{"bos_token": &c.specials.bos, "eos_token": &c.specials.eos, "unk_token": &c.specials.unk, "pad_token": &c.specials.pad} {
		v, ok := raw[key]
		if !ok {
			continue
		}
		tok, err := parseTokenSpec(v)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		if tok != nil {
			*dst = *tok
		}
	}
	if v, ok := raw["additional_special_tokens"]; ok && !isNull(v) {
		var list []json.RawMessage
		if err := json.Unmarshal(v, &list); err != nil {
			return fmt.Errorf("additional_special_tokens: %w", err)
		}
		c.specials.extra = c.specials.extra[:0]
		for _, item := range list {
			tok, err := parseTokenSpec(item)
			if err != nil {
				return fmt.Errorf("additional_special_tokens: %w", err)
			}
			if tok != nil {
				c.specials.extra = append(c.specials.extra, *tok)
			}
		}
	}
	if v, ok := raw["model_max_length"]; ok && !isNull(v) {
		var n float64
		if err := json.Unmarshal(v, &n); err != nil {
			return fmt.Errorf("model_max_length: %w", err)
		}
		// transformers writes 1e30 for "no limit"; CLIP's context is 77 whatever it says.
		if n >= 2 && n <= 1<<20 && n == math.Trunc(n) {
			c.maxLength = int(n)
		}
	}
	if v, ok := raw["added_tokens_decoder"]; ok && !isNull(v) {
		var dec map[string]json.RawMessage
		if err := json.Unmarshal(v, &dec); err != nil {
			return fmt.Errorf("added_tokens_decoder: %w", err)
		}
		c.decoder = c.decoder[:0]
		for key, item := range dec {
			id, err := strconv.Atoi(key)
			if err != nil || id < 0 {
				return fmt.Errorf("added_tokens_decoder: bad id %q", key)
			}
			tok, err := parseTokenSpec(item)
			if err != nil {
				return fmt.Errorf("added_tokens_decoder[%s]: %w", key, err)
			}
			if tok != nil {
				c.decoder = append(c.decoder, addedEntry{AddedToken: *tok, id: id})
			}
		}
		sortEntries(c.decoder)
	}
	return nil
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

// parseTokenSpec reads a special token as the config files write it: a string (a special,
// non-normalised token), an AddedToken object ({"content": ..., "lstrip": ..., ...}), or
// null (nil: keep the default).
func parseTokenSpec(v json.RawMessage) (*AddedToken, error) {
	if isNull(v) {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		if s == "" {
			return nil, nil
		}
		return &AddedToken{Content: s, Special: true}, nil
	}
	var obj struct {
		Content    string `json:"content"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized *bool  `json:"normalized"`
		SingleWord bool   `json:"single_word"`
		Special    *bool  `json:"special"`
	}
	if err := json.Unmarshal(v, &obj); err != nil {
		return nil, fmt.Errorf("neither a string nor a token object: %w", err)
	}
	if obj.Content == "" {
		return nil, fmt.Errorf("token object without content")
	}
	tok := &AddedToken{Content: obj.Content, Special: true, LStrip: obj.LStrip, RStrip: obj.RStrip, SingleWord: obj.SingleWord}
	if obj.Special != nil {
		tok.Special = *obj.Special
	}
	// The tokenizers library's default: special tokens match the raw text, others the
	// normalised text.
	tok.Normalized = !tok.Special
	if obj.Normalized != nil {
		tok.Normalized = *obj.Normalized
	}
	return tok, nil
}

// parseTokenizerJSON takes the vocabulary, merges and added tokens from a tokenizers
// tokenizer.json. The model must be BPE with the "</w>" end-of-word suffix and no
// continuing-subword prefix (CLIP's).
func parseTokenizerJSON(data []byte) (map[string]int, [][2]string, []addedEntry, error) {
	var tj struct {
		AddedTokens []struct {
			ID         int    `json:"id"`
			Content    string `json:"content"`
			SingleWord bool   `json:"single_word"`
			LStrip     bool   `json:"lstrip"`
			RStrip     bool   `json:"rstrip"`
			Normalized bool   `json:"normalized"`
			Special    bool   `json:"special"`
		} `json:"added_tokens"`
		Model struct {
			Type                    string            `json:"type"`
			ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
			EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
			Vocab                   map[string]int    `json:"vocab"`
			Merges                  []json.RawMessage `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &tj); err != nil {
		return nil, nil, nil, err
	}
	m := &tj.Model
	if m.Type != "" && m.Type != "BPE" {
		return nil, nil, nil, fmt.Errorf("model type %q is not BPE", m.Type)
	}
	if m.EndOfWordSuffix == nil || *m.EndOfWordSuffix != endOfWord {
		return nil, nil, nil, fmt.Errorf("not a CLIP BPE model: end_of_word_suffix is not %q", endOfWord)
	}
	if m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "" {
		return nil, nil, nil, fmt.Errorf("not a CLIP BPE model: continuing_subword_prefix %q", *m.ContinuingSubwordPrefix)
	}
	if len(m.Vocab) == 0 {
		return nil, nil, nil, fmt.Errorf("model has no vocabulary")
	}
	merges := make([][2]string, 0, len(m.Merges))
	for i, raw := range m.Merges {
		var pair [2]string
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			a, b, ok := strings.Cut(s, " ")
			if !ok || strings.Contains(b, " ") {
				return nil, nil, nil, fmt.Errorf("merge %d: %q is not two tokens", i+1, s)
			}
			pair = [2]string{a, b}
		} else if err := json.Unmarshal(raw, &pair); err != nil {
			return nil, nil, nil, fmt.Errorf("merge %d: %w", i+1, err)
		}
		merges = append(merges, pair)
	}
	var added []addedEntry
	for _, a := range tj.AddedTokens {
		added = append(added, addedEntry{id: a.ID, AddedToken: AddedToken{
			Content: a.Content, Special: a.Special, Normalized: a.Normalized,
			LStrip: a.LStrip, RStrip: a.RStrip, SingleWord: a.SingleWord,
		}})
	}
	return m.Vocab, merges, added, nil
}

// parseVocab reads vocab.json: an object of token -> id.
func parseVocab(r io.Reader) (map[string]int, error) {
	var vocab map[string]int
	if err := json.NewDecoder(r).Decode(&vocab); err != nil {
		return nil, err
	}
	if len(vocab) == 0 {
		return nil, fmt.Errorf("empty vocabulary")
	}
	return vocab, nil
}

// parseMerges reads merges.txt as the tokenizers library does: one merge per line, two tokens
// separated by one space, in rank order; lines starting with "#version" are skipped. A final
// newline, and CRLF line ends, are accepted.
func parseMerges(r io.Reader) ([][2]string, error) {
	var merges [][2]string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSuffix(sc.Text(), "\r")
		if strings.HasPrefix(s, "#version") {
			continue
		}
		a, b, ok := strings.Cut(s, " ")
		if !ok || strings.Contains(b, " ") {
			return nil, fmt.Errorf("line %d: %q is not two tokens separated by a space", line, s)
		}
		merges = append(merges, [2]string{a, b})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return merges, nil
}

// sortEntries orders added tokens by id, so that ids are handed out deterministically.
func sortEntries(es []addedEntry) {
	slices.SortFunc(es, func(a, b addedEntry) int { return a.id - b.id })
}

// Package tokenizer is the CLIP byte-level BPE tokenizer of Stable Diffusion's text encoders,
// id for id the tokenizer that diffusers uses (transformers' CLIPTokenizer, backed by the
// tokenizers library).
//
// A Tokenizer comes from a model's tokenizer folder (Load: vocab.json + merges.txt, or
// tokenizer.json, with tokenizer_config.json / special_tokens_map.json) or from the CLIP
// vocabulary built into the binary (Builtin), for single-file checkpoints that carry none.
//
// Text goes through the same steps as in the reference:
//
//  1. added tokens (the special tokens <|startoftext|> and <|endoftext|>, the pad token, and
//     any added with WithAddedTokens) are cut out of the raw text and become their ids;
//  2. the rest is normalised: NFC, every run of white space to one space, lowercase;
//  3. it is split into words: runs of letters, single digits, the contractions 's 't 're 've
//     'm 'll 'd, and runs of other non-space characters;
//  4. each word's UTF-8 bytes become GPT-2's byte-level characters, the last one marked with
//     the end-of-word suffix "</w>", and BPE merges them by rank.
//
// There is no ftfy step (diffusers does not run it either). Because the pad token is an added
// token, a tokenizer whose pad token is "!" (SD 2.x, SDXL's tokenizer_2) encodes each "!" in
// a prompt as id 0 on its own, where one padding with <|endoftext|> may merge it with its
// neighbours ("!!" is one token there): this is what the reference does, and why the pad token
// belongs to the Tokenizer rather than to each call.
//
// Any string is valid input. Bytes that are not valid UTF-8 are each replaced by U+FFFD (as a
// Go range loop decodes them) before anything else; NUL and other control characters are
// ordinary non-space characters. Time and memory are linear in the length of the text (a word
// of n bytes costs O(n log n)), and the cache of encoded words is bounded, so long prompts and
// huge words are safe; EncodeForModel stops encoding once it has enough tokens.
//
// A Tokenizer is immutable and safe for concurrent use.
package tokenizer

import (
	"fmt"
	"maps"
	"strings"
	"unicode/utf8"
)

// Tokenizer encodes text into CLIP token ids.
type Tokenizer struct {
	model *bpe

	added     []addedEntry   // in order of addition
	addedByID map[int]string // id -> content
	addedIDs  map[string]int // content -> id
	raw, norm *matcher       // added tokens matched in the raw / normalised text

	bos, eos, pad int
	maxLength     int
	size          int
}

// DefaultMaxLength is the length of CLIP's context, the model_max_length of every Stable
// Diffusion tokenizer, and what MaxLength returns when a folder does not say.
const DefaultMaxLength = 77

// The special tokens of CLIP's vocabulary.
const (
	StartOfText = "<|startoftext|>"
	EndOfText   = "<|endoftext|>"
)

// specials names the special tokens of a tokenizer by content.
type specials struct {
	bos, eos, unk, pad AddedToken
	extra              []AddedToken // additional_special_tokens
}

func defaultSpecials() specials {
	sp := func(s string) AddedToken { return AddedToken{Content: s, Special: true} }
	return specials{bos: sp(StartOfText), eos: sp(EndOfText), unk: sp(EndOfText), pad: sp(EndOfText)}
}

// newTokenizer assembles a Tokenizer: the model, added tokens with their ids (from
// tokenizer.json or added_tokens_decoder; id -1 assigns one), then the special tokens, each
// added unless it already is; they must be in the vocabulary or among those added tokens.
func newTokenizer(model *bpe, preset []addedEntry, sp specials, maxLength int) (*Tokenizer, error) {
	t := &Tokenizer{model: model, addedByID: map[int]string{}, addedIDs: map[string]int{}, size: len(model.tokens), maxLength: maxLength}
	for _, e := range preset {
		if err := t.add(e.AddedToken, e.id, false); err != nil {
			return nil, err
		}
	}
	for _, s := range append([]AddedToken{sp.bos, sp.eos, sp.unk, sp.pad}, sp.extra...) {
		// A special token needs an embedding: it must have an id already. (transformers
		// would hand out a new id, past the end of the text encoder's embedding table.)
		if _, ok := t.ID(s.Content); !ok {
			return nil, fmt.Errorf("special token %q is not in the vocabulary", s.Content)
		}
		if err := t.add(s, -1, false); err != nil {
			return nil, err
		}
	}
	t.rebuild()
	var ok bool
	if t.bos, ok = t.ID(sp.bos.Content); !ok {
		return nil, fmt.Errorf("bos token %q has no id", sp.bos.Content)
	}
	if t.eos, ok = t.ID(sp.eos.Content); !ok {
		return nil, fmt.Errorf("eos token %q has no id", sp.eos.Content)
	}
	if t.pad, ok = t.ID(sp.pad.Content); !ok {
		return nil, fmt.Errorf("pad token %q has no id", sp.pad.Content)
	}
	return t, nil
}

// clone returns a copy of t that shares the model (and its cache).
func (t *Tokenizer) clone() *Tokenizer {
	c := *t
	c.added = append([]addedEntry(nil), t.added...)
	c.addedByID = maps.Clone(t.addedByID)
	c.addedIDs = maps.Clone(t.addedIDs)
	return &c
}

// add registers an added token. Its id is the vocabulary's or an earlier added token's when
// the content has one, else want when want >= 0 and free, else the next id after the
// vocabulary. A token that is already added keeps its settings unless replace is set.
func (t *Tokenizer) add(tok AddedToken, want int, replace bool) error {
	if tok.Content == "" {
		return fmt.Errorf("added token with empty content")
	}
	if !utf8.ValidString(tok.Content) {
		return fmt.Errorf("added token %q is not valid UTF-8", tok.Content)
	}
	if id, ok := t.addedIDs[tok.Content]; ok {
		if replace {
			for i := range t.added {
				if t.added[i].id == id {
					t.added[i].AddedToken = tok
				}
			}
		}
		return nil
	}
	id, ok := t.model.vocab[tok.Content]
	if !ok {
		switch {
		case want >= 0 && want < maxTokenID && t.model.token(want) == "" && t.addedByID[want] == "":
			id = want
		case want >= 0:
			return fmt.Errorf("added token %q: id %d is already taken or out of range", tok.Content, want)
		default:
			id = t.size
		}
	}
	if _, taken := t.addedByID[id]; taken {
		return fmt.Errorf("added token %q: id %d is already taken by %q", tok.Content, id, t.addedByID[id])
	}
	t.added = append(t.added, addedEntry{AddedToken: tok, id: id})
	t.addedByID[id] = tok.Content
	t.addedIDs[tok.Content] = id
	t.size = max(t.size, id+1)
	return nil
}

// rebuild makes the matchers for the added tokens.
func (t *Tokenizer) rebuild() {
	var raw, norm []*matchPattern
	for i := range t.added {
		e := &t.added[i]
		if e.Normalized {
			norm = append(norm, &matchPattern{text: normalize(e.Content), entry: e})
		} else {
			raw = append(raw, &matchPattern{text: e.Content, entry: e})
		}
	}
	t.raw, t.norm = newMatcher(raw), newMatcher(norm)
}

// WithPad returns a Tokenizer that pads with token, which must already be in the vocabulary
// (or be an added token), and which becomes a special added token as transformers makes its
// pad token: WithPad("!") turns the built-in tokenizer into the SD 2.x / SDXL tokenizer_2 one.
func (t *Tokenizer) WithPad(token string) (*Tokenizer, error) {
	if _, ok := t.ID(token); !ok {
		return nil, fmt.Errorf("tokenizer: pad token %q is not in the vocabulary", token)
	}
	c := t.clone()
	if err := c.add(AddedToken{Content: token, Special: true}, -1, false); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	c.pad, _ = c.ID(token)
	c.rebuild()
	return c, nil
}

// WithAddedTokens returns a Tokenizer that also matches the given tokens, as transformers'
// add_tokens does (for textual inversion, say): a token whose content is in the vocabulary
// keeps its id, a new one gets the next free id (VocabSize grows), and one added before is
// given the new settings.
func (t *Tokenizer) WithAddedTokens(tokens ...AddedToken) (*Tokenizer, error) {
	c := t.clone()
	for _, tok := range tokens {
		if err := c.add(tok, -1, true); err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
	}
	c.rebuild()
	return c, nil
}

// Encode returns the ids of text without bos, eos, truncation or padding: what a prompt
// fragment contributes to a sequence. Special tokens written literally in the text
// ("<|endoftext|>") still come out as their ids.
func (t *Tokenizer) Encode(text string) []int {
	return t.encode(make([]int, 0, 16), text, -1)
}

// EncodeForModel returns the ids that a pipeline gives the text encoder for text, as
// tokenizer(text, padding="max_length", max_length=maxLen, truncation=True) does: bos, the
// first maxLen-2 ids of Encode(text), eos, then Pad() up to maxLen. With maxLen <= 0 there is
// no truncation or padding (bos + Encode(text) + eos); a maxLen of 1 counts as 2.
func (t *Tokenizer) EncodeForModel(text string, maxLen int) []int {
	if maxLen <= 0 {
		ids := t.encode([]int{t.bos}, text, -1)
		return append(ids, t.eos)
	}
	maxLen = max(maxLen, 2)
	ids := make([]int, 1, maxLen)
	ids[0] = t.bos
	ids = t.encode(ids, text, maxLen-2)
	ids = append(ids, t.eos)
	for len(ids) < maxLen {
		ids = append(ids, t.pad)
	}
	return ids
}

// Frame wraps ids (from Encode) as one sequence for the text encoder: bos, ids truncated to
// maxLen-2, eos, and Pad() up to maxLen. Long-prompt code cuts a prompt's ids into chunks
// and frames each one. With maxLen <= 0 it only adds bos and eos; a maxLen of 1 counts as 2.
func (t *Tokenizer) Frame(ids []int, maxLen int) []int {
	if maxLen <= 0 {
		out := make([]int, 0, len(ids)+2)
		out = append(out, t.bos)
		out = append(out, ids...)
		return append(out, t.eos)
	}
	maxLen = max(maxLen, 2)
	out := make([]int, 0, maxLen)
	out = append(out, t.bos)
	out = append(out, ids[:min(len(ids), maxLen-2)]...)
	out = append(out, t.eos)
	for len(out) < maxLen {
		out = append(out, t.pad)
	}
	return out
}

// encode appends the ids of text to dst. With limit >= 0 it stops once limit ids have been
// appended (it may then have appended a few more, which it cuts off).
func (t *Tokenizer) encode(dst []int, text string, limit int) []int {
	start := len(dst)
	full := func() bool { return limit >= 0 && len(dst)-start >= limit }
	if full() {
		return dst
	}
	text = validUTF8(text)
	t.raw.split(text, func(s segment) bool {
		if s.id >= 0 {
			dst = append(dst, s.id)
			return !full()
		}
		for rest := s.text; rest != ""; {
			// Without normalised added tokens (which could contain spaces), long text is
			// normalised a chunk at a time, so that an early stop skips the rest.
			n := len(rest)
			if t.norm == nil {
				n = normalizeCut(rest, normalizeChunk)
			}
			chunk := rest[:n]
			rest = rest[n:]
			if !t.norm.split(normalize(chunk), func(s segment) bool {
				if s.id >= 0 {
					dst = append(dst, s.id)
					return !full()
				}
				splitWords(s.text, func(word string) bool {
					dst = t.model.appendWord(dst, word)
					return !full()
				})
				return !full()
			}) {
				return false
			}
		}
		return true
	})
	if limit >= 0 && len(dst)-start > limit {
		dst = dst[:start+limit]
	}
	return dst
}

// Token returns the token string of id ("a</w>", "<|endoftext|>"), in the vocabulary's
// byte-level characters, or "" when no token has that id.
func (t *Tokenizer) Token(id int) string {
	if s, ok := t.addedByID[id]; ok {
		return s
	}
	return t.model.token(id)
}

// Decode returns the text that ids stand for, for display: the bytes of the tokens (GPT-2's
// byte-level characters mapped back), each end-of-word mark "</w>" as a space, added and
// special tokens as written, without the final space. Words come out separated by spaces
// ("hello-world" decodes to "hello - world"), lowercase and normalised; bytes of a character
// split over tokens that are not all there are left as they are (not valid UTF-8).
func (t *Tokenizer) Decode(ids []int) string {
	var b []byte
	for _, id := range ids {
		if s, ok := t.addedByID[id]; ok {
			b = append(b, s...)
			continue
		}
		tok := t.model.token(id)
		word := strings.HasSuffix(tok, endOfWord)
		for _, r := range strings.TrimSuffix(tok, endOfWord) {
			if c, ok := t.model.charByte(r); ok {
				b = append(b, c)
			} else {
				b = utf8.AppendRune(b, r)
			}
		}
		if word {
			b = append(b, ' ')
		}
	}
	return strings.TrimSuffix(string(b), " ")
}

// Tokens returns the token strings of ids (see Token).
func (t *Tokenizer) Tokens(ids []int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = t.Token(id)
	}
	return out
}

// ID returns the id of a token string (a vocabulary entry such as "cat</w>", or an added
// token).
func (t *Tokenizer) ID(token string) (int, bool) {
	if id, ok := t.addedIDs[token]; ok {
		return id, true
	}
	id, ok := t.model.vocab[token]
	return id, ok
}

// AddedTokens returns the added tokens (the special tokens among them) and their ids, in the
// order they were added.
func (t *Tokenizer) AddedTokens() (tokens []AddedToken, ids []int) {
	for _, e := range t.added {
		tokens = append(tokens, e.AddedToken)
		ids = append(ids, e.id)
	}
	return tokens, ids
}

// BOS returns the id of the beginning-of-sequence token (<|startoftext|>).
func (t *Tokenizer) BOS() int { return t.bos }

// EOS returns the id of the end-of-sequence token (<|endoftext|>).
func (t *Tokenizer) EOS() int { return t.eos }

// Pad returns the id of the padding token: <|endoftext|> for SD 1.x and SDXL's first
// tokenizer, "!" (id 0) for SD 2.x and SDXL's tokenizer_2.
func (t *Tokenizer) Pad() int { return t.pad }

// Unk returns the id of the unknown token, which stands for a byte missing from the
// vocabulary, or -1 when there is none.
func (t *Tokenizer) Unk() int { return t.model.unk }

// MaxLength returns the model's sequence length (model_max_length, 77 for CLIP).
func (t *Tokenizer) MaxLength() int { return t.maxLength }

// VocabSize returns one more than the largest id, added tokens included (49408 for CLIP):
// every id that Encode returns is in [0, VocabSize()).
func (t *Tokenizer) VocabSize() int { return t.size }

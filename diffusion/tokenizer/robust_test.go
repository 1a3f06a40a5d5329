package tokenizer

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInvalidUTF8(t *testing.T) {
	tok := Builtin()
	// Each invalid byte becomes one U+FFFD, as in a Go range loop.
	require.Equal(t, tok.Encode("a \uFFFD\uFFFD b \uFFFD"), tok.Encode("a \xff\xfe b \xc3"))
	require.Equal(t, tok.Encode("\uFFFD\uFFFD\uFFFD"), tok.Encode("\xed\xa0\x80")) // a UTF-16 surrogate
	require.Equal(t, []string{"ï¿½</w>"}, tok.Tokens(tok.Encode("\xff")))
}

func TestEdgeInputs(t *testing.T) {
	tok := Builtin()
	require.Equal(t, []int{}, tok.Encode(""))
	require.Equal(t, []int{}, tok.Encode(" \t\n\u3000 "))
	require.Equal(t, []int{49406, 49407}, tok.EncodeForModel("", 0))
	// NUL is neither space, letter nor number: a word of its own (byte 0 is "Ā").
	require.Equal(t, []string{"Ā</w>", "a</w>", "Ā</w>", "b</w>", "Ā", "Ā</w>"}, tok.Tokens(tok.Encode("\x00 a\x00b \x00\x00")))

	// maxLen 1 counts as 2; 2 keeps only bos and eos.
	require.Equal(t, []int{49406, 49407}, tok.EncodeForModel("a cat", 1))
	require.Equal(t, []int{49406, 49407}, tok.EncodeForModel("a cat", 2))
	require.Equal(t, []int{49406, 320, 49407}, tok.EncodeForModel("a cat", 3))
	require.Equal(t, []int{49406, 320, 2368, 49407, 49407}, tok.EncodeForModel("a cat", 5))
	require.Equal(t, []int{49406, 320, 49407}, tok.Frame([]int{320, 2368}, 3))
	require.Equal(t, []int{49406, 320, 2368, 49407}, tok.Frame([]int{320, 2368}, 0))
	require.Equal(t, []int{49406, 49407}, tok.Frame(nil, -1))

	require.Equal(t, "", tok.Token(-1))
	require.Equal(t, "", tok.Token(49408))
	require.Equal(t, []string{"<|startoftext|>", "cat</w>", ""}, tok.Tokens([]int{49406, 2368, 1 << 30}))
	id, ok := tok.ID("cat</w>")
	require.True(t, ok)
	require.Equal(t, 2368, id)
	_, ok = tok.ID("no such token")
	require.False(t, ok)
}

// TestLongPrompt encodes a 10 000-word prompt and checks that time grows about linearly and
// that EncodeForModel stops early.
func TestLongPrompt(t *testing.T) {
	tok := Builtin()
	words := strings.Fields("a photo of an astronaut riding a horse on mars, highly detailed, 8k, (masterpiece:1.2)")
	var b strings.Builder
	for i := 0; b.Len() < 200_000; i++ {
		b.WriteString(words[i%len(words)])
		b.WriteByte(' ')
	}
	long := b.String()
	start := time.Now()
	ids := tok.Encode(long)
	elapsed := time.Since(start)
	require.Greater(t, len(ids), 10_000)
	for _, id := range ids {
		require.True(t, id >= 0 && id < tok.VocabSize())
	}
	// Generous bounds for a slow, shared machine: about 50 ms on one core.
	require.Less(t, elapsed, 5*time.Second)
	require.Equal(t, ids[:75], tok.EncodeForModel(long, 77)[1:76])

	start = time.Now()
	for range 100 {
		tok.EncodeForModel(long, 77)
	}
	// Stopping after 75 tokens is much cheaper than encoding everything (only the
	// normalisation of the whole text remains).
	require.Less(t, time.Since(start), 50*elapsed+time.Second)
}

// TestHugeWord checks a single word of 200 kB: O(n log n) BPE, bounded cache.
func TestHugeWord(t *testing.T) {
	tok := Builtin()
	word := strings.Repeat("abcdefghij", 20_000)
	start := time.Now()
	ids := tok.Encode(word)
	require.Less(t, time.Since(start), 10*time.Second)
	require.NotEmpty(t, ids)
	require.Equal(t, word, strings.TrimSuffix(strings.Join(tok.Tokens(ids), ""), "</w>"))
	// Unlike ASCII, U+00E9 is two byte-level characters: still one word, of 200 kB.
	ids = tok.Encode(strings.Repeat("é", 100_000))
	require.NotEmpty(t, ids)
	// Many distinct words never grow the cache past its bound.
	var b strings.Builder
	for i := range 12_000 {
		b.WriteString(strings.Repeat("x", 1+i%50))
		b.WriteString(string(rune('a' + i%26)))
		b.WriteString(string(rune('a' + (i/26)%26)))
		b.WriteString(string(rune('a' + (i/676)%26)))
		b.WriteByte(' ')
	}
	tok.Encode(b.String())
	tok.model.cache.mu.Lock()
	n := len(tok.model.cache.m)
	tok.model.cache.mu.Unlock()
	require.LessOrEqual(t, n, cacheWords)
}

func TestConcurrentUse(t *testing.T) {
	tok := Builtin()
	bang, err := tok.WithPad("!")
	require.NoError(t, err)
	want := tok.EncodeForModel("a cat, hdr!!, 4k", 77)
	wantBang := bang.EncodeForModel("a cat, hdr!!, 4k", 77)
	var wg sync.WaitGroup
	for g := range runtime.GOMAXPROCS(0) + 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if (g+i)%2 == 0 {
					assert.Equal(t, want, tok.EncodeForModel("a cat, hdr!!, 4k", 77))
				} else {
					assert.Equal(t, wantBang, bang.EncodeForModel("a cat, hdr!!, 4k", 77))
				}
			}
		}()
	}
	wg.Wait()
	require.NotEqual(t, want, wantBang) // "!!" is one token with one pad, two with the other
}

func TestWithPad(t *testing.T) {
	tok := Builtin()
	bang, err := tok.WithPad("!")
	require.NoError(t, err)
	require.Equal(t, 0, bang.Pad())
	require.Equal(t, 49407, tok.Pad(), "the original is unchanged")
	require.Equal(t, []string{"hdr</w>", "!!</w>"}, tok.Tokens(tok.Encode("hdr!!")))
	require.Equal(t, []string{"hdr</w>", "!", "!"}, bang.Tokens(bang.Encode("hdr!!")))
	_, err = tok.WithPad("<pad>")
	require.ErrorContains(t, err, `"<pad>" is not in the vocabulary`)
	tokens, ids := bang.AddedTokens()
	require.Equal(t, []int{49406, 49407, 0}, ids)
	require.Equal(t, AddedToken{Content: "!", Special: true}, tokens[2])
}

func TestWithAddedTokens(t *testing.T) {
	tok := Builtin()
	ti, err := tok.WithAddedTokens(AddedToken{Content: "<my-style>", Normalized: true}, AddedToken{Content: "<two>"})
	require.NoError(t, err)
	require.Equal(t, 49410, ti.VocabSize())
	require.Equal(t, 49408, tok.VocabSize())
	require.Equal(t, []int{320, 49408, 2368, 49409}, ti.Encode("a <My-Style> cat<two>"))
	require.Equal(t, "<my-style>", ti.Token(49408))
	// The original still splits it.
	require.NotContains(t, tok.Encode("a <my-style> cat"), 49408)
	_, err = tok.WithAddedTokens(AddedToken{})
	require.ErrorContains(t, err, "empty content")
	_, err = tok.WithAddedTokens(AddedToken{Content: "a\xffb"})
	require.ErrorContains(t, err, "not valid UTF-8")
	// Re-adding changes the settings, not the id.
	ti2, err := ti.WithAddedTokens(AddedToken{Content: "<my-style>"})
	require.NoError(t, err)
	require.Equal(t, 49410, ti2.VocabSize())
	require.Equal(t, []string{"a</w>", "<</w>", "my</w>", "-</w>", "style</w>", "></w>", "cat</w>"}, ti2.Tokens(ti2.Encode("a <My-Style> cat")))
	require.Equal(t, []int{49408}, ti2.Encode("<my-style>"))
}

func TestLoadErrors(t *testing.T) {
	write := func(files map[string]string) string {
		dir := t.TempDir()
		for name, data := range files {
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644))
		}
		return dir
	}
	vocab := `{"a": 0, "b": 1, "a</w>": 2, "b</w>": 3, "ab</w>": 4, "<|startoftext|>": 5, "<|endoftext|>": 6}`
	ok, err := Load(write(map[string]string{"vocab.json": vocab, "merges.txt": "#version: 0.2\r\na b</w>\r\n"}))
	require.NoError(t, err)
	// "ab" merges to "ab</w>"; "ba" has no merge; "a" and "b" alone end words.
	require.Equal(t, []int{5, 4, 1, 2, 2, 3, 6}, ok.EncodeForModel("ab ba a b", 0))
	require.Equal(t, 7, ok.VocabSize())

	for name, c := range map[string]struct {
		files map[string]string
		err   string
	}{
		"empty dir":      {map[string]string{}, "neither tokenizer.json nor vocab.json"},
		"no merges":      {map[string]string{"vocab.json": vocab}, "merges.txt"},
		"bad vocab":      {map[string]string{"vocab.json": `[1,2]`, "merges.txt": ""}, "vocab.json"},
		"negative id":    {map[string]string{"vocab.json": `{"a": -1}`, "merges.txt": ""}, "outside"},
		"huge id":        {map[string]string{"vocab.json": `{"a": 1000000000}`, "merges.txt": ""}, "outside"},
		"duplicate id":   {map[string]string{"vocab.json": `{"a": 0, "b": 0}`, "merges.txt": ""}, "id 0 is used by"},
		"bad merge line": {map[string]string{"vocab.json": vocab, "merges.txt": "a b c\n"}, "line 1"},
		"merge oov":      {map[string]string{"vocab.json": vocab, "merges.txt": "a x\n"}, `"x" is not in the vocabulary`},
		"merge result":   {map[string]string{"vocab.json": vocab, "merges.txt": "b a\n"}, `"ba" is not in the vocabulary`},
		"no specials":    {map[string]string{"vocab.json": `{"a": 0, "a</w>": 1}`, "merges.txt": ""}, "not in the vocabulary"},
		"bad config":     {map[string]string{"vocab.json": vocab, "merges.txt": "", "tokenizer_config.json": "{"}, "tokenizer_config.json"},
		"other class":    {map[string]string{"vocab.json": vocab, "merges.txt": "", "tokenizer_config.json": `{"tokenizer_class": "T5Tokenizer"}`}, "not a CLIP tokenizer"},
		"bad pad":        {map[string]string{"vocab.json": vocab, "merges.txt": "", "special_tokens_map.json": `{"pad_token": 7}`}, "pad_token"},
		"unknown pad":    {map[string]string{"vocab.json": vocab, "merges.txt": "", "special_tokens_map.json": `{"pad_token": "<pad>"}`}, `special token "<pad>" is not in the vocabulary`},
		"bad json":       {map[string]string{"tokenizer.json": `{"model": 1}`}, "tokenizer.json"},
		"not bpe":        {map[string]string{"tokenizer.json": `{"model": {"type": "Unigram"}}`}, "not BPE"},
		"no suffix":      {map[string]string{"tokenizer.json": `{"model": {"type": "BPE", "vocab": {"a": 0}}}`}, "end_of_word_suffix"},
		"bad json merge": {map[string]string{"tokenizer.json": `{"model": {"type": "BPE", "end_of_word_suffix": "</w>", "vocab": {"a": 0}, "merges": ["a"]}}`}, "merge 1"},
	} {
		_, err := Load(write(c.files))
		require.ErrorContains(t, err, c.err, name)
	}
}

// TestConfigs checks what the config files change: special tokens as strings or objects,
// special_tokens_map.json over tokenizer_config.json, model_max_length, added_tokens_decoder.
func TestConfigs(t *testing.T) {
	src := fixture.Path(t, "models/sd15/tokenizer")
	dir := t.TempDir()
	for _, f := range []string{"vocab.json", "merges.txt"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), data, 0o644))
	}
	write := func(name, data string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644))
	}
	write("tokenizer_config.json", `{"model_max_length": 1e30, "pad_token": "<|endoftext|>",
		"bos_token": {"__type": "AddedToken", "content": "<|startoftext|>", "lstrip": false, "normalized": true, "rstrip": false, "single_word": false},
		"added_tokens_decoder": {"2014": {"content": "<new>", "special": false, "normalized": true}}}`)
	write("special_tokens_map.json", `{"pad_token": "!"}`)
	tok, err := Load(dir)
	require.NoError(t, err)
	require.Equal(t, 77, tok.MaxLength())
	require.Equal(t, 0, tok.Pad())
	require.Equal(t, 2015, tok.VocabSize())
	require.Equal(t, 2014, tok.Encode("<NEW>")[0])
	// A normalised bos matches after lowercasing.
	require.Equal(t, []int{2012, 2012}, tok.Encode("<|STARTOFTEXT|><|startoftext|>"))

	write("tokenizer_config.json", `{"model_max_length": 64}`)
	write("special_tokens_map.json", `{}`)
	tok, err = Load(dir)
	require.NoError(t, err)
	require.Equal(t, 64, tok.MaxLength())
	require.Equal(t, 2013, tok.Pad())
	require.Len(t, tok.EncodeForModel("a", tok.MaxLength()), 64)
}

// TestChunkedNormalization checks that normalising long text a chunk at a time (what encode
// does when no added token is matched in normalised text) changes nothing: a tokenizer with
// a normalised added token that never matches normalises the whole text at once.
func TestChunkedNormalization(t *testing.T) {
	tok := Builtin()
	whole, err := tok.WithAddedTokens(AddedToken{Content: "\x01never\x02", Normalized: true})
	require.NoError(t, err)
	require.NotNil(t, whole.norm)
	require.Nil(t, tok.norm)
	pieces := []string{"a", "Bc", " ", "  ", "\t", "\u3000", "\u00a0", "e\u0301", "\u0301", "\u0323", "\u1100", "\u1161", "\u11a8",
		"\u0130", "\u03a3", "<|endoftext|>", "<|ENDOFTEXT|>", "!", "'s", "1", "\u4e00", "\U0001F431", "\x00", "\xff"}
	var b strings.Builder
	for i := 0; b.Len() < 5*normalizeChunk; i++ {
		b.WriteString(pieces[(i*7+i/5)%len(pieces)])
	}
	text := b.String()
	require.Equal(t, whole.Encode(text), tok.Encode(text))
	require.Equal(t, whole.EncodeForModel(text, 300), tok.EncodeForModel(text, 300))
	for _, n := range []int{0, 1, 4095, 4096, 4097, len(text)} {
		cut := normalizeCut(text, n)
		require.Equal(t, normalize(validUTF8(text)), normalize(validUTF8(text[:cut]))+normalize(validUTF8(text[cut:])), n)
	}
}

func TestDecode(t *testing.T) {
	tok := Builtin()
	for in, want := range map[string]string{
		"":                            "",
		"A Photo of an Astronaut":     "a photo of an astronaut",
		"hello-world  café 🐱":         "hello - world café 🐱",
		"<|endoftext|> x":             "<|endoftext|>x",
		"  multiple   spaces\tand\n ": "multiple spaces and",
	} {
		require.Equal(t, want, tok.Decode(tok.Encode(in)), "%q", in)
	}
	require.Equal(t, "<|startoftext|>a cat <|endoftext|><|endoftext|>", tok.Decode(tok.EncodeForModel("a cat", 5)))
	// A lone part of a character stays as its byte.
	id, ok := tok.ID("Ã")
	require.True(t, ok)
	require.Equal(t, "\xc3", tok.Decode([]int{id}))
	require.Equal(t, "", tok.Decode([]int{-5, 1 << 40}))
}

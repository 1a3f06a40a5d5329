package tokenizer

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/stretchr/testify/require"
)

// refCase is one prompt of testdata/fixtures/tokenizer/cases.safetensors with its references.
type refCase struct {
	Key     string   `json:"key"`
	Text    string   `json:"text"`
	Tokens  []string `json:"tokens"`
	ids     []int    // bos + tokens + eos, untruncated
	padEOT  []int    // SD 1.x / SDXL tokenizer: pad <|endoftext|>, 77, truncated
	padBang []int    // SD 2.x / SDXL tokenizer_2: pad "!", 77, truncated
}

func loadCases(t testing.TB) []refCase {
	t.Helper()
	f, err := safetensors.Open(fixture.Path(t, "tokenizer/cases.safetensors"))
	require.NoError(t, err)
	defer f.Close()
	var meta struct {
		Tokenizer string    `json:"tokenizer"`
		Prompts   []refCase `json:"prompts"`
	}
	require.NoError(t, json.Unmarshal([]byte(f.Metadata()["case"]), &meta))
	require.Equal(t, "CLIPTokenizer", meta.Tokenizer)
	require.Len(t, meta.Prompts, 18)
	ints := func(name string) []int {
		v, err := f.Int64s(name)
		require.NoError(t, err, name)
		out := make([]int, len(v))
		for i, x := range v {
			out[i] = int(x)
		}
		return out
	}
	for i := range meta.Prompts {
		c := &meta.Prompts[i]
		c.ids, c.padEOT, c.padBang = ints(c.Key+".ids"), ints(c.Key+".pad_eot"), ints(c.Key+".pad_bang")
		require.Len(t, c.Tokens, len(c.ids), c.Key)
	}
	return meta.Prompts
}

// checkCases checks a full-vocabulary tokenizer (pad <|endoftext|>) against every case: ids,
// token strings, and both padded forms.
func checkCases(t *testing.T, tok *Tokenizer) {
	t.Helper()
	bang, err := tok.WithPad("!")
	require.NoError(t, err)
	require.Equal(t, 0, bang.Pad())
	for _, c := range loadCases(t) {
		got := tok.EncodeForModel(c.Text, 0)
		require.Equal(t, c.ids, got, "%s %q", c.Key, c.Text)
		require.Equal(t, c.Tokens, tok.Tokens(got), c.Key)
		require.Equal(t, c.ids[1:len(c.ids)-1], tok.Encode(c.Text), c.Key)
		require.Equal(t, c.padEOT, tok.EncodeForModel(c.Text, 77), "%s pad_eot", c.Key)
		require.Equal(t, c.padEOT, tok.Frame(tok.Encode(c.Text), 77), "%s frame", c.Key)
		require.Equal(t, c.padBang, bang.EncodeForModel(c.Text, 77), "%s pad_bang", c.Key)
	}
}

func TestCasesBuiltin(t *testing.T) {
	tok := Builtin()
	require.Equal(t, 49408, tok.VocabSize())
	require.Equal(t, 49406, tok.BOS())
	require.Equal(t, 49407, tok.EOS())
	require.Equal(t, 49407, tok.Pad())
	require.Equal(t, 49407, tok.Unk())
	require.Equal(t, 77, tok.MaxLength())
	checkCases(t, tok)
}

func TestCasesLegacyFolder(t *testing.T) {
	tok, err := Load(fixture.Path(t, "tokenizer/clip_full"))
	require.NoError(t, err)
	require.Equal(t, 49408, tok.VocabSize())
	checkCases(t, tok)
}

// TestCasesTokenizerJSON checks the tokenizer.json layout with the full vocabulary: the
// clip_full files rewritten into the sdxl tokenizer.json (and its tokenizer_2, which pads
// with "!").
func TestCasesTokenizerJSON(t *testing.T) {
	vocabData, err := os.ReadFile(fixture.Path(t, "tokenizer/clip_full/vocab.json"))
	require.NoError(t, err)
	var vocab map[string]int
	require.NoError(t, json.Unmarshal(vocabData, &vocab))
	mergesData, err := os.ReadFile(fixture.Path(t, "tokenizer/clip_full/merges.txt"))
	require.NoError(t, err)
	var merges [][2]string
	for _, l := range strings.Split(strings.TrimSpace(string(mergesData)), "\n")[1:] {
		a, b, _ := strings.Cut(l, " ")
		merges = append(merges, [2]string{a, b})
	}
	for _, sub := range []string{"tokenizer", "tokenizer_2"} {
		src := fixture.Path(t, "models/sdxl/"+sub)
		var tj map[string]any
		data, err := os.ReadFile(filepath.Join(src, "tokenizer.json"))
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(data, &tj))
		model := tj["model"].(map[string]any)
		model["vocab"], model["merges"] = vocab, merges
		for _, a := range tj["added_tokens"].([]any) {
			a := a.(map[string]any)
			a["id"] = vocab[a["content"].(string)]
		}
		dir := t.TempDir()
		out, err := json.Marshal(tj)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer.json"), out, 0o644))
		cfg, err := os.ReadFile(filepath.Join(src, "tokenizer_config.json"))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg, 0o644))

		tok, err := Load(dir)
		require.NoError(t, err)
		for _, c := range loadCases(t) {
			want := c.padEOT
			if sub == "tokenizer_2" {
				want = c.padBang
			} else {
				require.Equal(t, c.ids, tok.EncodeForModel(c.Text, 0), "%s %s", sub, c.Key)
			}
			require.Equal(t, want, tok.EncodeForModel(c.Text, 77), "%s %s", sub, c.Key)
		}
	}
}

// TestBuiltinEqualsFixture checks that the embedded vocabulary is the clip_full files.
func TestBuiltinEqualsFixture(t *testing.T) {
	for _, f := range []struct {
		name string
		gz   []byte
	}{{"vocab.json", builtinVocabGz}, {"merges.txt", builtinMergesGz}} {
		want, err := os.ReadFile(fixture.Path(t, "tokenizer/clip_full/"+f.name))
		require.NoError(t, err)
		zr := gunzip(f.gz)
		var got strings.Builder
		_, err = io.Copy(&got, zr)
		require.NoError(t, err, f.name)
		require.Equal(t, string(want), got.String(), f.name)
	}
	legacy, err := Load(fixture.Path(t, "tokenizer/clip_full"))
	require.NoError(t, err)
	b := Builtin()
	require.Equal(t, legacy.VocabSize(), b.VocabSize())
	for id := 0; id < b.VocabSize(); id++ {
		require.Equal(t, legacy.Token(id), b.Token(id), id)
	}
	require.Equal(t, len(legacy.model.merges), len(b.model.merges))
	for k, v := range legacy.model.merges {
		require.Equal(t, v, b.model.merges[k])
	}
}

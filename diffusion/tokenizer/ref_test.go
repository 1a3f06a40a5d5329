package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/stretchr/testify/require"
)

// TestTokenizersReference compares with testdata/tokenizers_ref.json: ids that the tokenizers
// library itself computed (see testdata/mkref.js) for the fixture prompts on the tiny
// vocabulary, and for edge cases and random strings on both vocabularies. Each tiny
// tokenizer is checked in both folder layouts.
func TestTokenizersReference(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "tokenizers_ref.json"))
	require.NoError(t, err)
	var ref struct {
		Cases []struct {
			Tokenizer string `json:"tokenizer"`
			Text      string `json:"text"`
			IDs       []int  `json:"ids"`
		} `json:"cases"`
	}
	require.NoError(t, json.Unmarshal(data, &ref))
	require.Len(t, ref.Cases, 915)

	load := func(rel string) *Tokenizer {
		tok, err := Load(fixture.Path(t, rel))
		require.NoError(t, err, rel)
		return tok
	}
	bang, err := Builtin().WithPad("!")
	require.NoError(t, err)
	// The added tokens of mkref.js's full_added tokenizer.
	added, err := Builtin().WithAddedTokens(
		AddedToken{Content: "<cat-toy>", Normalized: true},
		AddedToken{Content: "<cat-toy>-big", Normalized: true},
		AddedToken{Content: "[L]", LStrip: true},
		AddedToken{Content: "[R]", RStrip: true},
		AddedToken{Content: "sw", SingleWord: true},
		AddedToken{Content: "Zz", Normalized: true},
		AddedToken{Content: "dog", Normalized: true, SingleWord: true},
		AddedToken{Content: "\u00c9t\u00e9", Normalized: true},
	)
	require.NoError(t, err)
	require.Equal(t, 49414, added.VocabSize())
	for content, id := range map[string]int{"<cat-toy>": 49408, "<cat-toy>-big": 49409, "[L]": 49410, "[R]": 49411, "sw": 1220, "Zz": 49412, "\u00c9t\u00e9": 49413} {
		got, ok := added.ID(content)
		require.True(t, ok, content)
		require.Equal(t, id, got, content)
		require.Equal(t, content, added.Token(id))
	}
	toks := map[string][]*Tokenizer{
		"tiny_eot":   {load("models/sdxl/tokenizer"), load("models/sd15/tokenizer"), load("tokenizer/clip_tiny")},
		"tiny_bang":  {load("models/sdxl/tokenizer_2"), load("models/sd21-v/tokenizer")},
		"full_eot":   {Builtin()},
		"full_bang":  {bang},
		"full_added": {added},
	}
	fixtureIDs := map[string][]int{}
	for _, c := range loadCases(t) {
		fixtureIDs[c.Text] = c.ids
	}
	n := 0
	for _, c := range ref.Cases {
		if c.Tokenizer == "full_eot" {
			// The oracle agrees with transformers on the fixture prompts.
			if want, ok := fixtureIDs[c.Text]; ok {
				require.Equal(t, want, c.IDs, "%q", c.Text)
				n++
			}
		}
		for i, tok := range toks[c.Tokenizer] {
			got := tok.EncodeForModel(c.Text, 0)
			require.Equal(t, c.IDs, got, "%s[%d] %q\n%q", c.Tokenizer, i, c.Text, tok.Tokens(got))
		}
	}
	require.Equal(t, 18, n)
}

// TestModelFolders checks every model's tokenizer against the input_ids of its text encoder
// reference (the pipelines' tokenization of the reference prompt, padded to 77).
func TestModelFolders(t *testing.T) {
	for _, m := range []struct{ model, enc string }{
		{"sd15", "text_encoder"}, {"sd15-inpaint", "text_encoder"}, {"sd21-v", "text_encoder"},
		{"sdxl", "text_encoder"}, {"sdxl", "text_encoder_2"},
		{"sdxl-inpaint", "text_encoder"}, {"sdxl-inpaint", "text_encoder_2"},
	} {
		f, err := safetensors.Open(fixture.Path(t, "ref/"+m.model+"."+m.enc+".safetensors"))
		require.NoError(t, err)
		var meta struct{ Prompt string }
		require.NoError(t, json.Unmarshal([]byte(f.Metadata()["case"]), &meta))
		ids, err := f.Int64s("input_ids")
		require.NoError(t, err)
		f.Close()
		want := make([]int, len(ids))
		for i, v := range ids {
			want[i] = int(v)
		}
		sub := "tokenizer"
		if m.enc == "text_encoder_2" {
			sub = "tokenizer_2"
		}
		tok, err := Load(fixture.Path(t, "models/"+m.model+"/"+sub))
		require.NoError(t, err)
		require.Equal(t, 2014, tok.VocabSize())
		require.Equal(t, 77, tok.MaxLength())
		require.Equal(t, want, tok.EncodeForModel(meta.Prompt, tok.MaxLength()), "%s/%s", m.model, sub)
	}
}

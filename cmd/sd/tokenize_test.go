package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/stretchr/testify/require"
)

// tokenizeJSON runs sd tokenize --json and decodes its output strictly: exactly the keys
// tokenizer, ids and tokens in every entry.
func tokenizeJSON(t *testing.T, args ...string) []tokenization {
	t.Helper()
	status, out, errOut := sd(t, append([]string{"tokenize", "--json"}, args...)...)
	require.Equal(t, 0, status, errOut)
	require.True(t, strings.HasSuffix(out, "]\n"), out)
	var raw []map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(out), &raw))
	for _, entry := range raw {
		require.Len(t, entry, 3, out)
		for _, k := range []string{"tokenizer", "ids", "tokens"} {
			require.Contains(t, entry, k)
		}
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	var res []tokenization
	require.NoError(t, dec.Decode(&res))
	for _, r := range res {
		require.Len(t, r.Tokens, len(r.IDs))
	}
	return res
}

// fixtureIDs returns an int64 tensor of a fixture file as ints, with the file's metadata.
func fixtureIDs(t *testing.T, rel, name string) ([]int, map[string]string) {
	t.Helper()
	f, err := safetensors.Open(fixture.Path(t, rel))
	require.NoError(t, err)
	defer f.Close()
	v, err := f.Int64s(name)
	require.NoError(t, err)
	ids := make([]int, len(v))
	for i, x := range v {
		ids[i] = int(x)
	}
	return ids, f.Metadata()
}

func TestTokenizeBuiltinJSON(t *testing.T) {
	// The fixture case p3 ("... hdr!"): untruncated, then as SD 1.x and SD 2.x pad it.
	var meta struct {
		Prompts []struct {
			Key, Text string
			Tokens    []string
		}
	}
	ids, md := fixtureIDs(t, "tokenizer/cases.safetensors", "p3.ids")
	require.NoError(t, json.Unmarshal([]byte(md["case"]), &meta))
	p3 := meta.Prompts[3]
	require.Equal(t, "p3", p3.Key)

	res := tokenizeJSON(t, p3.Text)
	require.Equal(t, []tokenization{{Tokenizer: "builtin", IDs: ids, Tokens: p3.Tokens}}, res)

	padEOT, _ := fixtureIDs(t, "tokenizer/cases.safetensors", "p3.pad_eot")
	res = tokenizeJSON(t, p3.Text, "--max-length", "77")
	require.Equal(t, padEOT, res[0].IDs)

	padBang, _ := fixtureIDs(t, "tokenizer/cases.safetensors", "p3.pad_bang")
	res = tokenizeJSON(t, "--pad-token", "!", "--max-length", "77", p3.Text)
	require.Equal(t, padBang, res[0].IDs)
	require.Equal(t, "!", res[0].Tokens[len(res[0].Tokens)-1])

	// Special characters are not HTML-escaped, and an empty prompt is bos + eos.
	status, out, _ := sd(t, "tokenize", "--json", "")
	require.Equal(t, 0, status)
	require.Equal(t, `[{"tokenizer":"builtin","ids":[49406,49407],"tokens":["<|startoftext|>","<|endoftext|>"]}]`+"\n", out)
}

// TestTokenizeModelJSON checks both tokenizers of the SDXL folder against the input_ids of
// the text encoder references, and a plain tokenizer folder.
func TestTokenizeModelJSON(t *testing.T) {
	want1, md := fixtureIDs(t, "ref/sdxl.text_encoder.safetensors", "input_ids")
	want2, _ := fixtureIDs(t, "ref/sdxl.text_encoder_2.safetensors", "input_ids")
	var meta struct{ Prompt string }
	require.NoError(t, json.Unmarshal([]byte(md["case"]), &meta))

	res := tokenizeJSON(t, "--model", fixture.Path(t, "models/sdxl"), "--max-length", "77", meta.Prompt)
	require.Len(t, res, 2)
	require.Equal(t, "tokenizer", res[0].Tokenizer)
	require.Equal(t, "tokenizer_2", res[1].Tokenizer)
	require.Equal(t, want1, res[0].IDs)
	require.Equal(t, want2, res[1].IDs)
	require.Equal(t, "<|startoftext|>", res[0].Tokens[0])
	require.Equal(t, "!", res[1].Tokens[76])

	// SD 1.5 (legacy layout): one tokenizer, unpadded.
	res = tokenizeJSON(t, "--model", fixture.Path(t, "models/sd15"), meta.Prompt)
	require.Len(t, res, 1)
	require.Equal(t, "tokenizer", res[0].Tokenizer)
	eos := slices.Index(want1, 2013)
	require.Equal(t, want1[:eos+1], res[0].IDs)

	// A tokenizer folder itself.
	res = tokenizeJSON(t, "--model", fixture.Path(t, "models/sd21-v/tokenizer"), "--max-length", "77", meta.Prompt)
	sd21, _ := fixtureIDs(t, "ref/sd21-v.text_encoder.safetensors", "input_ids")
	require.Equal(t, []tokenization{{Tokenizer: "tokenizer", IDs: sd21, Tokens: res[0].Tokens}}, res)
}

func TestTokenizeListing(t *testing.T) {
	status, out, _ := sd(t, "tokenize", "A café, hdr!!", "--max-length", "9")
	require.Equal(t, 0, status)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, 2+9)
	require.Contains(t, lines[0], "builtin (built-in CLIP vocabulary): 9 ids; bos 49406, eos 49407, pad 49407")
	require.Regexp(t, `^\s+2\s+15304\s+cafÃ©</w>\s+"café"$`, lines[4])
	require.Regexp(t, `^\s+8\s+49407\s+<\|endoftext\|>\s+"<\|endoftext\|>"$`, lines[10])

	status, out, _ = sd(t, "tokenize", "--model", fixture.Path(t, "models/sdxl-inpaint"), "x")
	require.Equal(t, 0, status)
	require.Contains(t, out, "tokenizer (")
	require.Contains(t, out, "\n\ntokenizer_2 (")
	require.Contains(t, out, `pad 0 "!"`)
}

func TestTokenizeErrors(t *testing.T) {
	for _, c := range []struct {
		args   []string
		status int
		msg    string
	}{
		{[]string{"tokenize"}, 2, "want one TEXT argument"},
		{[]string{"tokenize", "a", "b"}, 2, "want one TEXT argument"},
		{[]string{"tokenize", "--max-length", "-3", "a"}, 2, "negative"},
		{[]string{"tokenize", "--max-length", "x", "a"}, 2, "invalid value"},
		{[]string{"tokenize", "--pad-token", "<pad>", "a"}, 2, `"<pad>" is not in the vocabulary`},
		{[]string{"tokenize", "--model", "/nonexistent/model", "a"}, 1, "no such file"},
		{[]string{"tokenize", "--model", fixture.Path(t, "models/sd15.single.safetensors"), "a"}, 1, "single-file checkpoint has no tokenizer"},
		{[]string{"tokenize", "--model", fixture.Path(t, "models/sd15/unet"), "a"}, 1, "has no tokenizer folder"},
	} {
		status, _, errOut := sd(t, c.args...)
		require.Equal(t, c.status, status, "%v: %s", c.args, errOut)
		require.Contains(t, errOut, c.msg, c.args)
	}
	status, _, _ := sd(t, "tokenize", "-h")
	require.Equal(t, 0, status)
}

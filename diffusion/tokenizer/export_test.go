package tokenizer

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/stretchr/testify/require"
)

func TestWriteBuiltin(t *testing.T) {
	wantVocab, err := os.ReadFile(fixture.Path(t, "tokenizer/clip_full/vocab.json"))
	require.NoError(t, err)
	wantMerges, err := os.ReadFile(fixture.Path(t, "tokenizer/clip_full/merges.txt"))
	require.NoError(t, err)

	// CLIP ViT-L: pads with <|endoftext|>.
	dir := filepath.Join(t.TempDir(), "tokenizer")
	require.NoError(t, WriteBuiltin(dir, EndOfText))
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
		info, err := e.Info()
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o644), info.Mode().Perm(), e.Name())
	}
	require.Equal(t, []string{"merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json"}, names)
	gotVocab, err := os.ReadFile(filepath.Join(dir, "vocab.json"))
	require.NoError(t, err)
	require.Equal(t, wantVocab, gotVocab, "vocab.json is the Hub's file")
	gotMerges, err := os.ReadFile(filepath.Join(dir, "merges.txt"))
	require.NoError(t, err)
	require.Equal(t, wantMerges, gotMerges, "merges.txt is the Hub's file")
	tok, err := Load(dir)
	require.NoError(t, err)
	require.Equal(t, 49407, tok.Pad())
	require.Equal(t, 77, tok.MaxLength())
	checkCases(t, tok)

	// OpenCLIP: pads with "!", and a "!" in a prompt is the pad token.
	dir = filepath.Join(t.TempDir(), "tokenizer_2")
	require.NoError(t, WriteBuiltin(dir, "!"))
	tok, err = Load(dir)
	require.NoError(t, err)
	require.Equal(t, 0, tok.Pad())
	require.Equal(t, 49406, tok.BOS())
	require.Equal(t, 49407, tok.EOS())
	for _, c := range loadCases(t) {
		require.Equal(t, c.padBang, tok.EncodeForModel(c.Text, 77), "%s pad_bang", c.Key)
	}

	// Rewriting a folder replaces its files.
	require.NoError(t, WriteBuiltin(dir, EndOfText))
	tok, err = Load(dir)
	require.NoError(t, err)
	require.Equal(t, 49407, tok.Pad())
}

func TestWriteBuiltinErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tok")
	require.ErrorContains(t, WriteBuiltin(dir, "<pad>"), `pad token "<pad>" is not in the vocabulary`)
	_, err := os.Stat(dir)
	require.ErrorIs(t, err, os.ErrNotExist, "nothing written for a bad pad token")

	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o644))
	err = WriteBuiltin(filepath.Join(file, "tokenizer"), "!")
	require.Error(t, err)
	require.Contains(t, err.Error(), file)
}

package tokenizer

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNFCVectors checks nfc against the vectors that gen_nfc.py computed with Python's
// unicodedata: every character with a canonical decomposition, alone and decomposed, random
// mixtures of starters and combining marks, and Hangul.
func TestNFCVectors(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "nfc.txt"))
	require.NoError(t, err)
	defer f.Close()
	runes := func(field string) string {
		var b strings.Builder
		for _, h := range strings.Fields(field) {
			r, err := strconv.ParseUint(h, 16, 32)
			require.NoError(t, err)
			b.WriteRune(rune(r))
		}
		return b.String()
	}
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		in, want, ok := strings.Cut(line, ";")
		require.True(t, ok, line)
		got := nfc(runes(in))
		require.Equal(t, runes(want), got, "NFC(%s)", in)
		require.Equal(t, got, nfc(got), "NFC is idempotent: %s", in)
		n++
	}
	require.NoError(t, sc.Err())
	require.Equal(t, 7722, n)
}

func TestNFC(t *testing.T) {
	for in, want := range map[string]string{
		"":                                "",
		"plain ascii":                     "plain ascii",
		"cafe\u0301":                      "caf\u00e9",
		"\u0130\u0323":                    "\u1eca\u0307", // decomposes, reorders (220 before 230), recomposes
		"a\u0301\u0323":                   "\u1ea1\u0301",
		"\u1100\u1161\u11a8":              "\uac01",
		"\uac00\u11a8":                    "\uac01",
		"\u212b":                          "\u00c5", // singleton
		"\u0958":                          "\u0915\u093c",
		"\u0301\u0301e":                   "\u0301\u0301e", // leading marks stay
		"e" + strings.Repeat("\u0301", 5): "\u00e9" + strings.Repeat("\u0301", 4),
	} {
		require.Equal(t, want, nfc(in), "%+q", in)
	}
	// A long run of marks of alternating classes sorts in O(n log n).
	long := "a" + strings.Repeat("\u0301\u0323", 50000)
	got := nfc(long)
	require.Equal(t, "\u1ea1"+strings.Repeat("\u0323", 49999)+strings.Repeat("\u0301", 50000), got)
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"  Hello\t\n World  ":  " hello world ",
		"\u00a0A\u3000B\u0085": " a b ",
		"\u0130I":              "i\u0307i",
		"\u03a3\u0391\u03a3":   "\u03c3\u03b1\u03c3", // no final sigma
		"\uff21\u1e9e":         "\uff41\u00df",
		"\x00\x1c\u200b":       "\x00\x1c\u200b", // not white space
	} {
		require.Equal(t, want, normalize(in), "%+q", in)
	}
}

func TestSplitWords(t *testing.T) {
	split := func(s string) []string {
		var out []string
		splitWords(s, func(w string) bool { out = append(out, w); return true })
		return out
	}
	require.Equal(t, []string{"it", "'s", "a", "1", "9", "!?", "'", "x", "''", "s"}, split("it's a 19 !? 'x ''s"))
	require.Equal(t, []string{"<|", "endoftext", "|>", "!", "!<|", "startoftext", "|>"}, split("<|endoftext|>! !<|startoftext|>"))
	require.Equal(t, []string{"'re", "d", "'ll", "'ve"}, split("'red 'll've"))
	require.Nil(t, split("   "))
	var first []string
	splitWords("a b c", func(w string) bool { first = append(first, w); return false })
	require.Equal(t, []string{"a"}, first)
}

package tokenizer

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzEncode checks that any input encodes without panicking, to ids in range, the same way
// every time, and that the model-length forms are consistent with Encode. The seed corpus
// (run by go test) holds the fixture prompts and edge cases.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{
		"", " ", "a photo of an astronaut riding a horse on mars", "it's a dog's life!!!",
		"<|startoftext|> literal <|endoftext|>", "<|ENDOFTEXT|>!<|endoftext|>", "\x00\x01\x7f",
		"\xff\xfe invalid \xc3", "cafe\u0301 \u0130 \u03a3", "\u1100\u1161\u11a8", "\ufb01 \uff26",
		"東京の夜景 🐱 🚀", "  multiple   spaces\tand\nnewlines  ", strings.Repeat("ab", 200),
		"1920x1080 3.14159 #hashtag @user 100%", "\u0301\u0301\u0301", "''s 'll 're",
	} {
		f.Add(s)
	}
	tok := Builtin()
	bang, err := tok.WithPad("!")
	if err != nil {
		f.Fatal(err)
	}
	added, err := tok.WithAddedTokens(AddedToken{Content: "<x>", Normalized: true}, AddedToken{Content: "[y]", LStrip: true, RStrip: true, SingleWord: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 1<<16 {
			return
		}
		for _, tk := range []*Tokenizer{tok, bang, added} {
			ids := tk.Encode(text)
			for _, id := range ids {
				if id < 0 || id >= tk.VocabSize() || tk.Token(id) == "" {
					t.Fatalf("id %d out of range in %q", id, text)
				}
			}
			if again := tk.Encode(text); !equalInts(ids, again) {
				t.Fatalf("Encode(%q) is not deterministic: %v then %v", text, ids, again)
			}
			// Invalid bytes are each replaced by U+FFFD, as []rune conversion does.
			if !utf8.ValidString(text) && !equalInts(ids, tk.Encode(string([]rune(text)))) {
				t.Fatalf("invalid UTF-8 in %q is not replaced by U+FFFD", text)
			}
			full := tk.EncodeForModel(text, 0)
			if len(full) != len(ids)+2 || full[0] != tk.BOS() || full[len(full)-1] != tk.EOS() || !equalInts(full[1:len(full)-1], ids) {
				t.Fatalf("EncodeForModel(%q, 0) = %v, Encode = %v", text, full, ids)
			}
			padded := tk.EncodeForModel(text, 77)
			if len(padded) != 77 || !equalInts(padded, tk.Frame(ids, 77)) {
				t.Fatalf("EncodeForModel(%q, 77) = %v, Frame = %v", text, padded, tk.Frame(ids, 77))
			}
		}
	})
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

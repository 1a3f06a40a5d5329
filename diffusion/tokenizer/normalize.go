package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// normalize applies CLIP's normaliser, in the order of the tokenizers pipeline that transformers
// builds for CLIPTokenizer: NFC, every run of white space to one space, lowercase. s must be
// valid UTF-8.
//
// White space is Unicode White_Space (Go's unicode.IsSpace, which is the set that Oniguruma's
// \s matches). Lowercasing maps each rune on its own, as Rust's char::to_lowercase does: the
// simple lowercase mapping, except U+0130 (capital I with dot above), which becomes "i̇"
// (U+0069 U+0307). There is no final-sigma rule: Σ always becomes σ.
func normalize(s string) string {
	s = nfc(s)
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	var b strings.Builder
	b.Grow(len(s))
	if ascii {
		space := false
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch c {
			case ' ', '\t', '\n', '\v', '\f', '\r':
				if !space {
					b.WriteByte(' ')
				}
				space = true
				continue
			}
			space = false
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b.WriteByte(c)
		}
		return b.String()
	}
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		if r == 0x130 {
			b.WriteString("i\u0307")
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// normalizeChunk is the size of the pieces that encode normalises long text in.
const normalizeChunk = 4096

// normalizeCut returns where to cut s so that normalising the two parts apart gives the same
// text as normalising s: before an ASCII space that follows a non-space, at or after n bytes.
// The space is a starter that composes with nothing (NFC), its run of white space stays whole,
// and no word crosses it. It returns len(s) when there is no such place.
func normalizeCut(s string, n int) int {
	if len(s) <= n {
		return len(s)
	}
	for i := max(n, 1); i < len(s); i++ {
		if s[i] != ' ' {
			continue
		}
		if r, _ := utf8.DecodeLastRuneInString(s[:i]); !unicode.IsSpace(r) {
			return i
		}
	}
	return len(s)
}

// The literal special tokens that CLIP's split pattern keeps whole.
const (
	splitStartOfText = "<|startoftext|>"
	splitEndOfText   = "<|endoftext|>"
)

// splitWords cuts normalised text into the pieces that BPE encodes one at a time, calling emit
// for each piece in order; it stops early when emit returns false. It reproduces the
// tokenizers pipeline that transformers builds for CLIP: first the Split pre-tokenizer with
// the pattern
//
//	<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//
// keeping the matches and dropping what lies between (white space); then the ByteLevel
// pre-tokenizer, whose GPT-2 pattern cuts each piece again. That second cut changes only the
// two literal special tokens ("<|endoftext|>" becomes "<|", "endoftext", "|>"): every other
// piece is already a single GPT-2 match. Digits come one at a time; letters, and runs of
// anything else that is not white space, stay together.
func splitWords(s string, emit func(string) bool) {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case unicode.IsSpace(r):
			i += size
			continue
		case r == '<' && (strings.HasPrefix(s[i:], splitStartOfText) || strings.HasPrefix(s[i:], splitEndOfText)):
			n := len(splitStartOfText)
			if !strings.HasPrefix(s[i:], splitStartOfText) {
				n = len(splitEndOfText)
			}
			if !emit(s[i:i+2]) || !emit(s[i+2:i+n-2]) || !emit(s[i+n-2:i+n]) {
				return
			}
			i += n
			continue
		case r == '\'':
			if n := contraction(s[i+1:]); n > 0 {
				if !emit(s[i : i+1+n]) {
					return
				}
				i += 1 + n
				continue
			}
		case unicode.IsLetter(r):
			j := i + size
			for j < len(s) {
				r, size := utf8.DecodeRuneInString(s[j:])
				if !unicode.IsLetter(r) {
					break
				}
				j += size
			}
			if !emit(s[i:j]) {
				return
			}
			i = j
			continue
		case unicode.IsNumber(r):
			if !emit(s[i : i+size]) {
				return
			}
			i += size
			continue
		}
		// A run of runes that are neither white space, letters nor numbers.
		j := i + size
		for j < len(s) {
			r, size := utf8.DecodeRuneInString(s[j:])
			if unicode.IsSpace(r) || unicode.IsLetter(r) || unicode.IsNumber(r) {
				break
			}
			j += size
		}
		if !emit(s[i:j]) {
			return
		}
		i = j
	}
}

// contraction returns the length of the contraction suffix ("s", "t", "re", "ve", "m", "ll",
// "d") that s starts with, or 0. The alternatives are tried in the pattern's order.
func contraction(s string) int {
	for _, c := range [...]string{"s", "t", "re", "ve", "m", "ll", "d"} {
		if strings.HasPrefix(s, c) {
			return len(c)
		}
	}
	return 0
}

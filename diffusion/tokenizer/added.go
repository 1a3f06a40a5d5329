package tokenizer

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// AddedToken is a token matched in the text as a whole before BPE runs, as the tokenizers
// library's added vocabulary does: the special tokens (<|startoftext|>, <|endoftext|>, a pad
// token such as "!") and tokens added for textual inversion. Where the text contains its
// content, that part of the text becomes the token's id and BPE never sees it.
type AddedToken struct {
	// Content is the token's text; it must not be empty.
	Content string
	// Special marks bos/eos/unk/pad and the like. It does not change how text is encoded.
	Special bool
	// Normalized makes the token match the normalised text (NFC, lowercase, single spaces)
	// instead of the raw input. Special tokens usually do not; tokens added for textual
	// inversion with transformers' add_tokens do.
	Normalized bool
	// LStrip and RStrip make a match swallow the white space to its left or right.
	LStrip, RStrip bool
	// SingleWord makes the token match only where it is not part of a longer word.
	SingleWord bool
}

// addedEntry is an added token with its id.
type addedEntry struct {
	AddedToken
	id int
}

// matcher finds added tokens in text, leftmost first and the longest at a position, like an
// Aho-Corasick automaton in leftmost-longest mode. Patterns are grouped by their first byte,
// longest first, so a position costs one comparison per pattern sharing its first byte.
type matcher struct {
	byFirst [256][]*matchPattern
}

type matchPattern struct {
	text  string
	entry *addedEntry
}

func newMatcher(patterns []*matchPattern) *matcher {
	if len(patterns) == 0 {
		return nil
	}
	m := &matcher{}
	for _, p := range patterns {
		if p.text == "" {
			continue
		}
		m.byFirst[p.text[0]] = append(m.byFirst[p.text[0]], p)
	}
	for _, ps := range &m.byFirst {
		slices.SortStableFunc(ps, func(a, b *matchPattern) int { return len(b.text) - len(a.text) })
	}
	return m
}

// segment is a piece of text: either a match of an added token (id >= 0) or plain text.
type segment struct {
	text string
	id   int
}

// split cuts s into plain text and added tokens, applying each token's SingleWord, LStrip and
// RStrip rules as the tokenizers library does. A match rejected by SingleWord is skipped as a
// whole (the search resumes after it). With a nil matcher, s is one plain segment.
func (m *matcher) split(s string, emit func(segment) bool) bool {
	if m == nil || s == "" {
		return emit(segment{text: s, id: -1})
	}
	plainStart := 0
	for i := 0; i < len(s); {
		if m.byFirst[s[i]] == nil {
			i++
			continue
		}
		p := m.longestAt(s, i)
		if p == nil {
			i++
			continue
		}
		start, stop := i, i+len(p.text)
		i = stop
		e := p.entry
		if e.SingleWord {
			if (start > 0 && endsWithWordChar(s[:start])) || (stop < len(s) && startsWithWordChar(s[stop:])) {
				continue
			}
		}
		if e.LStrip {
			start = max(plainStart, len(strings.TrimRightFunc(s[:start], unicode.IsSpace)))
		}
		if e.RStrip {
			stop = len(s) - len(strings.TrimLeftFunc(s[stop:], unicode.IsSpace))
			i = stop
		}
		if plainStart < start && !emit(segment{text: s[plainStart:start], id: -1}) {
			return false
		}
		if !emit(segment{text: s[start:stop], id: e.id}) {
			return false
		}
		plainStart = stop
	}
	if plainStart < len(s) {
		return emit(segment{text: s[plainStart:], id: -1})
	}
	return true
}

func (m *matcher) longestAt(s string, i int) *matchPattern {
	for _, p := range m.byFirst[s[i]] {
		if strings.HasPrefix(s[i:], p.text) {
			return p
		}
	}
	return nil
}

// isWordChar reports whether r matches the Unicode \w of Rust's regex crate: alphabetic,
// marks, decimal digits, connector punctuation and the join controls.
func isWordChar(r rune) bool {
	return unicode.IsLetter(r) || unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Other_Alphabetic, r) ||
		unicode.IsMark(r) || unicode.Is(unicode.Nd, r) || unicode.Is(unicode.Pc, r) ||
		unicode.Is(unicode.Join_Control, r)
}

func endsWithWordChar(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return isWordChar(r)
}

func startsWithWordChar(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return isWordChar(r)
}

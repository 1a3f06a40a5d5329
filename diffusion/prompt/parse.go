// Package prompt parses the prompt-weighting syntax people use with
// AUTOMATIC1111's web UI and stable-diffusion.cpp:
//
//	(word)        weight ×1.1; nesting multiplies: ((word)) is ×1.21
//	(word:1.3)    weight 1.3 (times any enclosing brackets)
//	[word]        weight ÷1.1
//	\( \) \[ \]   literal brackets; \\ a literal backslash
//	BREAK         (as a word, in capitals) starts a new 75-token chunk
//
// Unbalanced brackets are tolerated as A1111 tolerates them: an unclosed "(" or
// "[" weights everything after it, a stray ")" or "]" is dropped. Weights are
// clamped to [-MaxWeight, MaxWeight] so that an absurd number (1e30) cannot turn
// the embeddings into infinities; a weight that is not a number stays literal text.
package prompt

import (
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Fragment is a run of prompt text with one weight. A Break fragment has no text
// and marks the start of a new chunk.
type Fragment struct {
	Text   string
	Weight float64
	Break  bool
}

// MaxWeight bounds the magnitude of a weight.
const MaxWeight = 100.0

// The tokens of the syntax, in the order A1111's parser tries them: escapes, open
// brackets, an explicit weight closing a round bracket, close brackets, plain
// text, and a lone colon.
var (
	attentionRE = regexp.MustCompile(`\\\(|\\\)|\\\[|\\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|\]|[^\\()\[\]:]+|:`)
	breakRE     = regexp.MustCompile(`\s*\bBREAK\b\s*`)
)

// Parse splits text into weighted fragments. Adjacent fragments of equal weight
// are merged; a text without any syntax gives one fragment of weight 1, and an
// empty text gives one empty fragment.
func Parse(text string) []Fragment {
	var res []Fragment
	var round, square []int
	multiply := func(from int, m float64) {
		for i := from; i < len(res); i++ {
			if !res[i].Break {
				res[i].Weight *= m
			}
		}
	}
	for _, m := range attentionRE.FindAllStringSubmatchIndex(text, -1) {
		tok := text[m[0]:m[1]]
		weight := ""
		if m[2] >= 0 {
			weight = text[m[2]:m[3]]
		}
		switch {
		case strings.HasPrefix(tok, `\`):
			res = append(res, Fragment{Text: tok[1:], Weight: 1})
		case tok == "(":
			round = append(round, len(res))
		case tok == "[":
			square = append(square, len(res))
		case weight != "" && len(round) > 0:
			w, err := strconv.ParseFloat(weight, 64)
			if err != nil { // "1.2.3": not a number, keep the text as A1111 would fail to
				res = append(res, Fragment{Text: tok, Weight: 1})
				continue
			}
			multiply(round[len(round)-1], w)
			round = round[:len(round)-1]
		case tok == ")" && len(round) > 0:
			multiply(round[len(round)-1], 1.1)
			round = round[:len(round)-1]
		case tok == "]" && len(square) > 0:
			multiply(square[len(square)-1], 1/1.1)
			square = square[:len(square)-1]
		case tok == ")" || tok == "]":
			// a stray closing bracket: dropped
		default:
			parts := breakRE.Split(tok, -1)
			for i, part := range parts {
				if i > 0 {
					res = append(res, Fragment{Break: true})
				}
				res = append(res, Fragment{Text: part, Weight: 1})
			}
		}
	}
	for _, pos := range round {
		multiply(pos, 1.1)
	}
	for _, pos := range square {
		multiply(pos, 1/1.1)
	}
	if len(res) == 0 {
		return []Fragment{{Text: "", Weight: 1}}
	}
	// Merge runs of equal weight, as A1111 does, and clamp.
	out := res[:1]
	for _, f := range res[1:] {
		last := &out[len(out)-1]
		if !f.Break && !last.Break && f.Weight == last.Weight {
			last.Text += f.Text
			continue
		}
		out = append(out, f)
	}
	for i := range out {
		if math.IsNaN(out[i].Weight) {
			out[i].Weight = 1
		}
		out[i].Weight = math.Max(-MaxWeight, math.Min(MaxWeight, out[i].Weight))
	}
	return out
}

// Plain reports whether a prompt uses none of the weighting syntax, so that the
// weighted and the plain encodings of it are the same.
func Plain(text string) bool {
	return !strings.ContainsAny(text, `()[]\`) && !breakRE.MatchString(text)
}

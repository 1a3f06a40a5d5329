package prompt

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	f := func(text string, w float64) Fragment { return Fragment{Text: text, Weight: w} }
	brk := Fragment{Break: true}
	cases := []struct {
		in   string
		want []Fragment
	}{
		{"normal text", []Fragment{f("normal text", 1)}},
		{"", []Fragment{f("", 1)}},
		{"an (important) word", []Fragment{f("an ", 1), f("important", 1.1), f(" word", 1)}},
		{"((very))", []Fragment{f("very", 1.1*1.1)}},
		{"(unnecessary)(parens)", []Fragment{f("unnecessaryparens", 1.1)}},
		{"a [less] b", []Fragment{f("a ", 1), f("less", 1/1.1), f(" b", 1)}},
		{"(word:1.3)", []Fragment{f("word", 1.3)}},
		{"((word:1.5))", []Fragment{f("word", 1.5*1.1)}},
		{"(a (b:2) c)", []Fragment{f("a ", 1.1), f("b", 2*1.1), f(" c", 1.1)}},
		{`\(literal\)`, []Fragment{f("(literal)", 1)}},
		{`a \\ b`, []Fragment{f(`a \ b`, 1)}},
		{"(unbalanced", []Fragment{f("unbalanced", 1.1)}},
		{"stray) close]", []Fragment{f("stray close", 1)}},
		{"cat BREAK dog", []Fragment{f("cat", 1), brk, f("dog", 1)}},
		{"a (cat BREAK dog:1.5)", []Fragment{f("a ", 1), f("cat", 1.5), brk, f("dog", 1.5)}},
		{"BREAKFAST", []Fragment{f("BREAKFAST", 1)}},
		{"time: 5", []Fragment{f("time: 5", 1)}},
		{"(x:1e30)", []Fragment{f("x:1e30", 1.1)}},
		{"(x:1000000000000000000000000000000)", []Fragment{f("x", MaxWeight)}},
		{"(x:-2)", []Fragment{f("x", -2)}},
		{"(x:1.2.3)", []Fragment{f("x:1.2.3)", 1.1)}}, // not a number: literal, and the "(" stays open
	}
	for _, c := range cases {
		got := Parse(c.in)
		require.Len(t, got, len(c.want), "%q: %+v", c.in, got)
		for i := range got {
			require.Equal(t, c.want[i].Text, got[i].Text, "%q fragment %d", c.in, i)
			require.Equal(t, c.want[i].Break, got[i].Break, "%q fragment %d", c.in, i)
			require.InDelta(t, c.want[i].Weight, got[i].Weight, 1e-12, "%q fragment %d", c.in, i)
		}
	}
}

func TestPlain(t *testing.T) {
	require.True(t, Plain("a photo of an astronaut"))
	require.False(t, Plain("a (photo)"))
	require.False(t, Plain("a BREAK b"))
	require.True(t, Plain("BREAKFAST"))
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"(a:1.2) [b] \\(c\\) BREAK d", "((((", "))]]", ":::", "\x00(\xff:2)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, fr := range Parse(s) {
			if math.IsNaN(fr.Weight) || math.Abs(fr.Weight) > MaxWeight {
				t.Fatalf("%q: weight %v", s, fr.Weight)
			}
		}
	})
}

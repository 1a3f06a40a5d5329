package tokenizer

import (
	"strings"
	"testing"
)

// benchPrompt is a typical prompt of 75 tokens: one full 77-token sequence with bos and eos.
const benchPrompt = "portrait of a woman in a red dress standing in a field of sunflowers at golden hour, " +
	"(masterpiece:1.2), best quality, highly detailed, sharp focus, 35mm photograph, f/1.8, " +
	"bokeh, film grain, by greg rutkowski and alphonse mucha, trending on artstation, 8k uhd, " +
	"soft lighting, high quality"

func BenchmarkEncodeForModel77(b *testing.B) {
	tok := Builtin()
	if n := len(tok.Encode(benchPrompt)); n != 75 {
		b.Fatalf("benchPrompt has %d tokens, want 75", n)
	}
	b.SetBytes(int64(len(benchPrompt)))
	b.ReportAllocs()
	for b.Loop() {
		tok.EncodeForModel(benchPrompt, 77)
	}
}

// BenchmarkEncodeUncached encodes words that the cache has not seen (the first prompt a
// worker sees).
func BenchmarkEncodeUncached(b *testing.B) {
	tok := Builtin()
	words := strings.Fields(benchPrompt)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tok.model.cache.mu.Lock()
		tok.model.cache.m = nil
		tok.model.cache.mu.Unlock()
		tok.Encode(words[i%len(words)])
	}
}

func BenchmarkEncodeLong(b *testing.B) {
	tok := Builtin()
	long := strings.Repeat(benchPrompt+" ", 130) // about 10 000 tokens
	b.SetBytes(int64(len(long)))
	b.ReportAllocs()
	for b.Loop() {
		tok.Encode(long)
	}
}

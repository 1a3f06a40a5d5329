package tokenizer

import (
	"fmt"
	"sync"
)

// bpe is the byte-level BPE model: the vocabulary, the merges and a bounded cache of encoded
// words. It is shared by every Tokenizer derived from the same files and is safe for
// concurrent use (the cache has its own lock; everything else is immutable).
type bpe struct {
	vocab  map[string]int
	tokens []string // id -> token; "" for ids that the vocabulary does not use
	merges map[uint64]mergeRule
	unk    int // id of the unknown token, -1 for none

	// The ids of each byte's byte-level character, alone and with the end-of-word suffix;
	// -1 where the vocabulary lacks it.
	byteID, lastByteID [256]int32
	// byteOf maps a byte-level character (all are below U+0144) back to its byte, or -1.
	byteOf [0x144]int16

	cache wordCache
}

// mergeRule is what a pair of adjacent symbols becomes: its rank (lower merges first) and the
// id of the merged symbol.
type mergeRule struct {
	rank, id int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// endOfWord is the suffix that CLIP's BPE appends to the last symbol of every word.
const endOfWord = "</w>"

// maxTokenID bounds the ids a vocabulary may use, so that a corrupt file cannot make the
// id -> token table huge.
const maxTokenID = 1 << 24

// byteChars is GPT-2's bytes_to_unicode map: each byte as the printable rune that stands for it
// in the vocabulary. Printable Latin-1 bytes stand for themselves; the others (controls,
// space, soft hyphen, ...) are moved, in byte order, to U+0100 and up.
func byteChars() [256]rune {
	var m [256]rune
	n := rune(0)
	for b := 0; b < 256; b++ {
		if ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF) {
			m[b] = rune(b)
		} else {
			m[b] = 256 + n
			n++
		}
	}
	return m
}

// newBPE builds the model from a vocabulary (token -> id) and the merges in rank order. Like
// the tokenizers library, it requires both halves of every merge and their concatenation to
// be in the vocabulary; when a pair is listed twice, the later rank wins. unk may be "" for
// no unknown token.
func newBPE(vocab map[string]int, merges [][2]string, unk string) (*bpe, error) {
	if len(vocab) == 0 {
		return nil, fmt.Errorf("empty vocabulary")
	}
	maxID := -1
	for tok, id := range vocab {
		if id < 0 || id >= maxTokenID {
			return nil, fmt.Errorf("token %q has id %d, outside [0, %d)", tok, id, maxTokenID)
		}
		maxID = max(maxID, id)
	}
	m := &bpe{vocab: vocab, tokens: make([]string, maxID+1), unk: -1}
	seen := make([]bool, maxID+1)
	for tok, id := range vocab {
		if seen[id] {
			return nil, fmt.Errorf("id %d is used by %q and %q", id, m.tokens[id], tok)
		}
		seen[id] = true
		m.tokens[id] = tok
	}
	if unk != "" {
		id, ok := vocab[unk]
		if !ok {
			return nil, fmt.Errorf("unknown token %q is not in the vocabulary", unk)
		}
		m.unk = id
	}
	m.merges = make(map[uint64]mergeRule, len(merges))
	for rank, p := range merges {
		a, ok := vocab[p[0]]
		if !ok {
			return nil, fmt.Errorf("merge %d (%q %q): %q is not in the vocabulary", rank+1, p[0], p[1], p[0])
		}
		b, ok := vocab[p[1]]
		if !ok {
			return nil, fmt.Errorf("merge %d (%q %q): %q is not in the vocabulary", rank+1, p[0], p[1], p[1])
		}
		c, ok := vocab[p[0]+p[1]]
		if !ok {
			return nil, fmt.Errorf("merge %d (%q %q): %q is not in the vocabulary", rank+1, p[0], p[1], p[0]+p[1])
		}
		m.merges[pairKey(int32(a), int32(b))] = mergeRule{rank: int32(rank), id: int32(c)}
	}
	chars := byteChars()
	for i := range m.byteOf {
		m.byteOf[i] = -1
	}
	for b, r := range chars {
		m.byteOf[r] = int16(b)
		m.byteID[b], m.lastByteID[b] = -1, -1
		if id, ok := vocab[string(r)]; ok {
			m.byteID[b] = int32(id)
		}
		if id, ok := vocab[string(r)+endOfWord]; ok {
			m.lastByteID[b] = int32(id)
		}
	}
	return m, nil
}

// charByte maps a byte-level character back to its byte.
func (m *bpe) charByte(r rune) (byte, bool) {
	if r < 0 || int(r) >= len(m.byteOf) || m.byteOf[r] < 0 {
		return 0, false
	}
	return byte(m.byteOf[r]), true
}

// token returns the token string of id, or "" when the vocabulary has no such id.
func (m *bpe) token(id int) string {
	if id < 0 || id >= len(m.tokens) {
		return ""
	}
	return m.tokens[id]
}

// appendWord appends the ids of one pre-tokenised word (raw UTF-8, before the byte-level
// mapping) to dst.
func (m *bpe) appendWord(dst []int, word string) []int {
	if ids, ok := m.cache.get(word); ok {
		return append(dst, ids...)
	}
	start := len(dst)
	dst = m.encodeWord(dst, word)
	m.cache.put(word, dst[start:])
	return dst
}

// symbol is one part of a word during merging: a token id and its neighbours (indices into
// the symbol slice, -1 at the ends). A symbol merged into its left neighbour is marked gone.
type symbol struct {
	id         int32
	prev, next int32
	gone       bool
}

// candidate is a possible merge of the symbol at pos with its right neighbour.
type candidate struct {
	rank, pos, id int32
}

func (a candidate) less(b candidate) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

// encodeWord runs BPE over one word. Every byte becomes the symbol of its byte-level
// character (the last one with the end-of-word suffix); a byte whose symbol is missing
// from the vocabulary becomes the unknown token (or is dropped when there is none). Then,
// repeatedly, the adjacent pair with the lowest merge rank (leftmost on ties) is merged, until
// no pair has a merge: the same order as the tokenizers library. O(n log n) in the word's
// length.
func (m *bpe) encodeWord(dst []int, word string) []int {
	syms := make([]symbol, 0, len(word))
	for i := 0; i < len(word); i++ {
		id := m.byteID[word[i]]
		if i == len(word)-1 {
			id = m.lastByteID[word[i]]
		}
		if id < 0 {
			if m.unk < 0 {
				continue
			}
			id = int32(m.unk)
		}
		syms = append(syms, symbol{id: id, prev: int32(len(syms)) - 1, next: int32(len(syms)) + 1})
	}
	if len(syms) == 0 {
		return dst
	}
	syms[len(syms)-1].next = -1

	var heap candidateHeap
	for i := 0; i+1 < len(syms); i++ {
		if r, ok := m.merges[pairKey(syms[i].id, syms[i+1].id)]; ok {
			heap = append(heap, candidate{rank: r.rank, pos: int32(i), id: r.id})
		}
	}
	heap.init()
	for len(heap) > 0 {
		c := heap.pop()
		s := &syms[c.pos]
		if s.gone || s.next < 0 {
			continue
		}
		right := &syms[s.next]
		// The pair at pos may have changed since c was queued.
		if r, ok := m.merges[pairKey(s.id, right.id)]; !ok || r.id != c.id {
			continue
		}
		s.id = c.id
		right.gone = true
		s.next = right.next
		if s.next >= 0 {
			syms[s.next].prev = c.pos
		}
		if s.prev >= 0 {
			if r, ok := m.merges[pairKey(syms[s.prev].id, s.id)]; ok {
				heap.push(candidate{rank: r.rank, pos: s.prev, id: r.id})
			}
		}
		if s.next >= 0 {
			if r, ok := m.merges[pairKey(s.id, syms[s.next].id)]; ok {
				heap.push(candidate{rank: r.rank, pos: c.pos, id: r.id})
			}
		}
	}
	for i := range syms {
		if !syms[i].gone {
			dst = append(dst, int(syms[i].id))
		}
	}
	return dst
}

// candidateHeap is a binary min-heap of merge candidates ordered by (rank, pos).
type candidateHeap []candidate

func (h candidateHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *candidateHeap) push(c candidate) {
	*h = append(*h, c)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s[i].less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *candidateHeap) pop() candidate {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	*h = s[:n]
	h.down(0)
	return top
}

func (h candidateHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		j := l
		if r := l + 1; r < len(h) && h[r].less(h[l]) {
			j = r
		}
		if !h[j].less(h[i]) {
			return
		}
		h[i], h[j] = h[j], h[i]
		i = j
	}
}

// wordCache remembers the ids of recently encoded words. It holds at most cacheWords words of
// at most cacheWordBytes bytes each, and starts afresh when full, so its memory is bounded
// whatever the input.
type wordCache struct {
	mu sync.Mutex
	m  map[string][]int
}

const (
	cacheWords     = 10000
	cacheWordBytes = 64
)

func (c *wordCache) get(word string) ([]int, bool) {
	if len(word) > cacheWordBytes {
		return nil, false
	}
	c.mu.Lock()
	ids, ok := c.m[word]
	c.mu.Unlock()
	return ids, ok
}

func (c *wordCache) put(word string, ids []int) {
	if len(word) > cacheWordBytes {
		return
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= cacheWords {
		c.m = make(map[string][]int, 256)
	}
	c.m[word] = append([]int(nil), ids...)
	c.mu.Unlock()
}

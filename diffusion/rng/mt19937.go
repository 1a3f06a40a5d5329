package rng

// mt19937 is the 32-bit Mersenne Twister (Matsumoto & Nishimura), the engine
// behind torch.Generator("cpu") (at::mt19937).
type mt19937 struct {
	state [mtN]uint32
	next  int // index of the next state word to temper; mtN means "twist first"
}

const (
	mtN         = 624
	mtM         = 397
	mtMatrixA   = 0x9908b0df
	mtUpperMask = 0x80000000
	mtLowerMask = 0x7fffffff
)

// seed initialises the state as at::mt19937 does: it keeps the 64-bit seed
// but fills the state from its low 32 bits only, so seeds that differ only
// above bit 31 (5 and 2^32+5) give the same stream in PyTorch, and here.
func (m *mt19937) seed(seed uint64) {
	m.state[0] = uint32(seed)
	for i := 1; i < mtN; i++ {
		prev := m.state[i-1]
		m.state[i] = 1812433253*(prev^(prev>>30)) + uint32(i)
	}
	m.next = mtN
}

// twist regenerates all 624 words in place (the standard recurrence, in
// which words past mtN-mtM already use the new values).
func (m *mt19937) twist() {
	s := &m.state
	for i := 0; i < mtN; i++ {
		y := s[i]&mtUpperMask | s[(i+1)%mtN]&mtLowerMask
		v := s[(i+mtM)%mtN] ^ y>>1
		if y&1 != 0 {
			v ^= mtMatrixA
		}
		s[i] = v
	}
	m.next = 0
}

// uint32 returns the next tempered 32-bit output.
func (m *mt19937) uint32() uint32 {
	if m.next >= mtN {
		m.twist()
	}
	y := m.state[m.next]
	m.next++
	y ^= y >> 11
	y ^= y << 7 & 0x9d2c5680
	y ^= y << 15 & 0xefc60000
	y ^= y >> 18
	return y
}

// uint64 returns two outputs joined, the first as the high word, as
// at::CPUGeneratorImpl::random64 does.
func (m *mt19937) uint64() uint64 {
	hi := m.uint32()
	lo := m.uint32()
	return uint64(hi)<<32 | uint64(lo)
}

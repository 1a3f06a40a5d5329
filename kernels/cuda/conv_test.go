package cuda

import (
	"math"
	"testing"
)

func TestConvImplicit(t *testing.T) {
	for _, c := range []struct {
		v           string
		blocks, sms int
		want        bool
	}{
		{"", 192, 132, true}, {"", 132, 132, true}, {"", 131, 132, false}, {"", 10, 132, false},
		{"auto", 40, 132, false}, {"bogus", 264, 132, true}, {"", 1, 0, true},
		{"implicit", 10, 132, true}, {" IMPLICIT\n", 1, 132, true},
		{"im2col", 1000, 132, false}, {" Im2Col", 1000, 132, false},
	} {
		if got := convImplicit(c.v, c.blocks, c.sms); got != c.want {
			t.Errorf("convImplicit(%q, %d, %d) = %v, want %v", c.v, c.blocks, c.sms, got, c.want)
		}
	}
}

func TestConvTCGrid(t *testing.T) {
	for _, c := range []struct {
		ch, h, w, oc, kh, kw, ncols, stride, pad, padEnd int
		grid                                             [3]uint32
		ok                                               bool
	}{
		{1, 1, 1, 1, 1, 1, 1, 1, 0, 0, [3]uint32{1, 1, 1}, true},
		{320, 64, 64, 320, 3, 3, 2 * 64 * 64, 1, 1, 0, [3]uint32{64, 3, 1}, true},
		{1280, 8, 8, 1280, 3, 3, 2 * 8 * 8, 1, 1, 0, [3]uint32{1, 10, 1}, true},
		{9, 31, 17, 130, 3, 3, 3 * 31 * 17, 1, 1, 0, [3]uint32{13, 2, 1}, true},
		{128, 1024, 1024, 128, 3, 3, 1 << 20, 1, 1, 0, [3]uint32{1 << 13, 1, 1}, true},
		{3, 16385, 8, 4, 3, 3, 100, 1, 1, 0, [3]uint32{}, false},                   // H too large
		{3, 8, 8, 4, 3, 3, 100, 1, 1, 1 << 15, [3]uint32{}, false},                 // PadEnd too large
		{1 << 12, 1 << 10, 1 << 10, 4, 1, 1, 1 << 20, 1, 0, 0, [3]uint32{}, false}, // C·H·W ≥ 2³¹
		{4, 8, 8, 4, 3, 3, math.MaxInt32 - 100, 1, 1, 0, [3]uint32{}, false},       // pixel indices
		{4, 8, 8, 128 * 65536, 1, 1, 64, 1, 0, 0, [3]uint32{}, false},              // grid.y
		{4, 8, 8, 128 * 65535, 1, 1, 64, 1, 0, 0, [3]uint32{1, 65535, 1}, true},    // grid.y limit
	} {
		g, ok := convTCGrid(c.ch, c.h, c.w, c.oc, c.kh, c.kw, c.ncols, c.stride, c.pad, c.padEnd)
		if g != c.grid || ok != c.ok {
			t.Errorf("convTCGrid(%+v) = %v, %v; want %v, %v", c, g, ok, c.grid, c.ok)
		}
	}
}

func TestConvTCVec(t *testing.T) {
	for _, c := range []struct {
		k    int
		p    uint64
		want bool
	}{
		{2880, 1 << 20, true}, {320, 0x1000_0010, true}, {36, 1 << 20, false}, {2880, 1<<20 + 2, false}, {8, 8, false},
	} {
		if got := convTCVec(c.k, c.p); got != c.want {
			t.Errorf("convTCVec(%d, %#x) = %v, want %v", c.k, c.p, got, c.want)
		}
	}
}

// TestConvTCSignature checks conv.go's argument list against the PTX.
func TestConvTCSignature(t *testing.T) {
	for _, name := range []string{"conv2d_tc_f16", "conv2d_tc_bf16"} {
		if n, st := ptxParams(t, name); n != 16 || len(st) != 0 {
			t.Errorf("%s: %d params, structs %v; want 16, none", name, n, st)
		}
	}
}

package cuda

import (
	"math"
	"testing"

	"github.com/sdgo/sdgo/tensor"
)

// TestFlashTCKernel checks which attention calls the tensor-core kernel takes
// and which variant.
func TestFlashTCKernel(t *testing.T) {
	for _, c := range []struct {
		env               string
		dt                tensor.DType
		nb, nh, lq, d, dv int
		want              string
	}{
		{"", tensor.F16, 2, 8, 4096, 40, 40, "flash_attn_tc_f16_d64"},
		{"", tensor.BF16, 2, 8, 4096, 40, 40, "flash_attn_tc_bf16_d64"},
		{"", tensor.F16, 1, 1, 1, 1, 1, "flash_attn_tc_f16_d64"},
		{"", tensor.F16, 1, 12, 77, 64, 64, "flash_attn_tc_f16_d64"},
		{"", tensor.F16, 1, 1, 17, 64, 65, "flash_attn_tc_f16_d160"}, // 65 rounds up to 80
		{"", tensor.BF16, 2, 10, 1024, 80, 80, "flash_attn_tc_bf16_d160"},
		{"", tensor.F16, 2, 20, 256, 160, 160, "flash_attn_tc_f16_d160"},
		{"", tensor.F16, 2, 2, 9, 24, 160, "flash_attn_tc_f16_d160"},
		{"flash", tensor.F16, 2, 8, 4096, 40, 40, "flash_attn_tc_f16_d64"},
		{"gemm", tensor.F16, 2, 8, 4096, 40, 40, ""},
		{" GEMM ", tensor.BF16, 2, 8, 4096, 40, 40, ""},
		{"", tensor.F16, 1, 1, 4096, 512, 512, ""}, // the VAE's head
		{"", tensor.F16, 1, 1, 16, 161, 8, ""},
		{"", tensor.F16, 1, 1, 16, 8, 161, ""},
		{"", tensor.F16, 256, 256, 16, 64, 64, ""}, // grid.y over 65535
		{"", tensor.F16, 255, 257, 16, 64, 64, "flash_attn_tc_f16_d64"},
		{"", tensor.F32, 1, 1, 16, 64, 64, ""},
		{"", tensor.F16, 1, 1, math.MaxInt32 + 1, 64, 64, ""},
	} {
		got, ok := flashTCKernel(c.env, c.dt, c.nb, c.nh, c.lq, c.d, c.dv)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("flashTCKernel(%q, %v, %d, %d, %d, %d, %d) = %q, %v; want %q", c.env, c.dt, c.nb, c.nh, c.lq, c.d, c.dv, got, ok, c.want)
		}
	}
}

// TestFlashTCArgs checks the packed parameters against the kernels'
// declarations in the PTX and their order.
func TestFlashTCArgs(t *testing.T) {
	o := attnOperand{p: 0x1000, sb: 11, sh: 12, sl: 13, sd: 1}
	q := tcOperand{p: 0x2000, dt: tcDTypeCode(tensor.F32), sb: 21, sh: 22, sl: 23}
	k := tcOperand{p: 0x3000, dt: tcDTypeCode(tensor.F16), sb: 31, sh: 32, sl: 33}
	v := tcOperand{p: 0x4000, dt: tcDTypeCode(tensor.BF16), sb: 41, sh: 42, sl: 43}
	a := flashTCArgs(o, q, k, v, 8, 4096, 77, 40, 24, 0.5, true)
	for _, name := range []string{"flash_attn_tc_f16_d64", "flash_attn_tc_f16_d160", "flash_attn_tc_bf16_d64", "flash_attn_tc_bf16_d160"} {
		n, st := ptxParams(t, name)
		if n != len(a.index) || len(st) != 0 {
			t.Errorf("%s: %d params (structs %v), Go packs %d", name, n, st, len(a.index))
		}
	}
	want := []uint64{0x1000, 0x2000, 0x3000, 0x4000, 0, 1, 2, 8, 4096, 77, 40, 24,
		21, 22, 23, 31, 32, 33, 41, 42, 43, 11, 12, 13, uint64(math.Float32bits(0.5)), 1}
	if len(a.slots) != len(want) {
		t.Fatalf("%d slots, want %d", len(a.slots), len(want))
	}
	for i, w := range want {
		if a.slots[i] != w || a.index[i] != i {
			t.Errorf("parameter %d: slot %d = %#x, want %#x", i, a.index[i], a.slots[i], w)
		}
	}
	if a := flashTCArgs(o, q, k, v, 1, 1, 1, 1, 1, 1, false); a.slots[len(a.slots)-1] != 0 {
		t.Error("causal false packed as", a.slots[len(a.slots)-1])
	}
	for _, c := range []struct {
		nb, nh, lq int
		want       [3]uint32
	}{
		{1, 1, 1, [3]uint32{1, 1, 1}},
		{2, 8, 4096, [3]uint32{64, 16, 1}},
		{1, 3, 65, [3]uint32{2, 3, 1}},
		{2, 2, 130, [3]uint32{3, 4, 1}},
	} {
		if g := flashTCGrid(c.nb, c.nh, c.lq); g != c.want {
			t.Errorf("flashTCGrid(%d, %d, %d) = %v, want %v", c.nb, c.nh, c.lq, g, c.want)
		}
	}
}

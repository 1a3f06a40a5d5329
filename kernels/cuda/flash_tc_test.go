package cuda

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"strings"
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
		{"", tensor.F16, 2, 8, 4096, 40, 40, "flash_attn_tc_f16_d48"},
		{"", tensor.BF16, 2, 8, 4096, 40, 40, "flash_attn_tc_bf16_d48"},
		{"", tensor.F16, 1, 1, 1, 1, 1, "flash_attn_tc_f16_d48"},
		{"", tensor.F16, 1, 12, 77, 64, 64, "flash_attn_tc_f16_d64"},
		{"", tensor.F16, 1, 1, 17, 64, 65, "flash_attn_tc_f16_d80"}, // 65 rounds up to 80
		{"", tensor.F16, 1, 1, 17, 48, 49, "flash_attn_tc_f16_d64"},
		{"", tensor.BF16, 1, 1, 17, 81, 8, "flash_attn_tc_bf16_d160"},
		{"", tensor.BF16, 2, 10, 1024, 80, 80, "flash_attn_tc_bf16_d80"},
		{"", tensor.F16, 2, 20, 256, 160, 160, "flash_attn_tc_f16_d160"},
		{"", tensor.F16, 2, 2, 9, 24, 160, "flash_attn_tc_f16_d160"},
		{"flash", tensor.F16, 2, 8, 4096, 40, 40, "flash_attn_tc_f16_d48"},
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
		if got.name != c.want || ok != (c.want != "") {
			t.Errorf("flashTCKernel(%q, %v, %d, %d, %d, %d, %d) = %q, %v; want %q", c.env, c.dt, c.nb, c.nh, c.lq, c.d, c.dv, got.name, ok, c.want)
		}
		wbq := 128
		if strings.HasSuffix(c.want, "_d160") {
			wbq = 64
		}
		if ok && got.bq != wbq {
			t.Errorf("%s: %d query rows a block, want %d", got.name, got.bq, wbq)
		}
	}
}

// TestFlashTCArgs checks the packed parameters against the kernels'
// declarations in the PTX and their order, and the grid.
func TestFlashTCArgs(t *testing.T) {
	o := attnOperand{p: 0x1000, sb: 11, sh: 12, sl: 13, sd: 1}
	q := tcOperand{p: 0x2000, sb: 21, sh: 22, sl: 23, aligned: true}
	k := tcOperand{p: 0x3000, sb: 31, sh: 32, sl: 33}
	v := tcOperand{p: 0x4000, sb: 41, sh: 42, sl: 43, aligned: true}
	a := flashTCArgs(o, q, k, v, 8, 4096, 77, 40, 24, 0.5, true)
	for _, dt := range []string{"f16", "bf16"} {
		for _, tv := range tcVariants {
			name := fmt.Sprintf("flash_attn_tc_%s_d%d", dt, tv.dp)
			n, st := ptxParams(t, name)
			if n != len(a.index) || len(st) != 0 {
				t.Errorf("%s: %d params (structs %v), Go packs %d", name, n, st, len(a.index))
			}
			// The FLASH_TC line: DP, BK and WM; 64·WM query rows a block.
			re := regexp.MustCompile(`(?m)^FLASH_TC\(` + name + `, \w+, (\d+), (\d+), (\d+)\)`)
			m := re.FindStringSubmatch(attentionSource(t))
			if m == nil {
				t.Errorf("%s: no FLASH_TC line in attention.cu", name)
			} else if m[1] != fmt.Sprint(tv.dp) || m[3] != fmt.Sprint(tv.bq/64) {
				t.Errorf("%s: FLASH_TC DP %s, WM %s; Go has %d, %d rows", name, m[1], m[3], tv.dp, tv.bq)
			}
		}
	}
	want := []uint64{0x1000, 0x2000, 0x3000, 0x4000, 8, 4096, 77, 40, 24, 5,
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
		bq, nb, nh, lq int
		want           [3]uint32
	}{
		{128, 1, 1, 1, [3]uint32{1, 1, 1}},
		{128, 2, 8, 4096, [3]uint32{32, 16, 1}},
		{64, 2, 8, 4096, [3]uint32{64, 16, 1}},
		{128, 1, 3, 129, [3]uint32{2, 3, 1}},
		{64, 2, 2, 130, [3]uint32{3, 4, 1}},
	} {
		if g := flashTCGrid(c.bq, c.nb, c.nh, c.lq); g != c.want {
			t.Errorf("flashTCGrid(%d, %d, %d, %d) = %v, want %v", c.bq, c.nb, c.nh, c.lq, g, c.want)
		}
	}
}

func attentionSource(t *testing.T) string {
	b, err := os.ReadFile("attention.cu")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTCAligned checks when an operand's rows may be copied 16 bytes at a time.
func TestTCAligned(t *testing.T) {
	for _, c := range []struct {
		p         uint64
		shape, st []int
		want      bool
	}{
		{0x1000, []int{2, 8, 4096, 40}, []int{8 * 4096 * 40, 4096 * 40, 40, 1}, true},
		{0x1008, []int{2, 8, 4096, 40}, []int{8 * 4096 * 40, 4096 * 40, 40, 1}, false},
		{0x1000, []int{2, 8, 77, 65}, []int{8 * 77 * 65, 77 * 65, 65, 1}, false},
		{0x1000, []int{1, 1, 1, 65}, []int{65, 65, 65, 1}, true},
		{0x1000, []int{2, 8, 4096, 40}, []int{4096 * 8 * 43, 43, 8 * 43, 1}, false},
		{0x1000, []int{2, 8, 4096, 40}, []int{4096 * 3 * 320, 40, 3 * 320, 1}, true}, // fused q|k|v
	} {
		if got := tcAligned(c.p, c.shape, c.st); got != c.want {
			t.Errorf("tcAligned(%#x, %v, %v) = %v, want %v", c.p, c.shape, c.st, got, c.want)
		}
	}
}

package cuda

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestPTXMatchesSource fails when a .cu source changed and its PTX was not
// rebuilt with `make ptx`, or when a source has no PTX or a PTX no source.
func TestPTXMatchesSource(t *testing.T) {
	srcs, err := filepath.Glob("*.cu")
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) == 0 {
		t.Fatal("no .cu sources")
	}
	seen := map[string]bool{}
	for _, src := range srcs {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		file := strings.TrimSuffix(src, ".cu") + ".ptx"
		seen[file] = true
		name, recorded, ok := ptxSource(file)
		switch {
		case !ok:
			t.Errorf("%s: no embedded PTX with a source header: run `make ptx`", src)
		case name != src:
			t.Errorf("%s records source %s, want %s", file, name, src)
		case recorded != hex.EncodeToString(sum[:]):
			t.Errorf("%s is stale: built from sha256 %s, %s is now %x: run `make ptx` and commit the .ptx", file, recorded, src, sum)
		}
	}
	for _, f := range ptxFiles() {
		if !seen[f] {
			t.Errorf("embedded %s has no .cu source", f)
		}
	}
}

// TestPTXTarget checks that every PTX targets sm_80 (loadable on every GPU this
// package supports) with a PTX ISA version drivers of CUDA 11.8 and later accept.
func TestPTXTarget(t *testing.T) {
	for _, f := range ptxFiles() {
		b, _ := ptxFS.ReadFile(f)
		s := string(b)
		if !strings.Contains(s, "\n.target sm_80\n") {
			t.Errorf("%s: want .target sm_80", f)
		}
		m := regexp.MustCompile(`\n\.version (\d+)\.(\d+)\n`).FindStringSubmatch(s)
		if m == nil || m[1] > "8" || (m[1] == "8" && m[2] > "0") {
			t.Errorf("%s: PTX ISA version %v, want 7.x or 8.0", f, m)
		}
		if img := ptxImage(f); img[len(img)-1] != 0 || len(img) != len(b)+1 {
			t.Errorf("%s: image not NUL-terminated", f)
		}
	}
}

// launchedKernels are the kernels the Go code launches.
var launchedKernels = []string{
	"unary_f32", "binary_f32", "binary_contig_f32", "affine_f32", "clamp_f32",
	"fill_f32", "fill_f16", "fill_bf16", "copy_u32", "copy_u16",
	"convert_f16_f32", "convert_bf16_f32", "convert_f32_f16", "convert_f32_bf16", "convert_bf16_f16", "convert_f16_bf16",
	"geglu_f32", "resize_nearest_f32", "embedding_f32", "embedding_f16", "embedding_bf16",
	"group_stats_f32", "group_apply_f32", "layer_norm_warp32_f32", "layer_norm_warp64_f32", "layer_norm_f32", "softmax_f32", "moments_f32",
	"gemm_f32_f32", "gemm_f32_f16", "gemm_f32_bf16", "gemm_f16_f32", "gemm_f16_f16", "gemm_f16_bf16",
	"gemm_bf16_f32", "gemm_bf16_f16", "gemm_bf16_bf16",
	"conv2d_f32", "conv2d_f16", "conv2d_bf16", "flash_attn_f32",
	"softmax_f32_f16", "softmax_f32_bf16", "im2col_f32", "im2col_f16", "im2col_bf16",
	"cast_f32_f16", "cast_f32_bf16", "cast_f16_f32", "cast_bf16_f32", "cast_f16_bf16", "cast_bf16_f16",
	"timestep_embedding_f32",
	"flash_attn_tc_f16_d48", "flash_attn_tc_f16_d64", "flash_attn_tc_f16_d80", "flash_attn_tc_f16_d160",
	"flash_attn_tc_bf16_d48", "flash_attn_tc_bf16_d64", "flash_attn_tc_bf16_d80", "flash_attn_tc_bf16_d160",
	"conv2d_tc_f16", "conv2d_tc_bf16",
}

func TestKernelsEmbedded(t *testing.T) {
	for _, k := range launchedKernels {
		if _, ok := kernelFile(k); !ok {
			t.Errorf("kernel %s is in no embedded PTX", k)
		}
	}
	if _, ok := kernelFile("no_such_kernel"); ok {
		t.Error("kernelFile found no_such_kernel")
	}
}

// paramCount returns the number of .param entries of kernel name and the size
// in bytes of its by-value struct parameters.
func ptxParams(t *testing.T, name string) (n int, structs []string) {
	f, ok := kernelFile(name)
	if !ok {
		t.Fatalf("no kernel %s", name)
	}
	b, _ := ptxFS.ReadFile(f)
	s := string(b)
	i := strings.Index(s, ".entry "+name+"(")
	j := strings.Index(s[i:], ")")
	decl := s[i : i+j]
	n = strings.Count(decl, ".param")
	for _, m := range regexp.MustCompile(`\.b8 \w+\[(\d+)\]`).FindAllStringSubmatch(decl, -1) {
		structs = append(structs, m[1])
	}
	return n, structs
}

// TestKernelSignatures checks the Go side's argument lists against the PTX
// declarations: the number of parameters of each kernel and the size of the Dims
// struct.
func TestKernelSignatures(t *testing.T) {
	for _, c := range []struct {
		name    string
		params  int
		structs []string
	}{
		{"unary_f32", 4, nil},
		{"binary_f32", 6, []string{"200"}},
		{"binary_contig_f32", 5, nil},
		{"affine_f32", 5, nil},
		{"clamp_f32", 5, nil},
		{"fill_f16", 3, nil},
		{"copy_u32", 4, []string{"200"}},
		{"convert_f32_bf16", 4, []string{"200"}},
		{"geglu_f32", 4, nil},
		{"resize_nearest_f32", 9, nil},
		{"embedding_bf16", 7, nil},
		{"group_stats_f32", 4, nil},
		{"group_apply_f32", 11, nil},
		{"layer_norm_f32", 6, nil},
		{"layer_norm_warp32_f32", 7, nil},
		{"layer_norm_warp64_f32", 7, nil},
		{"softmax_f32", 5, nil},
		{"moments_f32", 4, nil},
		{"gemm_f16_f32", 17, nil},
		{"conv2d_f16", 15, nil},
		{"flash_attn_f32", 24, nil},
		{"softmax_f32_f16", 5, nil},
		{"softmax_f32_bf16", 5, nil},
		{"im2col_f16", 13, nil},
		{"im2col_f32", 13, nil},
		{"cast_f32_bf16", 3, nil},
	} {
		n, st := ptxParams(t, c.name)
		if n != c.params || strings.Join(st, ",") != strings.Join(c.structs, ",") {
			t.Errorf("%s: %d params, structs %v; want %d, %v", c.name, n, st, c.params, c.structs)
		}
	}
	if got := 8 * (1 + maxRank + 3*maxRank); got != 200 {
		t.Errorf("dims is %d bytes, Dims in the .cu 200", got)
	}
}

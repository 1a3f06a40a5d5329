package metal

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sdgo/sdgo/tensor"
)

// These tests check the MSL sources against the Go side on every system (no
// Metal compiler runs here): the kernels the table names exist, with the buffer
// indices and types the Go side binds, parameter structs of the size it encodes,
// and constants that agree.

var (
	lineComment  = regexp.MustCompile(`//[^\n]*`)
	blockComment = regexp.MustCompile(`(?s)/\*.*?\*/`)
	kernelStart  = regexp.MustCompile(`\bkernel\s+void\s+(\w+)\s*\(`)
	argPattern   = regexp.MustCompile(`^(.*?)\b(\w+)\s*\[\[\s*(\w+)\s*(?:\(\s*(\d+)\s*\))?\s*\]\]$`)
	structDecl   = regexp.MustCompile(`\bstruct\s+(\w+)\s*\{([^}]*)\}\s*;`)
	fieldPattern = regexp.MustCompile(`^(int|uint|float)\s+(\w+)(?:\s*\[\s*(\w+)\s*\])?$`)
	definePat    = regexp.MustCompile(`(?m)^\s*#define\s+(\w+)\s+(\S+)\s*$`)
	inlineSig    = regexp.MustCompile(`\binline\s+[\w:<>, ]+?\s+(\w+)\s*\(([^)]*)\)`)
)

// mslKernel is a kernel as the source declares it.
type mslKernel struct {
	file string
	args []bufferArg // the [[buffer(n)]] arguments, in source order
	all  []string    // every argument, as written
}

// parsedMSL is what the tests read from the sources.
type parsedMSL struct {
	kernels map[string]mslKernel
	structs map[string][]string // name -> field declarations
	defines map[string]string
	text    map[string]string // file -> source without comments
}

func stripComments(s string) string {
	return lineComment.ReplaceAllString(blockComment.ReplaceAllString(s, " "), " ")
}

// normType writes a type with single spaces and none before * or &.
func normType(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, " *", "*")
	s = strings.ReplaceAll(s, " &", "&")
	return s
}

// splitArgs splits an argument list at the commas outside parentheses and
// brackets.
func splitArgs(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(', '[':
			depth++
		case ')', ']':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	if rest := strings.TrimSpace(s[start:]); rest != "" {
		out = append(out, rest)
	}
	return out
}

func parseMSL(t *testing.T) *parsedMSL {
	t.Helper()
	p := &parsedMSL{kernels: map[string]mslKernel{}, structs: map[string][]string{}, defines: map[string]string{}, text: map[string]string{}}
	files := mslFiles()
	if len(files) == 0 || files[0] != "common.metal" {
		t.Fatalf("embedded sources %v: want common.metal first", files)
	}
	for _, f := range files {
		b, err := mslFS.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src := stripComments(string(b))
		p.text[f] = src
		for _, m := range definePat.FindAllStringSubmatch(src, -1) {
			if old, dup := p.defines[m[1]]; dup && old != m[2] {
				t.Errorf("%s: #define %s %s, elsewhere %s", f, m[1], m[2], old)
			}
			p.defines[m[1]] = m[2]
		}
		for _, m := range structDecl.FindAllStringSubmatch(src, -1) {
			if _, dup := p.structs[m[1]]; dup {
				t.Errorf("%s: struct %s defined twice", f, m[1])
			}
			var fields []string
			for _, fd := range strings.Split(m[2], ";") {
				if fd = strings.TrimSpace(fd); fd != "" {
					fields = append(fields, strings.Join(strings.Fields(fd), " "))
				}
			}
			p.structs[m[1]] = fields
		}
		for _, loc := range kernelStart.FindAllStringSubmatchIndex(src, -1) {
			name := src[loc[2]:loc[3]]
			open := loc[1] - 1
			depth, end := 0, -1
			for i := open; i < len(src); i++ {
				if src[i] == '(' {
					depth++
				} else if src[i] == ')' {
					if depth--; depth == 0 {
						end = i
						break
					}
				}
			}
			if end < 0 {
				t.Fatalf("%s: kernel %s: unbalanced parentheses", f, name)
			}
			if _, dup := p.kernels[name]; dup {
				t.Errorf("%s: kernel %s defined twice", f, name)
			}
			k := mslKernel{file: f}
			for _, a := range splitArgs(src[open+1 : end]) {
				a = strings.Join(strings.Fields(a), " ")
				k.all = append(k.all, a)
				m := argPattern.FindStringSubmatch(a)
				if m == nil {
					t.Errorf("%s: kernel %s: argument %q has no [[attribute]]", f, name, a)
					continue
				}
				if m[3] != "buffer" {
					continue
				}
				idx, err := strconv.Atoi(m[4])
				if err != nil {
					t.Errorf("%s: kernel %s: argument %q: bad buffer index", f, name, a)
					continue
				}
				k.args = append(k.args, bufferArg{idx, normType(m[1])})
			}
			p.kernels[name] = k
		}
	}
	return p
}

// define returns the integer value of a #define.
func (p *parsedMSL) define(t *testing.T, name string) int {
	t.Helper()
	v, ok := p.defines[name]
	if !ok {
		t.Fatalf("no #define %s in the sources", name)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("#define %s %s is not a number", name, v)
	}
	return n
}

// TestKernelTableMatchesSource checks every kernel of the Go table against its
// declaration: same name, buffer arguments with indices 0..n-1 of the types the
// table says, the parameter struct last.
func TestKernelTableMatchesSource(t *testing.T) {
	p := parseMSL(t)
	for _, spec := range kernels {
		k, ok := p.kernels[spec.name]
		if !ok {
			t.Errorf("kernel %s is in the Go table but not in the sources", spec.name)
			continue
		}
		got := slices.Clone(k.args)
		slices.SortFunc(got, func(a, b bufferArg) int { return a.index - b.index })
		if !slices.Equal(got, spec.args) {
			t.Errorf("%s: kernel %s: buffers %v, the Go table says %v", k.file, spec.name, got, spec.args)
		}
		for i, a := range got {
			if a.index != i {
				t.Errorf("%s: kernel %s: buffer indices %v are not 0..%d", k.file, spec.name, got, len(got)-1)
				break
			}
		}
		if len(got) > 0 && got[len(got)-1].typ != "constant "+spec.params+"&" {
			t.Errorf("%s: kernel %s: the last buffer is %q, want the parameter struct %s", k.file, spec.name, got[len(got)-1].typ, spec.params)
		}
	}
	for name, k := range p.kernels {
		if kernelByName(name) == nil {
			t.Errorf("%s: kernel %s is not in the Go table", k.file, name)
		}
	}
}

// TestParamStructs checks that each parameter struct has only 4-byte int and
// float fields and as many words as the Go side encodes.
func TestParamStructs(t *testing.T) {
	p := parseMSL(t)
	for _, spec := range kernels {
		fields, ok := p.structs[spec.params]
		if !ok {
			t.Errorf("kernel %s: no struct %s in the sources", spec.name, spec.params)
			continue
		}
		words := 0
		for _, fd := range fields {
			m := fieldPattern.FindStringSubmatch(fd)
			if m == nil {
				t.Errorf("struct %s: field %q: want one int, uint or float (or an array of them) per declaration", spec.params, fd)
				continue
			}
			n := 1
			if m[3] != "" {
				var err error
				if n, err = strconv.Atoi(m[3]); err != nil {
					n = p.define(t, m[3])
				}
			}
			words += n
		}
		if words != spec.words {
			t.Errorf("struct %s has %d words, the Go table says %d", spec.params, words, spec.words)
		}
	}
}

// TestConstantsAgree checks the numbers both sides rely on.
func TestConstantsAgree(t *testing.T) {
	p := parseMSL(t)
	for name, want := range map[string]int{
		"MAX_RANK": maxRank, "GEMM_THREADS": gemmThreads, "TILE_M": gemmTile, "TILE_N": gemmTile,
		"ATTN_ROWS": attnRows, "DT_F32": int(tensor.F32), "DT_F16": int(tensor.F16), "DT_BF16": int(tensor.BF16),
		"OP_SILU": int(tensor.OpSiLU), "OP_GELU": int(tensor.OpGELU), "OP_GELU_TANH": int(tensor.OpGELUTanh),
		"OP_QUICK_GELU": int(tensor.OpQuickGELU), "OP_EXP": int(tensor.OpExp),
		"OP_ADD": int(tensor.OpAdd), "OP_SUB": int(tensor.OpSub), "OP_MUL": int(tensor.OpMul), "OP_DIV": int(tensor.OpDiv),
	} {
		if got := p.define(t, name); got != want {
			t.Errorf("#define %s %d, the Go side uses %d", name, got, want)
		}
	}
	if got := 32 * p.define(t, "ATTN_D_REGS"); got != attnMaxD {
		t.Errorf("attention holds head size %d, the Go side allows %d", got, attnMaxD)
	}
	if got := 32 * p.define(t, "ATTN_DV_REGS"); got != attnMaxDv {
		t.Errorf("attention holds value size %d, the Go side allows %d", got, attnMaxDv)
	}
	// The GEMM's four simdgroups tile 32×32 with 2×2 8×8 matrices each.
	if gemmThreads != 4*32 || gemmTile != 32 || p.define(t, "TILE_K")%8 != 0 {
		t.Errorf("GEMM tiling: %d threads, tile %d, depth %d", gemmThreads, gemmTile, p.define(t, "TILE_K"))
	}
	if rowThreads%32 != 0 || rowThreads > 1024 || rowThreads/32 > 32 {
		t.Errorf("row kernels' threadgroup of %d does not suit tg_sum's buffer of 32 simdgroups", rowThreads)
	}
	if languageVersion != 0x30000 {
		t.Errorf("languageVersion %#x, want MTLLanguageVersion3_0", languageVersion)
	}
}

// TestSourceShape checks what a compiler would reject first: unbalanced
// brackets, a file without metal_stdlib, pointer arguments without an address
// space.
func TestSourceShape(t *testing.T) {
	p := parseMSL(t)
	spaces := regexp.MustCompile(`\b(device|constant|threadgroup|thread)\b`)
	for f, src := range p.text {
		for _, pair := range []string{"()", "[]", "{}"} {
			if o, c := strings.Count(src, pair[:1]), strings.Count(src, pair[1:]); o != c {
				t.Errorf("%s: %d %q and %d %q", f, o, pair[:1], c, pair[1:])
			}
		}
		if !strings.Contains(src, "#include <metal_stdlib>") {
			t.Errorf("%s: no #include <metal_stdlib>", f)
		}
		for _, m := range inlineSig.FindAllStringSubmatch(src, -1) {
			for _, a := range splitArgs(m[2]) {
				if strings.ContainsAny(a, "*&") && !spaces.MatchString(a) {
					t.Errorf("%s: %s: pointer argument %q has no address space", f, m[1], a)
				}
			}
		}
	}
	for name, k := range p.kernels {
		for _, a := range k.all {
			if strings.ContainsAny(a, "*&") && !spaces.MatchString(a) {
				t.Errorf("%s: kernel %s: argument %q has no address space", k.file, name, a)
			}
		}
	}
	src := mslSource()
	if !strings.HasPrefix(src, "#line 1 \"common.metal\"\n") {
		t.Errorf("the library source does not start with common.metal")
	}
}

// TestGoDispatchesTableKernels checks that every kernel name the Go files
// dispatch is in the table and that every kernel of the table is dispatched.
func TestGoDispatchesTableKernels(t *testing.T) {
	files, err := filepath.Glob("*_darwin.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no darwin sources: %v", err)
	}
	call := regexp.MustCompile(`\.(?:dispatch|dispatch1D|rows)\("(\w+)"|\.pointwise\("\w+", "(\w+)"|\.product\("(\w+)", "(\w+)"\)`)
	used := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range call.FindAllStringSubmatch(string(b), -1) {
			for _, name := range m[1:] {
				if name == "" {
					continue
				}
				used[name] = true
				if kernelByName(name) == nil {
					t.Errorf("%s dispatches %s, which is not in the table", f, name)
				}
			}
		}
	}
	for _, k := range kernels {
		if !used[k.name] {
			t.Errorf("kernel %s is in the table but never dispatched", k.name)
		}
	}
}

func TestParams(t *testing.T) {
	p := new(params).i(1, -2).f(1.5).arr(3, []int{7})
	want := []uint32{1, 0xfffffffe, 0x3fc00000, 7, 0, 0}
	if !slices.Equal(p.w, want) || p.err != nil {
		t.Errorf("words %x (err %v), want %x", p.w, p.err, want)
	}
	if b := p.bytes(); len(b) != 24 || b[0] != 1 || b[4] != 0xfe || b[11] != 0x3f {
		t.Errorf("bytes % x", b)
	}
	if p := new(params).i(1 << 31); p.err == nil {
		t.Error("2^31 accepted as a 32-bit index")
	}
	if p := new(params).arr(2, []int{1, 2, 3}); p.err == nil {
		t.Error("3 dimensions accepted for 2")
	}
}

func TestCoalesce(t *testing.T) {
	for _, c := range []struct {
		shape  []int
		st     [][]int
		wantSh []int
		wantSt [][]int
	}{
		{[]int{2, 3, 4}, [][]int{{12, 4, 1}, {12, 4, 1}}, []int{24}, [][]int{{1}, {1}}},
		{[]int{2, 3, 4}, [][]int{{12, 4, 1}, {1, 8, 2}}, []int{2, 12}, [][]int{{12, 1}, {1, 2}}},
		{[]int{2, 3, 4}, [][]int{{12, 4, 1}, {1, 2, 6}}, []int{2, 3, 4}, [][]int{{12, 4, 1}, {1, 2, 6}}},
		{[]int{2, 1, 4}, [][]int{{4, 4, 1}, {0, 0, 1}}, []int{2, 4}, [][]int{{4, 1}, {0, 1}}},
		{[]int{1, 1}, [][]int{{1, 1}}, []int{1}, [][]int{{0}}},
	} {
		sh, st := tensor.Coalesce(c.shape, c.st...)
		if fmt.Sprint(sh, st) != fmt.Sprint(c.wantSh, c.wantSt) {
			t.Errorf("tensor.Coalesce(%v, %v) = %v, %v; want %v, %v", c.shape, c.st, sh, st, c.wantSh, c.wantSt)
		}
	}
}

// TestRegistered checks that the package registers the "metal" device kind.
func TestRegistered(t *testing.T) {
	if !slices.Contains(tensor.Devices(), "metal") {
		t.Fatalf("devices %v: no metal", tensor.Devices())
	}
}

func TestParsePrecision(t *testing.T) {
	for s, want := range map[string]Precision{"fp32": FP32, "F32": FP32, "float32": FP32, "fp16": FP16, "FP16": FP16, "half": FP16} {
		if got, err := ParsePrecision(s); err != nil || got != want {
			t.Errorf("ParsePrecision(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "bf16", "tf32"} {
		if _, err := ParsePrecision(s); err == nil {
			t.Errorf("ParsePrecision(%q) accepted", s)
		}
	}
}

func TestSizeClass(t *testing.T) {
	prev := 0
	for n := 0; n < 1<<20; n += 1 + n/7 {
		c := sizeClass(n)
		if c < n || c < 256 || (n > 256 && 4*c > 5*n) || c < prev {
			t.Fatalf("sizeClass(%d) = %d", n, c)
		}
		prev = c
	}
	for _, c := range []struct{ n, want int }{{0, 256}, {256, 256}, {257, 320}, {1000, 1024}, {1025, 1280}} {
		if got := sizeClass(c.n); got != c.want {
			t.Errorf("sizeClass(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

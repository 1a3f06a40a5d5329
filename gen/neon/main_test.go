package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// generate builds the whole file, as main does.
func generate(t *testing.T) []byte {
	f := &file{}
	gemmKernels(f)
	conversions(f)
	expKernels(f)
	activations(f)
	reductions(f)
	affine(f)
	asm, _, err := f.render("test", "asm")
	if err != nil {
		t.Fatal(err)
	}
	return asm
}

var wordLine = regexp.MustCompile(`^\tWORD \$0x([0-9a-f]{8}) // (.*)$`)

// TestWordsDisassemble assembles the output for arm64 and checks that every
// WORD decodes (go tool objdump -gnu, which uses golang.org/x/arch's decoder) to
// the instruction its comment names.
func TestWordsDisassemble(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the Go toolchain")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "kernels_arm64.s")
	if err := os.WriteFile(src, generate(t), 0o644); err != nil {
		t.Fatal(err)
	}
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	obj := filepath.Join(dir, "kernels.o")
	asm := exec.Command("go", "tool", "asm", "-p", "asm", "-I", filepath.Join(strings.TrimSpace(string(goroot)), "pkg", "include"), "-o", obj, src)
	asm.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64")
	if out, err := asm.CombinedOutput(); err != nil {
		t.Fatalf("go tool asm: %v\n%s", err, out)
	}
	dis, err := exec.Command("go", "tool", "objdump", "-gnu", obj).Output()
	if err != nil {
		t.Fatalf("go tool objdump: %v", err)
	}

	// The expected instruction of each WORD, by source line.
	want := map[int]string{}
	text, _ := os.ReadFile(src)
	for i, l := range strings.Split(string(text), "\n") {
		if m := wordLine.FindStringSubmatch(l); m != nil {
			want[i+1] = m[2]
		}
	}
	if len(want) < 100 {
		t.Fatalf("only %d WORD lines", len(want))
	}
	// objdump lines: "  kernels_arm64.s:123\t0x1c\t\t4e20d400\t\tFADD ... // fadd v0.4s, ..."
	line := regexp.MustCompile(`kernels_arm64\.s:(\d+)\s+0x[0-9a-f]+\s+([0-9a-f]{8})\s+.*// (.*)$`)
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(dis))
	for sc.Scan() {
		m := line.FindStringSubmatch(strings.TrimRight(sc.Text(), " \t"))
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		w, ok := want[n]
		if !ok {
			continue
		}
		seen++
		if got := strings.TrimSpace(m[3]); got != w {
			t.Errorf("line %d: WORD $0x%s decodes to %q, the comment says %q", n, m[2], got, w)
		}
	}
	if seen != len(want) {
		t.Errorf("found %d of the %d WORD lines in the disassembly", seen, len(want))
	}
}

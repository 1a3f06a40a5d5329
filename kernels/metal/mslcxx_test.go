package metal

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// cxxCompiler returns the C++ compiler to check the MSL with (SDGO_CXX, else c++,
// g++ or clang++ from PATH), or skips the test.
func cxxCompiler(t *testing.T) string {
	t.Helper()
	if cxx := os.Getenv("SDGO_CXX"); cxx != "" {
		return cxx
	}
	for _, c := range []string{"c++", "g++", "clang++"} {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	t.Skip("no C++ compiler (c++, g++, clang++) to check the MSL with")
	return ""
}

// TestMSLCompilesAsCxx compiles the library source with a C++ compiler, when
// one is installed (c++, g++ or clang++; SDGO_CXX picks one), against
// testdata/mslshim/metal_stdlib, a stand-in for the Metal standard library:
// undeclared names, wrong argument counts or types, bad declarations and
// unbalanced brackets fail here on any system. MSL's own rules are left to the
// Metal compiler, which runs when a Mac opens the device.
func TestMSLCompilesAsCxx(t *testing.T) {
	cxx := cxxCompiler(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "library.cpp")
	if err := os.WriteFile(src, []byte(mslSource()), 0o644); err != nil {
		t.Fatal(err)
	}
	shim, err := filepath.Abs(filepath.Join("testdata", "mslshim"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cxx, "-std=c++17", "-fsyntax-only", "-Wall", "-Werror", "-Wno-attributes",
		"-Wno-unknown-attributes", "-Wno-unused-parameter", "-Wno-unused-variable", "-Wno-unknown-warning-option",
		"-I", shim, "-x", "c++", src)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cxx, err, out)
	}
}

// threadgroupVar matches the declaration of a threadgroup variable in a kernel
// body, which the emulation makes a function static (shared by the threads of
// the one threadgroup that runs at a time).
var threadgroupVar = regexp.MustCompile(`(?m)^(\s*)threadgroup (\w+ \w+\[)`)

// TestMSLEmulated runs the kernels on the CPU, when a C++20 compiler is
// installed: testdata/mslemu/emu_main.cpp calls each kernel through the
// emulation in testdata/mslemu/metal_stdlib (one OS thread per GPU thread,
// std::barrier for threadgroup_barrier and the simd_ reductions, simdgroup
// matrices held whole by every lane) on awkward sizes and compares the results
// with plain loops in double precision, and checks the F16 and BF16 rounding on
// two million bit patterns. It is what can be known of the kernels' arithmetic
// and indexing without a Mac; -short skips it.
func TestMSLEmulated(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	cxx := cxxCompiler(t)
	dir := t.TempDir()
	lib := threadgroupVar.ReplaceAllString(mslSource(), "${1}static $2")
	if err := os.WriteFile(filepath.Join(dir, "library.cpp"), []byte(lib), 0o644); err != nil {
		t.Fatal(err)
	}
	emu, err := filepath.Abs(filepath.Join("testdata", "mslemu"))
	if err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(dir, "probe.cpp")
	if err := os.WriteFile(probe, []byte("#include <barrier>\nint main() { std::barrier<> b(1); b.arrive_and_wait(); }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cxx, "-std=c++20", "-pthread", "-o", filepath.Join(dir, "probe"), probe).CombinedOutput(); err != nil {
		t.Skipf("%s has no C++20 <barrier>: %v\n%s", cxx, err, out)
	}
	bin := filepath.Join(dir, "emu")
	cmd := exec.Command(cxx, "-std=c++20", "-O1", "-pthread", "-Wno-attributes",
		"-I", emu, "-I", dir, "-o", bin, filepath.Join(emu, "emu_main.cpp"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: building the emulation: %v\n%s", cxx, err, out)
	}
	// A kernel whose threads disagree on the barriers they reach deadlocks the
	// emulation: give up after two minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin).CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("emulated kernels: %v", err)
	}
}

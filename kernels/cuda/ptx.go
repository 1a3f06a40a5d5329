package cuda

import (
	"bufio"
	"bytes"
	"embed"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// The kernels, as PTX compiled from the .cu sources beside this file by
// `make ptx` (nvcc -ptx -arch=compute_80: the driver JIT-compiles the PTX for
// the GPU it runs on, sm_80 and newer). The first line of each file records the
// sha256 of its source; TestPTXMatchesSource fails when a source changed and
// its PTX was not rebuilt.
//
//go:embed *.ptx
var ptxFS embed.FS

// ptxHeader is the first line `make ptx` writes.
var ptxHeader = regexp.MustCompile(`^// sdgo-source: (\S+) sha256 ([0-9a-f]{64})$`)

var entryLine = regexp.MustCompile(`^\.visible \.entry (\w+)\(`)

var (
	ptxOnce    sync.Once
	ptxEntries map[string]string // kernel name -> PTX file
)

// ptxFiles returns the names of the embedded PTX files, sorted.
func ptxFiles() []string {
	ents, _ := ptxFS.ReadDir(".")
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// ptxSource returns the source file and the sha256 recorded in a PTX file's
// first line.
func ptxSource(file string) (src, sum string, ok bool) {
	b, err := ptxFS.ReadFile(file)
	if err != nil {
		return "", "", false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	m := ptxHeader.FindStringSubmatch(line)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// kernelFile returns the PTX file that defines the kernel name.
func kernelFile(name string) (string, bool) {
	ptxOnce.Do(func() {
		ptxEntries = map[string]string{}
		for _, f := range ptxFiles() {
			b, _ := ptxFS.ReadFile(f)
			sc := bufio.NewScanner(bytes.NewReader(b))
			sc.Buffer(make([]byte, 1<<16), 1<<20)
			for sc.Scan() {
				if m := entryLine.FindStringSubmatch(sc.Text()); m != nil {
					ptxEntries[m[1]] = f
				}
			}
		}
	})
	f, ok := ptxEntries[name]
	return f, ok
}

// ptxImage returns the PTX text of file, NUL-terminated for cuModuleLoadData.
func ptxImage(file string) []byte {
	b, _ := ptxFS.ReadFile(file)
	return append(b[:len(b):len(b)], 0)
}

//go:build !unix

package safetensors

import (
	"fmt"
	"os"
)

// Open reads a safetensors file into memory and parses its header (platforms
// without mmap in the standard library).
func Open(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%s: %w: empty file", path, ErrFormat)
	}
	return Parse(path, data)
}

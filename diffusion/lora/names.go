package lora

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrNotFound is wrapped by Resolve's error for a name with no file.
var ErrNotFound = errors.New("no such LoRA")

// Resolve finds the LoRA called name in dir: dir/name.safetensors, or
// dir/name when name already ends in .safetensors. Names come from people
// and clients (A1111's <lora:name:scale>, a worker's request), so only plain
// file names are accepted: no path separators, no "..", nothing absolute, no
// leading dot, no control characters. The file must be a regular file (a
// symbolic link placed in dir by its owner is followed). The name is matched
// exactly (case included).
func Resolve(dir, name string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("lora: no LoRA folder to find %q in", name)
	}
	if err := plainName(name); err != nil {
		return "", fmt.Errorf("lora: LoRA name %q: %w", name, err)
	}
	file := name
	if !strings.EqualFold(filepath.Ext(name), ".safetensors") {
		file += ".safetensors"
	}
	p := filepath.Join(dir, file)
	st, err := os.Stat(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("lora: %w %q in %s (looked for %s)", ErrNotFound, name, dir, file)
	case err != nil:
		return "", fmt.Errorf("lora: %w", err)
	case !st.Mode().IsRegular():
		return "", fmt.Errorf("lora: %s is not a regular file", p)
	}
	return p, nil
}

// plainName checks that name is one file name and nothing else.
func plainName(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case strings.ContainsAny(name, `/\`):
		return errors.New("a name, not a path, is expected (no / or \\)")
	case name == "." || name == ".." || strings.HasPrefix(name, "."):
		return errors.New("names may not start with a dot")
	case strings.Contains(name, ":"):
		return errors.New("names may not contain ':'")
	case !filepath.IsLocal(name):
		return errors.New("not a plain file name")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return errors.New("control characters are not allowed")
		}
	}
	return nil
}

// ParseScale reads a LoRA multiplier: a finite decimal number.
func ParseScale(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("scale %q is not a number", s)
	}
	return v, nil
}

// ParseSpec splits a command-line LoRA, FILE or FILE:SCALE, into the file and
// its scale (1 when absent). The scale is what follows the last ':' unless
// that part contains a path separator (so "C:\loras\x.safetensors" is a file);
// a scale that is not a number is an error.
func ParseSpec(spec string) (file string, scale float64, err error) {
	file, scale = spec, 1
	if i := strings.LastIndex(spec, ":"); i >= 0 && !strings.ContainsAny(spec[i+1:], `/\`) {
		if file = spec[:i]; file == "" {
			return "", 0, fmt.Errorf("lora %q: no file before the scale", spec)
		}
		if scale, err = ParseScale(spec[i+1:]); err != nil {
			return "", 0, fmt.Errorf("lora %q: %w", spec, err)
		}
	}
	if file == "" {
		return "", 0, errors.New("lora: empty file name")
	}
	return file, scale, nil
}

// Tag is a LoRA named in a prompt with A1111's <lora:NAME> or <lora:NAME:SCALE>.
type Tag struct {
	Name  string
	Scale float64
}

// ExtractPromptTags removes A1111's LoRA tags, <lora:NAME> and
// <lora:NAME:SCALE>, from a prompt and returns the prompt without them
// (surrounding spaces trimmed) and the tags in order. The tags are only
// parsed here: resolve the names with Resolve. A malformed tag (no name, a
// scale that is not a number, no closing '>') is an error.
func ExtractPromptTags(prompt string) (string, []Tag, error) {
	var b strings.Builder
	var tags []Tag
	rest := prompt
	for {
		i := strings.Index(rest, "<lora:")
		if i < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:i])
		body := rest[i+len("<lora:"):]
		j := strings.IndexByte(body, '>')
		if j < 0 {
			return "", nil, fmt.Errorf("lora: prompt tag %q has no closing '>'", rest[i:])
		}
		raw := body[:j]
		rest = body[j+1:]
		name, scaleText, hasScale := strings.Cut(raw, ":")
		name = strings.TrimSpace(name)
		if name == "" {
			return "", nil, fmt.Errorf("lora: prompt tag <lora:%s> names no LoRA", raw)
		}
		tag := Tag{Name: name, Scale: 1}
		if hasScale {
			if strings.Contains(scaleText, ":") {
				return "", nil, fmt.Errorf("lora: prompt tag <lora:%s>: want <lora:NAME> or <lora:NAME:SCALE>", raw)
			}
			s, err := ParseScale(scaleText)
			if err != nil {
				return "", nil, fmt.Errorf("lora: prompt tag <lora:%s>: %w", raw, err)
			}
			tag.Scale = s
		}
		tags = append(tags, tag)
	}
	return strings.TrimSpace(b.String()), tags, nil
}

// Package pyjson decodes JSON written by Python's json module, which spells
// non-finite floats as the bare words Infinity, -Infinity and NaN (diffusers'
// scheduler configs on the Hub hold "lambda_min_clipped": -Infinity). Go's
// encoding/json rejects those; Unmarshal turns them into strings first, and the
// Float type reads both numbers and those strings.
package pyjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Unmarshal is json.Unmarshal after quoting bare Infinity, -Infinity and NaN
// (outside strings). Decode such fields into Float.
func Unmarshal(data []byte, v any) error {
	return json.Unmarshal(quoteNonFinite(data), v)
}

func quoteNonFinite(data []byte) []byte {
	if !bytes.Contains(data, []byte("Infinity")) && !bytes.Contains(data, []byte("NaN")) {
		return data
	}
	out := make([]byte, 0, len(data)+16)
	inString, escaped := false, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		if c == '"' {
			inString = true
			out = append(out, c)
			continue
		}
		matched := false
		for _, w := range []string{"-Infinity", "Infinity", "NaN"} {
			if bytes.HasPrefix(data[i:], []byte(w)) {
				out = append(out, '"')
				out = append(out, w...)
				out = append(out, '"')
				i += len(w) - 1
				matched = true
				break
			}
		}
		if !matched {
			out = append(out, c)
		}
	}
	return out
}

// Float is a float64 that also decodes from "Infinity", "-Infinity" and "NaN" (as
// Unmarshal leaves them) and encodes non-finite values the way Python writes them.
type Float float64

// UnmarshalJSON reads a number or one of the non-finite words.
func (f *Float) UnmarshalJSON(b []byte) error {
	s := string(b)
	switch s {
	case `"Infinity"`, "Infinity":
		*f = Float(math.Inf(1))
		return nil
	case `"-Infinity"`, "-Infinity":
		*f = Float(math.Inf(-1))
		return nil
	case `"NaN"`, "NaN":
		*f = Float(math.NaN())
		return nil
	case "null":
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("pyjson: %s is not a number", s)
	}
	*f = Float(v)
	return nil
}

// MarshalJSON writes the number, or "Infinity", "-Infinity" or "NaN" as
// strings: encoding/json refuses the bare words Python writes, and Unmarshal
// reads the strings back. Use Python to write a file for Python.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsInf(v, 1):
		return []byte(`"Infinity"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Infinity"`), nil
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

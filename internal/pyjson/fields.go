package pyjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// DecodeFields reads a JSON object over the values already in the struct ptr
// points to (its defaults), key by key as the fields' json tags name them, so
// that an error names its key and says what it wanted (describe names a field
// type; DescribeType serves for plain types). A key holding null sets its field
// to the zero value, which config types read as "none", rather than keeping a
// default. Unknown keys are ignored, as diffusers ignores them.
func DecodeFields(b []byte, ptr any, describe func(reflect.Type) string) error {
	var raw map[string]json.RawMessage
	if err := Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	v := reflect.ValueOf(ptr).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		key, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		m, ok := raw[key]
		if !ok {
			continue
		}
		f := v.Field(i)
		if string(bytes.TrimSpace(m)) == "null" {
			f.SetZero()
			continue
		}
		if err := json.Unmarshal(m, f.Addr().Interface()); err != nil {
			return fmt.Errorf("key %q: %s: want %s", key, bytes.TrimSpace(m), describe(f.Type()))
		}
	}
	return nil
}

// DescribeType names a plain field type for error messages ("an integer", "a
// list of numbers", ...).
func DescribeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool, reflect.Pointer:
		return "a bool"
	case reflect.Slice:
		switch t.Elem().Kind() {
		case reflect.Int:
			return "a list of integers"
		case reflect.Float64:
			return "a list of numbers"
		case reflect.String:
			return "a list of strings"
		}
		return "a list"
	}
	return t.String()
}

// MarshalFields writes a config struct with its json keys, in field order, as
// a complete config.json: nullable fields (tagged omitempty) are written as
// null when zero (and, with emptyListIsNull, when an empty list), as diffusers
// writes None, except the "_"-prefixed bookkeeping keys, which are left out.
// what names the config in errors.
func MarshalFields(v any, what string, emptyListIsNull bool) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	rv := reflect.ValueOf(v)
	t := rv.Type()
	first := true
	for i := 0; i < t.NumField(); i++ {
		key, opt, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		f := rv.Field(i)
		empty := f.IsZero() || (emptyListIsNull && f.Kind() == reflect.Slice && f.Len() == 0)
		var val []byte
		switch {
		case opt == "omitempty" && f.IsZero() && strings.HasPrefix(key, "_"):
			continue
		case opt == "omitempty" && empty:
			val = []byte("null")
		default:
			var err error
			if val, err = json.Marshal(f.Interface()); err != nil {
				return nil, fmt.Errorf("%s key %q: %w", what, key, err)
			}
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		k, _ := json.Marshal(key)
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(val)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

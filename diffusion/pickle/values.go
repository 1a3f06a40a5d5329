package pickle

import (
	"errors"
	"fmt"
	"math/big"

	"github.com/sdgo/sdgo/diffusion/safetensors"
)

// ErrFormat is wrapped by every error about a malformed or truncated file.
var ErrFormat = errors.New("invalid PyTorch checkpoint")

// ErrRefused is wrapped by every error about a pickle that names a global this
// package does not allow (see the package documentation for the list).
var ErrRefused = errors.New("refused pickle global")

// kindError is an error whose message stands alone and which wraps one of the
// sentinel errors for errors.Is.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

func formatErr(format string, args ...any) error {
	return &kindError{ErrFormat, fmt.Sprintf(format, args...)}
}

func refusedErr(format string, args ...any) error {
	return &kindError{ErrRefused, fmt.Sprintf(format, args...)}
}

// The values the unpickler builds. Python's None is nil, bool is bool, int is
// int64 (or *big.Int beyond 64 bits), float is float64, str is string, bytes
// and bytearray are []byte.

// tuple is an immutable Python tuple.
type tuple []any

// list is a mutable Python list.
type list struct{ items []any }

// dict is a Python dict or OrderedDict, in insertion order.
type dict struct {
	keys, vals []any
	index      map[any]int // hashable keys -> position; nil until needed
}

// set is a Python set or frozenset.
type set struct {
	items  []any
	frozen bool
}

// global is an allowed global that is a function or a class.
type global struct{ module, name string }

func (g global) String() string { return g.module + "." + g.name }

// storageType is an allowed torch.*Storage class.
type storageType struct {
	name  string // "torch.FloatStorage"
	dtype safetensors.DType
}

// torchDType is an allowed torch dtype (torch.float16, ...).
type torchDType struct {
	name  string // "torch.float16"
	dtype safetensors.DType
}

// opaque stands for an unknown global, or anything made from one, in lenient
// mode. It is never called.
type opaque struct {
	module, name string
	instance     bool // made by calling or instantiating the global
}

func (o *opaque) String() string { return o.module + "." + o.name }

// storage is what a persistent id resolves to: a byte range of a stored record.
type storage struct {
	root   *rootStorage
	dtype  safetensors.DType // element type declared by the storage type
	byteOf int64             // offset of the storage in the root's bytes
	nbytes int64
}

// rootStorage is one stored record: a zip entry or a legacy storage.
type rootStorage struct {
	key    string
	dtype  safetensors.DType
	nbytes int64
	rec    record // where the bytes are; nil until known (legacy files)
}

// tensorValue is a rebuilt tensor: a strided view of a storage. Nothing is read
// until it is loaded.
type tensorValue struct {
	st     *storage
	dtype  safetensors.DType
	offset int64 // in elements of dtype
	shape  []int
	stride []int
	numel  int64
	maxIdx int64 // highest element index touched, relative to the storage; -1 when numel is 0
}

// hashKey returns the key under which v is found in a dict, and false for
// values that are not hashable here (tuples, bytes, containers), which are then
// never merged with an equal key.
func hashKey(v any) (any, bool) {
	switch v := v.(type) {
	case nil:
		return noneKey{}, true
	case string, int64, bool, float64, global, storageType, torchDType:
		return v, true
	case *big.Int, *opaque, *tensorValue, *storage:
		// By identity: comparing big ints by value would cost their size on
		// every insertion.
		return v, true
	}
	return nil, false
}

type noneKey struct{}

// keyCost is the work of hashing a key, in units of 8 bytes.
func keyCost(k any) int {
	switch k := k.(type) {
	case string:
		return len(k) / 8
	case global:
		return (len(k.module) + len(k.name)) / 8
	case storageType:
		return len(k.name) / 8
	case torchDType:
		return len(k.name) / 8
	}
	return 0
}

func (d *dict) set(k, v any) {
	if h, ok := hashKey(k); ok {
		if d.index == nil {
			d.index = make(map[any]int)
		}
		if i, ok := d.index[h]; ok {
			d.vals[i] = v
			return
		}
		d.index[h] = len(d.keys)
	}
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
}

func (d *dict) get(k string) (any, bool) {
	if i, ok := d.index[k]; ok {
		return d.vals[i], true
	}
	return nil, false
}

// typeName describes a value in Python's terms for error messages.
func typeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case tuple:
		return "tuple"
	case *list:
		return "list"
	case *dict:
		return "dict"
	case *set:
		if v.frozen {
			return "frozenset"
		}
		return "set"
	case global:
		return v.String()
	case storageType:
		return v.name
	case torchDType:
		return v.name
	case *opaque:
		if v.instance {
			return "object made by " + v.String()
		}
		return v.String()
	case *storage:
		return "storage"
	case *tensorValue:
		return "tensor"
	}
	return fmt.Sprintf("%T", v)
}

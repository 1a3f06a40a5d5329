package pickle

import (
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/sdgo/sdgo/diffusion/safetensors"
)

// storageDType maps the name of a torch storage class to its element type.
func storageDType(name string) (safetensors.DType, bool) {
	switch name {
	case "DoubleStorage":
		return safetensors.F64, true
	case "FloatStorage":
		return safetensors.F32, true
	case "HalfStorage":
		return safetensors.F16, true
	case "BFloat16Storage":
		return safetensors.BF16, true
	case "LongStorage":
		return safetensors.I64, true
	case "IntStorage":
		return safetensors.I32, true
	case "ShortStorage":
		return safetensors.I16, true
	case "CharStorage":
		return safetensors.I8, true
	case "ByteStorage", "UntypedStorage":
		return safetensors.U8, true
	case "BoolStorage":
		return safetensors.Bool, true
	}
	return "", false
}

// torchDTypeByName maps the name of a torch dtype (torch.<name>) to its type.
func torchDTypeByName(name string) (safetensors.DType, bool) {
	switch name {
	case "float32", "float":
		return safetensors.F32, true
	case "float64", "double":
		return safetensors.F64, true
	case "float16", "half":
		return safetensors.F16, true
	case "bfloat16":
		return safetensors.BF16, true
	case "int64", "long":
		return safetensors.I64, true
	case "int32", "int":
		return safetensors.I32, true
	case "int16", "short":
		return safetensors.I16, true
	case "int8":
		return safetensors.I8, true
	case "uint8":
		return safetensors.U8, true
	case "bool":
		return safetensors.Bool, true
	case "uint16":
		return safetensors.U16, true
	case "uint32":
		return safetensors.U32, true
	case "uint64":
		return safetensors.U64, true
	case "float8_e4m3fn":
		return safetensors.F8E4M3, true
	case "float8_e5m2":
		return safetensors.F8E5M2, true
	}
	return "", false
}

// allowedGlobal returns the value of an allowed global (see the package
// documentation for the list).
func allowedGlobal(module, name string) (any, bool) {
	switch module {
	case "collections":
		if name == "OrderedDict" {
			return global{module, name}, true
		}
	case "builtins":
		switch name {
		case "set", "frozenset", "bytes":
			return global{module, name}, true
		}
	case "_codecs":
		if name == "encode" {
			return global{module, name}, true
		}
	case "torch._utils":
		switch name {
		case "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3",
			"_rebuild_parameter", "_rebuild_parameter_with_state":
			return global{module, name}, true
		}
	case "torch._tensor":
		if name == "_rebuild_from_type_v2" {
			return global{module, name}, true
		}
	case "torch", "torch.cuda":
		if dt, ok := storageDType(name); ok {
			return storageType{name: module + "." + name, dtype: dt}, true
		}
		if module != "torch" {
			break
		}
		switch name {
		case "Size", "Tensor":
			return global{module, name}, true
		}
		if dt, ok := torchDTypeByName(name); ok {
			return torchDType{name: module + "." + name, dtype: dt}, true
		}
	}
	return nil, false
}

// alwaysRefused reports whether a global is refused even in lenient mode.
func alwaysRefused(module, name string) bool {
	top, _, _ := strings.Cut(module, ".")
	switch top {
	case "os", "posix", "nt", "sys", "subprocess", "shutil", "socket", "importlib", "runpy",
		"pty", "code", "codeop", "ctypes", "pickle", "_pickle", "marshal", "types",
		"operator", "_operator", "functools", "io", "_io", "webbrowser", "multiprocessing",
		"asyncio", "threading", "_thread", "signal", "tempfile", "pathlib", "glob",
		"posixpath", "ntpath", "_posixsubprocess", "copyreg", "_codecs", "codecs":
		return true
	case "builtins":
		switch name {
		case "eval", "exec", "compile", "open", "__import__", "getattr", "setattr", "delattr",
			"globals", "locals", "vars", "input", "breakpoint", "exit", "quit", "help",
			"print", "execfile", "reload", "file", "apply", "type", "object", "super",
			"classmethod", "staticmethod", "property", "memoryview":
			return true
		}
	}
	return false
}

// resolve finds what a GLOBAL names: an allowed global, an opaque placeholder
// (lenient mode), or an error naming it.
func (u *unpickler) resolve(module, name string) (any, error) {
	switch module {
	case "__builtin__":
		module = "builtins"
	case "copy_reg":
		module = "copyreg"
	case "torch.tensor":
		module = "torch._tensor" // renamed in torch 1.8; older files use the old name
	}
	if v, ok := allowedGlobal(module, name); ok {
		return v, nil
	}
	q := module + "." + name
	if alwaysRefused(module, name) {
		return nil, refusedErr("global %s is not allowed (no checkpoint has a reason to name it; refused even in lenient mode)", q)
	}
	if !u.lenient {
		return nil, refusedErr("global %s is not allowed: only tensors and plain containers are rebuilt (Options.Lenient keeps unknown objects outside the state dict as placeholders)", q)
	}
	return &opaque{module: module, name: name}, nil
}

// call interprets a call of fn with args (REDUCE, NEWOBJ, NEWOBJ_EX, INST,
// OBJ). Nothing is executed: an allowed global's result is built here, a
// placeholder's result is another placeholder.
func (u *unpickler) call(fn any, args tuple, how string) (any, error) {
	switch f := fn.(type) {
	case *opaque:
		return &opaque{module: f.module, name: f.name, instance: true}, nil
	case global:
		return u.callGlobal(f, args, how)
	}
	return nil, formatErr("%s of a %s, which cannot be called", how, typeName(fn))
}

func (u *unpickler) callGlobal(f global, args tuple, how string) (any, error) {
	switch f.String() {
	case "collections.OrderedDict":
		d := &dict{}
		if len(args) == 0 {
			return d, nil
		}
		if len(args) > 1 {
			break
		}
		if src, ok := args[0].(*dict); ok {
			if err := u.charge(len(src.keys)); err != nil {
				return nil, err
			}
			return d, u.setItems(d, interleave(src.keys, src.vals))
		}
		items, ok := sequence(args[0])
		if !ok {
			break
		}
		if err := u.charge(len(items)); err != nil {
			return nil, err
		}
		for _, it := range items {
			kv, ok := sequence(it)
			if !ok || len(kv) != 2 {
				return nil, formatErr("OrderedDict item is a %s, want a (key, value) pair", typeName(it))
			}
			if err := u.setItems(d, kv); err != nil {
				return nil, err
			}
		}
		return d, nil
	case "builtins.set", "builtins.frozenset":
		s := &set{frozen: f.name == "frozenset"}
		if len(args) == 0 {
			return s, nil
		}
		if len(args) > 1 {
			break
		}
		items, ok := sequence(args[0])
		if !ok {
			break
		}
		if err := u.charge(len(items)); err != nil {
			return nil, err
		}
		s.items = append(s.items, items...)
		return s, nil
	case "builtins.bytes":
		if len(args) == 0 {
			return []byte{}, nil
		}
		if b, ok := args[0].([]byte); ok && len(args) == 1 {
			return b, nil
		}
	case "_codecs.encode":
		if len(args) < 1 || len(args) > 2 {
			break
		}
		s, ok := args[0].(string)
		if !ok {
			break
		}
		enc := "utf-8"
		if len(args) == 2 {
			if enc, ok = args[1].(string); !ok {
				break
			}
		}
		switch strings.ToLower(strings.ReplaceAll(enc, "_", "-")) {
		case "latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1":
			if err := u.charge(len(s)); err != nil {
				return nil, err
			}
			b := make([]byte, 0, len(s))
			for _, r := range s {
				if r > 0xff {
					return nil, formatErr("_codecs.encode: %q is not Latin-1", string(r))
				}
				b = append(b, byte(r))
			}
			return b, nil
		case "utf-8", "utf8":
			return []byte(s), nil
		}
		return nil, formatErr("_codecs.encode with encoding %q (want latin1 or utf-8)", enc)
	case "torch.Size":
		if len(args) == 0 {
			return tuple{}, nil
		}
		if len(args) > 1 {
			break
		}
		if _, err := ints(args[0], "torch.Size"); err != nil {
			return nil, err
		}
		if t, ok := args[0].(tuple); ok {
			return t, nil
		}
		items, _ := sequence(args[0])
		if err := u.charge(len(items)); err != nil {
			return nil, err
		}
		return tuple(append([]any(nil), items...)), nil
	case "torch.Tensor":
		return nil, formatErr("%s of torch.Tensor: only its rebuild functions make tensors", how)
	default:
		if how != "REDUCE" {
			return nil, formatErr("%s of the function %s", how, f)
		}
		return u.rebuild(f, args, true)
	}
	return nil, formatErr("%s of %s with arguments %s", how, f, describeArgs(args))
}

// rebuild interprets the torch functions that rebuild tensors.
func (u *unpickler) rebuild(f global, args tuple, outer bool) (any, error) {
	want := func(n ...int) error {
		for _, k := range n {
			if len(args) == k {
				return nil
			}
		}
		return formatErr("%s with %d arguments, want %v", f, len(args), n)
	}
	switch f.name {
	case "_rebuild_tensor":
		if err := want(4); err != nil {
			return nil, err
		}
		return u.makeTensor(f, args[0], args[1], args[2], args[3], nil)
	case "_rebuild_tensor_v2":
		// (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]);
		// requires_grad, hooks and metadata do not change the values.
		if err := want(6, 7); err != nil {
			return nil, err
		}
		return u.makeTensor(f, args[0], args[1], args[2], args[3], nil)
	case "_rebuild_tensor_v3":
		if err := want(7, 8); err != nil {
			return nil, err
		}
		dt, ok := args[6].(torchDType)
		if !ok {
			return nil, formatErr("%s dtype argument is a %s, want a torch dtype", f, typeName(args[6]))
		}
		return u.makeTensor(f, args[0], args[1], args[2], args[3], &dt)
	case "_rebuild_parameter", "_rebuild_parameter_with_state":
		if f.name == "_rebuild_parameter" {
			if err := want(3); err != nil {
				return nil, err
			}
		} else if err := want(4); err != nil {
			return nil, err
		}
		switch t := args[0].(type) {
		case *tensorValue, *opaque:
			return t, nil
		}
		return nil, formatErr("%s of a %s, want a tensor", f, typeName(args[0]))
	case "_rebuild_from_type_v2":
		// (func, new_type, args, state): a tensor with Python attributes.
		if err := want(4); err != nil {
			return nil, err
		}
		if !outer {
			return nil, formatErr("nested %s", f)
		}
		fn, ok := args[0].(global)
		if !ok || fn.module != "torch._utils" {
			return nil, formatErr("%s of a %s, want a torch._utils rebuild function", f, typeName(args[0]))
		}
		switch typ := args[1].(type) {
		case global:
			if typ.String() != "torch.Tensor" {
				return nil, formatErr("%s with type %s, want torch.Tensor", f, typ)
			}
		case *opaque:
			// A tensor subclass, in lenient mode.
			return &opaque{module: typ.module, name: typ.name, instance: true}, nil
		default:
			return nil, formatErr("%s with type %s, want torch.Tensor", f, typeName(args[1]))
		}
		inner, ok := args[2].(tuple)
		if !ok {
			return nil, formatErr("%s arguments are a %s, want a tuple", f, typeName(args[2]))
		}
		return u.rebuild(fn, inner, false)
	}
	return nil, formatErr("%s cannot be called", f)
}

// makeTensor checks and records a strided view of a storage. A placeholder
// storage (lenient mode) gives a placeholder tensor.
func (u *unpickler) makeTensor(f global, stArg, offArg, sizeArg, strideArg any, dtype *torchDType) (any, error) {
	var st *storage
	switch s := stArg.(type) {
	case *storage:
		st = s
	case *opaque:
		return &opaque{module: s.module, name: s.name, instance: true}, nil
	default:
		return nil, formatErr("%s storage argument is a %s, want a storage", f, typeName(stArg))
	}
	dt := st.dtype
	if dtype != nil {
		dt = dtype.dtype
	}
	es := int64(dt.Size())
	if es == 0 {
		return nil, formatErr("%s of unknown dtype %s", f, dt)
	}
	offset, ok := offArg.(int64)
	if !ok || offset < 0 {
		return nil, formatErr("%s storage offset is %s, want a non-negative int", f, describe(offArg))
	}
	shape, err := ints(sizeArg, "size")
	if err != nil {
		return nil, formatErr("%s: %v", f, err)
	}
	stride, err := ints(strideArg, "stride")
	if err != nil {
		return nil, formatErr("%s: %v", f, err)
	}
	if len(shape) > maxRank {
		return nil, formatErr("%s: %d dimensions, more than %d", f, len(shape), maxRank)
	}
	if len(stride) != len(shape) {
		return nil, formatErr("%s: size %v and stride %v differ in length", f, shape, stride)
	}
	if err := u.charge(2 * len(shape)); err != nil {
		return nil, err
	}
	for i := range shape {
		if shape[i] < 0 || stride[i] < 0 {
			return nil, formatErr("%s: negative size or stride in size %v, stride %v", f, shape, stride)
		}
	}
	capacity := st.nbytes / es // elements of dt in the storage
	t := &tensorValue{st: st, dtype: dt, offset: offset, shape: shape, stride: stride, numel: 1, maxIdx: -1}
	for _, d := range shape {
		if d == 0 {
			t.numel = 0
			break
		}
	}
	if t.numel == 0 {
		return t, nil
	}
	for _, d := range shape {
		if t.numel > (1<<62)/int64(d) {
			return nil, formatErr("%s: size %v has too many elements", f, shape)
		}
		t.numel *= int64(d)
	}
	// The highest element touched must lie inside the storage; checked step by
	// step so that nothing overflows.
	end := offset
	outside := end >= capacity
	for i, d := range shape {
		if outside || d <= 1 || stride[i] == 0 {
			continue
		}
		if int64(d-1) > (capacity-1-end)/int64(stride[i]) {
			outside = true
			continue
		}
		end += int64(d-1) * int64(stride[i])
	}
	if outside {
		return nil, formatErr("%s: a tensor of size %v, stride %v at offset %d needs more than the %d %s elements of storage %q",
			f, shape, stride, offset, capacity, dt, st.root.key)
	}
	t.maxIdx = end
	return t, nil
}

func interleave(keys, vals []any) []any {
	out := make([]any, 0, 2*len(keys))
	for i := range keys {
		out = append(out, keys[i], vals[i])
	}
	return out
}

// sequence returns the items of a tuple or list.
func sequence(v any) ([]any, bool) {
	switch v := v.(type) {
	case tuple:
		return v, true
	case *list:
		return v.items, true
	}
	return nil, false
}

// ints converts a tuple or list of ints.
func ints(v any, what string) ([]int, error) {
	items, ok := sequence(v)
	if !ok {
		return nil, formatErr("%s is a %s, want a tuple of ints", what, typeName(v))
	}
	if len(items) > maxRank {
		return nil, formatErr("%s has %d entries, more than %d", what, len(items), maxRank)
	}
	out := make([]int, len(items))
	for i, it := range items {
		n, ok := it.(int64)
		if !ok {
			return nil, formatErr("%s has a %s, want ints", what, typeName(it))
		}
		if n > math.MaxInt || n < math.MinInt {
			return nil, formatErr("%s has %d, out of range", what, n)
		}
		out[i] = int(n)
	}
	return out, nil
}

// describe gives a short account of a value for error messages.
func describe(v any) string {
	switch v := v.(type) {
	case int64, bool, float64:
		s, _ := formatScalar(v)
		return typeName(v) + " " + s
	case *big.Int:
		return "a big int"
	case string:
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return "str " + strconv.Quote(v)
	}
	return "a " + typeName(v)
}

func describeArgs(args tuple) string {
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = typeName(a)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

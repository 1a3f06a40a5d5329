package pickle

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits of the unpickler (see the package documentation).
const (
	maxMarkDepth  = 1000 // nested MARKs
	maxRank       = 64   // dimensions of a tensor
	maxTextDigits = 4300 // digits of a text-form integer, as Python's int_max_str_digits
	maxProtocol   = 5
)

// Opcodes of pickle protocols 0 to 5 (see CPython's Lib/pickletools.py).
const (
	opMark            = '('
	opStop            = '.'
	opPop             = '0'
	opPopMark         = '1'
	opDup             = '2'
	opFloat           = 'F'
	opInt             = 'I'
	opBinInt          = 'J'
	opBinInt1         = 'K'
	opLong            = 'L'
	opBinInt2         = 'M'
	opNone            = 'N'
	opPersID          = 'P'
	opBinPersID       = 'Q'
	opReduce          = 'R'
	opString          = 'S'
	opBinString       = 'T'
	opShortBinString  = 'U'
	opUnicode         = 'V'
	opBinUnicode      = 'X'
	opAppend          = 'a'
	opBuild           = 'b'
	opGlobal          = 'c'
	opDict            = 'd'
	opEmptyDict       = '}'
	opAppends         = 'e'
	opGet             = 'g'
	opBinGet          = 'h'
	opInst            = 'i'
	opLongBinGet      = 'j'
	opList            = 'l'
	opEmptyList       = ']'
	opObj             = 'o'
	opPut             = 'p'
	opBinPut          = 'q'
	opLongBinPut      = 'r'
	opSetItem         = 's'
	opTuple           = 't'
	opEmptyTuple      = ')'
	opSetItems        = 'u'
	opBinFloat        = 'G'
	opProto           = 0x80
	opNewObj          = 0x81
	opExt1            = 0x82
	opExt2            = 0x83
	opExt4            = 0x84
	opTuple1          = 0x85
	opTuple2          = 0x86
	opTuple3          = 0x87
	opNewTrue         = 0x88
	opNewFalse        = 0x89
	opLong1           = 0x8a
	opLong4           = 0x8b
	opBinBytes        = 'B'
	opShortBinBytes   = 'C'
	opShortBinUnicode = 0x8c
	opBinUnicode8     = 0x8d
	opBinBytes8       = 0x8e
	opEmptySet        = 0x8f
	opAddItems        = 0x90
	opFrozenSet       = 0x91
	opNewObjEx        = 0x92
	opStackGlobal     = 0x93
	opMemoize         = 0x94
	opFrame           = 0x95
	opByteArray8      = 0x96
	opNextBuffer      = 0x97
	opReadOnlyBuffer  = 0x98
)

func opName(op byte) string {
	switch op {
	case opMark:
		return "MARK"
	case opStop:
		return "STOP"
	case opPop:
		return "POP"
	case opPopMark:
		return "POP_MARK"
	case opDup:
		return "DUP"
	case opFloat:
		return "FLOAT"
	case opInt:
		return "INT"
	case opBinInt:
		return "BININT"
	case opBinInt1:
		return "BININT1"
	case opLong:
		return "LONG"
	case opBinInt2:
		return "BININT2"
	case opNone:
		return "NONE"
	case opPersID:
		return "PERSID"
	case opBinPersID:
		return "BINPERSID"
	case opReduce:
		return "REDUCE"
	case opString:
		return "STRING"
	case opBinString:
		return "BINSTRING"
	case opShortBinString:
		return "SHORT_BINSTRING"
	case opUnicode:
		return "UNICODE"
	case opBinUnicode:
		return "BINUNICODE"
	case opAppend:
		return "APPEND"
	case opBuild:
		return "BUILD"
	case opGlobal:
		return "GLOBAL"
	case opDict:
		return "DICT"
	case opEmptyDict:
		return "EMPTY_DICT"
	case opAppends:
		return "APPENDS"
	case opGet:
		return "GET"
	case opBinGet:
		return "BINGET"
	case opInst:
		return "INST"
	case opLongBinGet:
		return "LONG_BINGET"
	case opList:
		return "LIST"
	case opEmptyList:
		return "EMPTY_LIST"
	case opObj:
		return "OBJ"
	case opPut:
		return "PUT"
	case opBinPut:
		return "BINPUT"
	case opLongBinPut:
		return "LONG_BINPUT"
	case opSetItem:
		return "SETITEM"
	case opTuple:
		return "TUPLE"
	case opEmptyTuple:
		return "EMPTY_TUPLE"
	case opSetItems:
		return "SETITEMS"
	case opBinFloat:
		return "BINFLOAT"
	case opProto:
		return "PROTO"
	case opNewObj:
		return "NEWOBJ"
	case opExt1:
		return "EXT1"
	case opExt2:
		return "EXT2"
	case opExt4:
		return "EXT4"
	case opTuple1:
		return "TUPLE1"
	case opTuple2:
		return "TUPLE2"
	case opTuple3:
		return "TUPLE3"
	case opNewTrue:
		return "NEWTRUE"
	case opNewFalse:
		return "NEWFALSE"
	case opLong1:
		return "LONG1"
	case opLong4:
		return "LONG4"
	case opBinBytes:
		return "BINBYTES"
	case opShortBinBytes:
		return "SHORT_BINBYTES"
	case opShortBinUnicode:
		return "SHORT_BINUNICODE"
	case opBinUnicode8:
		return "BINUNICODE8"
	case opBinBytes8:
		return "BINBYTES8"
	case opEmptySet:
		return "EMPTY_SET"
	case opAddItems:
		return "ADDITEMS"
	case opFrozenSet:
		return "FROZENSET"
	case opNewObjEx:
		return "NEWOBJ_EX"
	case opStackGlobal:
		return "STACK_GLOBAL"
	case opMemoize:
		return "MEMOIZE"
	case opFrame:
		return "FRAME"
	case opByteArray8:
		return "BYTEARRAY8"
	case opNextBuffer:
		return "NEXT_BUFFER"
	case opReadOnlyBuffer:
		return "READONLY_BUFFER"
	}
	return fmt.Sprintf("opcode 0x%02x", op)
}

// unpickler is a pickle machine that builds values and never executes
// anything. A fresh one reads one pickle (up to STOP).
type unpickler struct {
	in             input
	lenient        bool
	persistentLoad func(pid any) (any, error) // nil: persistent ids are refused
	stack          []any
	marks          []int // the metastack, as positions in stack
	memo           map[int64]any
	budget         int64 // container elements that calls may still copy
}

func newUnpickler(in input, lenient bool, persistentLoad func(any) (any, error)) *unpickler {
	return &unpickler{
		in:             in,
		lenient:        lenient,
		persistentLoad: persistentLoad,
		memo:           make(map[int64]any),
		budget:         2*in.remaining() + 4096,
	}
}

// load runs the machine to STOP and returns the value on top of the stack.
// Errors name the offset and opcode.
func (u *unpickler) load() (any, error) {
	for {
		pos := u.in.offset()
		op, err := u.in.readByte()
		if err != nil {
			return nil, formatErr("offset %d: the pickle ends without STOP", pos)
		}
		v, stop, err := u.step(op)
		if err != nil {
			return nil, fmt.Errorf("offset %d (%s): %w", pos, opName(op), err)
		}
		if stop {
			return v, nil
		}
	}
}

func (u *unpickler) push(v any) { u.stack = append(u.stack, v) }

func (u *unpickler) base() int {
	if len(u.marks) == 0 {
		return 0
	}
	return u.marks[len(u.marks)-1]
}

func (u *unpickler) pop() (any, error) {
	if len(u.stack) <= u.base() {
		return nil, formatErr("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	u.stack[len(u.stack)-1] = nil
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	if len(u.stack) <= u.base() {
		return nil, formatErr("stack underflow")
	}
	return u.stack[len(u.stack)-1], nil
}

// popMark removes and returns the items above the last MARK, and the MARK.
func (u *unpickler) popMark() ([]any, error) {
	if len(u.marks) == 0 {
		return nil, formatErr("no MARK on the stack")
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := slices.Clone(u.stack[m:])
	clear(u.stack[m:])
	u.stack = u.stack[:m]
	return items, nil
}

// charge accounts for n container elements copied by a call; the total is
// bounded by the size of the input, so that a pickle cannot make the machine
// copy a large container again and again.
func (u *unpickler) charge(n int) error {
	u.budget -= int64(n)
	if u.budget < 0 {
		return formatErr("the pickle copies more container elements than its size allows")
	}
	return nil
}

func (u *unpickler) bytes(n int64) ([]byte, error) {
	if n < 0 || n > u.in.remaining() {
		return nil, formatErr("a length of %d bytes, but only %d remain", n, u.in.remaining())
	}
	return u.in.read(n)
}

func (u *unpickler) uint(n int) (uint64, error) {
	b, err := u.bytes(int64(n))
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

func (u *unpickler) line() (string, error) {
	b, err := u.in.readLine()
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// memoIndex reads the argument of a binary GET/PUT opcode.
func (u *unpickler) memoIndex(width int) (int64, error) {
	v, err := u.uint(width)
	return int64(v), err
}

func (u *unpickler) textMemoIndex() (int64, error) {
	s, err := u.line()
	if err != nil {
		return 0, err
	}
	i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || i < 0 {
		return 0, formatErr("memo index %q is not a non-negative integer", s)
	}
	return i, nil
}

func (u *unpickler) get(i int64) error {
	v, ok := u.memo[i]
	if !ok {
		return formatErr("memo key %d is not defined", i)
	}
	u.push(v)
	return nil
}

func (u *unpickler) put(i int64) error {
	v, err := u.top()
	if err != nil {
		return err
	}
	u.memo[i] = v
	return nil
}

// step executes one opcode.
func (u *unpickler) step(op byte) (result any, stop bool, err error) {
	switch op {
	case opProto:
		v, err := u.uint(1)
		if err != nil {
			return nil, false, err
		}
		if v > maxProtocol {
			return nil, false, formatErr("unsupported pickle protocol %d", v)
		}
	case opFrame:
		n, err := u.uint(8)
		if err != nil {
			return nil, false, err
		}
		if n > uint64(u.in.remaining()) {
			return nil, false, formatErr("a frame of %d bytes, but only %d remain", n, u.in.remaining())
		}
	case opStop:
		v, err := u.pop()
		return v, err == nil, err
	case opMark:
		if len(u.marks) >= maxMarkDepth {
			return nil, false, formatErr("more than %d nested MARKs", maxMarkDepth)
		}
		u.marks = append(u.marks, len(u.stack))
	case opPop:
		if len(u.stack) > u.base() {
			_, err = u.pop()
		} else {
			_, err = u.popMark()
		}
	case opPopMark:
		_, err = u.popMark()
	case opDup:
		var v any
		if v, err = u.top(); err == nil {
			u.push(v)
		}

	// Scalars.
	case opNone:
		u.push(nil)
	case opNewTrue:
		u.push(true)
	case opNewFalse:
		u.push(false)
	case opBinInt:
		var v uint64
		if v, err = u.uint(4); err == nil {
			u.push(int64(int32(uint32(v))))
		}
	case opBinInt1:
		var v uint64
		if v, err = u.uint(1); err == nil {
			u.push(int64(v))
		}
	case opBinInt2:
		var v uint64
		if v, err = u.uint(2); err == nil {
			u.push(int64(v))
		}
	case opLong1, opLong4:
		width := 1
		if op == opLong4 {
			width = 4
		}
		var n uint64
		if n, err = u.uint(width); err != nil {
			break
		}
		if op == opLong4 && int32(uint32(n)) < 0 {
			return nil, false, formatErr("negative length %d", int32(uint32(n)))
		}
		var b []byte
		if b, err = u.bytes(int64(n)); err == nil {
			u.push(decodeLong(b))
		}
	case opInt:
		var s string
		if s, err = u.line(); err != nil {
			break
		}
		switch s {
		case "00":
			u.push(false)
		case "01":
			u.push(true)
		default:
			var v any
			if v, err = parseTextInt(s); err == nil {
				u.push(v)
			}
		}
	case opLong:
		var s string
		if s, err = u.line(); err != nil {
			break
		}
		s = strings.TrimSuffix(s, "L")
		var v any
		if v, err = parseTextInt(s); err == nil {
			u.push(v)
		}
	case opFloat:
		var s string
		if s, err = u.line(); err != nil {
			break
		}
		f, perr := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if perr != nil {
			return nil, false, formatErr("FLOAT argument %q is not a number", s)
		}
		u.push(f)
	case opBinFloat:
		var b []byte
		if b, err = u.bytes(8); err == nil {
			u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
		}

	// Strings and bytes.
	case opBinUnicode, opShortBinUnicode, opBinUnicode8, opBinString, opShortBinString,
		opBinBytes, opShortBinBytes, opBinBytes8, opByteArray8:
		width := 4
		switch op {
		case opShortBinUnicode, opShortBinString, opShortBinBytes:
			width = 1
		case opBinUnicode8, opBinBytes8, opByteArray8:
			width = 8
		}
		var n uint64
		if n, err = u.uint(width); err != nil {
			break
		}
		if op == opBinString && int32(uint32(n)) < 0 {
			return nil, false, formatErr("negative length %d", int32(uint32(n)))
		}
		if n > uint64(u.in.remaining()) {
			return nil, false, formatErr("a length of %d bytes, but only %d remain", n, u.in.remaining())
		}
		var b []byte
		if b, err = u.bytes(int64(n)); err != nil {
			break
		}
		switch op {
		case opBinBytes, opShortBinBytes, opBinBytes8, opByteArray8:
			u.push(slices.Clone(b))
		default:
			u.push(string(b))
		}
	case opString:
		var s string
		if s, err = u.line(); err != nil {
			break
		}
		var v string
		if v, err = decodeStringLiteral(s); err == nil {
			u.push(v)
		}
	case opUnicode:
		var s string
		if s, err = u.line(); err != nil {
			break
		}
		var v string
		if v, err = decodeRawUnicodeEscape(s); err == nil {
			u.push(v)
		}

	// Containers.
	case opEmptyTuple:
		u.push(tuple{})
	case opTuple1, opTuple2, opTuple3:
		n := int(op-opTuple1) + 1
		if len(u.stack)-u.base() < n {
			return nil, false, formatErr("stack underflow")
		}
		t := tuple(slices.Clone(u.stack[len(u.stack)-n:]))
		clear(u.stack[len(u.stack)-n:])
		u.stack = u.stack[:len(u.stack)-n]
		u.push(t)
	case opTuple:
		var items []any
		if items, err = u.popMark(); err == nil {
			u.push(tuple(items))
		}
	case opEmptyList:
		u.push(&list{})
	case opList:
		var items []any
		if items, err = u.popMark(); err == nil {
			u.push(&list{items: items})
		}
	case opEmptyDict:
		u.push(&dict{})
	case opDict:
		var items []any
		if items, err = u.popMark(); err != nil {
			break
		}
		d := &dict{}
		if err = u.setItems(d, items); err == nil {
			u.push(d)
		}
	case opEmptySet:
		u.push(&set{})
	case opFrozenSet:
		var items []any
		if items, err = u.popMark(); err == nil {
			u.push(&set{items: items, frozen: true})
		}
	case opAppend:
		var v, l any
		if v, err = u.pop(); err != nil {
			break
		}
		if l, err = u.top(); err == nil {
			err = appendItems(l, []any{v})
		}
	case opAppends:
		var items []any
		if items, err = u.popMark(); err != nil {
			break
		}
		var l any
		if l, err = u.top(); err == nil {
			err = appendItems(l, items)
		}
	case opSetItem:
		var k, v, d any
		if v, err = u.pop(); err != nil {
			break
		}
		if k, err = u.pop(); err != nil {
			break
		}
		if d, err = u.top(); err == nil {
			err = u.setItems(d, []any{k, v})
		}
	case opSetItems:
		var items []any
		if items, err = u.popMark(); err != nil {
			break
		}
		var d any
		if d, err = u.top(); err == nil {
			err = u.setItems(d, items)
		}
	case opAddItems:
		var items []any
		if items, err = u.popMark(); err != nil {
			break
		}
		var s any
		if s, err = u.top(); err != nil {
			break
		}
		switch s := s.(type) {
		case *set:
			if s.frozen {
				return nil, false, formatErr("ADDITEMS to a frozenset")
			}
			s.items = append(s.items, items...)
		case *opaque:
		default:
			return nil, false, formatErr("ADDITEMS to a %s", typeName(s))
		}

	// Memo.
	case opPut:
		var i int64
		if i, err = u.textMemoIndex(); err == nil {
			err = u.put(i)
		}
	case opBinPut, opLongBinPut:
		width := 1
		if op == opLongBinPut {
			width = 4
		}
		var i int64
		if i, err = u.memoIndex(width); err == nil {
			err = u.put(i)
		}
	case opMemoize:
		err = u.put(int64(len(u.memo)))
	case opGet:
		var i int64
		if i, err = u.textMemoIndex(); err == nil {
			err = u.get(i)
		}
	case opBinGet, opLongBinGet:
		width := 1
		if op == opLongBinGet {
			width = 4
		}
		var i int64
		if i, err = u.memoIndex(width); err == nil {
			err = u.get(i)
		}

	// Globals, calls, persistent ids.
	case opGlobal:
		var module, name string
		if module, err = u.line(); err != nil {
			break
		}
		if name, err = u.line(); err != nil {
			break
		}
		var v any
		if v, err = u.resolve(module, name); err == nil {
			u.push(v)
		}
	case opStackGlobal:
		var m, n any
		if n, err = u.pop(); err != nil {
			break
		}
		if m, err = u.pop(); err != nil {
			break
		}
		module, ok1 := m.(string)
		name, ok2 := n.(string)
		if !ok1 || !ok2 {
			return nil, false, formatErr("STACK_GLOBAL of a %s and a %s, want two str", typeName(m), typeName(n))
		}
		var v any
		if v, err = u.resolve(module, name); err == nil {
			u.push(v)
		}
	case opReduce:
		var fn, args any
		if args, err = u.pop(); err != nil {
			break
		}
		if fn, err = u.pop(); err != nil {
			break
		}
		t, ok := args.(tuple)
		if !ok {
			return nil, false, formatErr("REDUCE arguments are a %s, want a tuple", typeName(args))
		}
		var v any
		if v, err = u.call(fn, t, "REDUCE"); err == nil {
			u.push(v)
		}
	case opNewObj:
		var cls, args any
		if args, err = u.pop(); err != nil {
			break
		}
		if cls, err = u.pop(); err != nil {
			break
		}
		t, ok := args.(tuple)
		if !ok {
			return nil, false, formatErr("NEWOBJ arguments are a %s, want a tuple", typeName(args))
		}
		var v any
		if v, err = u.call(cls, t, "NEWOBJ"); err == nil {
			u.push(v)
		}
	case opNewObjEx:
		var cls, args, kwargs any
		if kwargs, err = u.pop(); err != nil {
			break
		}
		if args, err = u.pop(); err != nil {
			break
		}
		if cls, err = u.pop(); err != nil {
			break
		}
		t, ok := args.(tuple)
		kw, ok2 := kwargs.(*dict)
		if !ok || !ok2 {
			return nil, false, formatErr("NEWOBJ_EX arguments are a %s and a %s, want a tuple and a dict", typeName(args), typeName(kwargs))
		}
		if _, isOpaque := cls.(*opaque); !isOpaque && len(kw.keys) > 0 {
			return nil, false, formatErr("NEWOBJ_EX of %s with keyword arguments", typeName(cls))
		}
		var v any
		if v, err = u.call(cls, t, "NEWOBJ_EX"); err == nil {
			u.push(v)
		}
	case opInst:
		var module, name string
		if module, err = u.line(); err != nil {
			break
		}
		if name, err = u.line(); err != nil {
			break
		}
		var items []any
		if items, err = u.popMark(); err != nil {
			break
		}
		var cls, v any
		if cls, err = u.resolve(module, name); err != nil {
			break
		}
		if v, err = u.call(cls, tuple(items), "INST"); err == nil {
			u.push(v)
		}
	case opObj:
		var items []any
		if items, err = u.popMark(); err != nil {
			break
		}
		if len(items) == 0 {
			return nil, false, formatErr("OBJ without a class")
		}
		var v any
		if v, err = u.call(items[0], tuple(items[1:]), "OBJ"); err == nil {
			u.push(v)
		}
	case opBuild:
		var inst, state any
		if state, err = u.pop(); err != nil {
			break
		}
		if inst, err = u.top(); err == nil {
			err = build(inst, state)
		}
	case opBinPersID, opPersID:
		var pid any
		if op == opPersID {
			var s string
			if s, err = u.line(); err != nil {
				break
			}
			pid = s
		} else if pid, err = u.pop(); err != nil {
			break
		}
		if u.persistentLoad == nil {
			return nil, false, formatErr("a persistent id where none is expected")
		}
		var v any
		if v, err = u.persistentLoad(pid); err == nil {
			u.push(v)
		}
	case opExt1, opExt2, opExt4:
		return nil, false, refusedErr("the extension registry (%s) is not supported: it names globals indirectly", opName(op))
	case opNextBuffer:
		return nil, false, formatErr("out-of-band buffers are not supported")
	case opReadOnlyBuffer:
		_, err = u.top()
	default:
		return nil, false, formatErr("unknown opcode 0x%02x", op)
	}
	if err == errTruncated {
		err = formatErr("unexpected end of data")
	}
	return nil, false, err
}

// setItems sets key-value pairs of a dict. Hashing a key costs its length,
// which is charged, so that one long key reused through the memo cannot make
// the work grow faster than the input.
func (u *unpickler) setItems(target any, items []any) error {
	if len(items)%2 != 0 {
		return formatErr("an odd number of items (%d) for a dict", len(items))
	}
	switch d := target.(type) {
	case *dict:
		for i := 0; i < len(items); i += 2 {
			if err := u.charge(keyCost(items[i])); err != nil {
				return err
			}
			d.set(items[i], items[i+1])
		}
	case *opaque:
		// An object we do not build: its items are dropped.
	default:
		return formatErr("setting items of a %s", typeName(target))
	}
	return nil
}

func appendItems(target any, items []any) error {
	switch l := target.(type) {
	case *list:
		l.items = append(l.items, items...)
	case *opaque:
	default:
		return formatErr("appending to a %s", typeName(target))
	}
	return nil
}

// build applies BUILD: set an object's state. State is only ever dropped:
// instance attributes of an OrderedDict (a state dict's _metadata), of a
// tensor, or of a placeholder.
func build(inst, state any) error {
	switch inst.(type) {
	case *dict, *tensorValue, *opaque:
		return nil
	}
	return formatErr("BUILD on a %s", typeName(inst))
}

// decodeLong decodes a little-endian two's complement integer (LONG1, LONG4).
func decodeLong(b []byte) any {
	if len(b) <= 8 {
		var v uint64
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		if len(b) == 0 {
			return int64(0)
		}
		shift := 64 - 8*uint(len(b))
		return int64(v<<shift) >> shift
	}
	be := make([]byte, len(b))
	for i, c := range b {
		be[len(b)-1-i] = c
	}
	n := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	if n.IsInt64() {
		return n.Int64()
	}
	return n
}

// parseTextInt parses the decimal argument of INT and LONG.
func parseTextInt(s string) (any, error) {
	s = strings.TrimSpace(s)
	if len(strings.TrimLeft(s, "+-")) > maxTextDigits {
		return nil, formatErr("an integer of more than %d digits", maxTextDigits)
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, nil
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return nil, formatErr("%q is not an integer", s)
	}
	return n, nil
}

// decodeStringLiteral decodes the argument of STRING: a quoted string with
// Python's backslash escapes.
func decodeStringLiteral(s string) (string, error) {
	if len(s) < 2 || s[0] != s[len(s)-1] || (s[0] != '\'' && s[0] != '"') {
		return "", formatErr("the STRING argument must be quoted")
	}
	s = s[1 : len(s)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := s[i]; e {
		case '\\', '\'', '"':
			b.WriteByte(e)
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'v':
			b.WriteByte('\v')
		case '\n':
		case 'x':
			if i+2 >= len(s) {
				return "", formatErr("invalid \\x escape in a STRING argument")
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", formatErr("invalid \\x escape in a STRING argument")
			}
			b.WriteByte(byte(v))
			i += 2
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := int(e - '0')
			for k := 0; k < 2 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '7'; k++ {
				i++
				v = v*8 + int(s[i]-'0')
			}
			b.WriteByte(byte(v))
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	return b.String(), nil
}

// decodeRawUnicodeEscape decodes the argument of UNICODE (Python's
// raw-unicode-escape codec): bytes are Latin-1 code points, and \uXXXX or
// \UXXXXXXXXX after an odd number of backslashes is a code point.
func decodeRawUnicodeEscape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '\\' {
			b.WriteRune(rune(s[i]))
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] == '\\' {
			j++
		}
		run := j - i
		if run%2 == 0 || j == len(s) || (s[j] != 'u' && s[j] != 'U') {
			b.WriteString(s[i:j])
			i = j
			continue
		}
		b.WriteString(s[i : j-1])
		n := 4
		if s[j] == 'U' {
			n = 8
		}
		if j+1+n > len(s) {
			return "", formatErr("truncated \\%c escape in a UNICODE argument", s[j])
		}
		v, err := strconv.ParseUint(s[j+1:j+1+n], 16, 32)
		if err != nil || v > utf8.MaxRune {
			return "", formatErr("invalid \\%c escape in a UNICODE argument", s[j])
		}
		b.WriteRune(rune(v))
		i = j + 1 + n
	}
	return b.String(), nil
}

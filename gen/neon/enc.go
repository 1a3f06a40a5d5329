package main

import (
	"bytes"
	"fmt"
	"math"
	"strings"
)

// ---------------------------------------------------------------------------
// Signatures and the ABI0 argument frame.

// arg is a parameter or result of a kernel: typ is a Go type among []float32,
// []uint16, float32, int, *float32 and *uint16.
type arg struct{ name, typ string }

type signature struct {
	args, res []arg
}

func (s signature) params() string {
	var p []string
	for _, a := range s.args {
		p = append(p, a.name+" "+a.typ)
	}
	return strings.Join(p, ", ")
}

func (s signature) results() string {
	switch {
	case len(s.res) == 0:
		return ""
	case len(s.res) == 1 && s.res[0].name == "ret":
		return s.res[0].typ
	}
	var p []string
	for _, a := range s.res {
		p = append(p, a.name+" "+a.typ)
	}
	return "(" + strings.Join(p, ", ") + ")"
}

func (s signature) hasPointers() bool {
	for _, a := range s.args {
		if strings.HasPrefix(a.typ, "[]") || strings.HasPrefix(a.typ, "*") {
			return true
		}
	}
	return false
}

func sizeOf(typ string) (size, align int) {
	switch {
	case strings.HasPrefix(typ, "[]"):
		return 24, 8
	case typ == "float32":
		return 4, 4
	}
	return 8, 8 // int, pointers
}

// frame returns the FP-relative names of the arguments and results (as go vet's
// asmdecl spells them: x_base, x_len for slices) and the size of the frame.
func (s signature) frame() (map[string]string, int) {
	names := map[string]string{}
	off := 0
	place := func(as []arg) {
		for _, a := range as {
			size, align := sizeOf(a.typ)
			off = (off + align - 1) / align * align
			if strings.HasPrefix(a.typ, "[]") {
				names[a.name+"_base"] = fmt.Sprintf("%s_base+%d(FP)", a.name, off)
				names[a.name+"_len"] = fmt.Sprintf("%s_len+%d(FP)", a.name, off+8)
			} else {
				names[a.name] = fmt.Sprintf("%s+%d(FP)", a.name, off)
			}
			off += size
		}
	}
	place(s.args)
	off = (off + 7) / 8 * 8 // results start pointer-aligned
	place(s.res)
	return names, off
}

// sig parses "name typ, name typ" lists (one type per name) into a signature.
func sig(params, results string) signature {
	parse := func(l string) []arg {
		var as []arg
		for _, p := range strings.Split(l, ",") {
			f := strings.Fields(p)
			if len(f) == 0 {
				continue
			}
			if len(f) != 2 {
				panic("bad parameter " + p)
			}
			as = append(as, arg{f[0], f[1]})
		}
		return as
	}
	return signature{parse(params), parse(results)}
}

// ---------------------------------------------------------------------------
// Functions, constants and vector registers.

// vg is a group of vector registers: one per unrolled copy of a loop body, so
// that each instruction of the body is emitted once per copy, interleaved.
// Groups that are loaded or stored together are consecutive registers.
type vg []int

// cref is one float32 constant held in a lane of a "bank" register: the
// by-element forms of FMUL and FMLA/FMLS, and VDUP, read it from there, so four
// constants cost one register.
type cref struct{ reg, lane int }

// splatSpec is a constant (or a float32 argument) broadcast to all lanes of a
// register before the loops, for the instructions that have no by-element form.
type splatSpec struct {
	bits  uint32
	param string // if not empty, the FP name of the float32 argument instead
}

// fn is one kernel being written. Its body is generated twice: a dry pass that
// only counts the constants it asks for, then the real one, with the banks in
// the top registers, the splats below them, and the loop's temporaries below
// those (the generator panics if they do not fit).
type fn struct {
	name string
	doc  []string
	sig  signature
	args map[string]string
	size int
	body func(k *fn)

	code bytes.Buffer
	dry  bool

	table    []uint32 // bank lanes, in register order
	tableIdx map[uint32]int
	splats   []splatSpec
	splatIdx map[splatSpec]int
	nb, ns   int // banks and splats found by the dry pass

	used   [32]bool // registers held by temporaries
	u      int      // the current unroll: the length of the groups vec returns
	scalar bool     // set while mapLoops emits the one-element tail

	labels int
}

// newFunc writes a kernel: body emits the code (it may be called twice).
func (f *file) newFunc(name string, s signature, doc []string, body func(k *fn)) {
	k := &fn{name: name, doc: doc, sig: s, body: body}
	k.args, k.size = s.frame()
	// dry pass
	k.reset(true)
	body(k)
	k.nb, k.ns = (len(k.table)+3)/4, len(k.splats)
	// real pass
	k.reset(false)
	body(k)
	if (len(k.table)+3)/4 != k.nb || len(k.splats) != k.ns {
		panic(name + ": the two passes asked for different constants")
	}
	f.funcs = append(f.funcs, k)
}

func (k *fn) reset(dry bool) {
	k.dry = dry
	k.code.Reset()
	k.table, k.tableIdx = nil, map[uint32]int{}
	k.splats, k.splatIdx = nil, map[splatSpec]int{}
	k.used = [32]bool{}
	k.u = 1
	k.labels = 0
}

// limit is the first register above the temporaries.
func (k *fn) limit() int { return 32 - k.nb - k.ns }

// arg returns the FP operand of an argument.
func (k *fn) arg(name string) string {
	a, ok := k.args[name]
	if !ok {
		panic(k.name + ": no argument " + name)
	}
	return a
}

// c returns the bank lane holding the float32 v.
func (k *fn) c(v float32) cref { return k.cbits(math.Float32bits(v)) }

func (k *fn) cbits(bits uint32) cref {
	i, ok := k.tableIdx[bits]
	if !ok {
		i = len(k.table)
		k.table = append(k.table, bits)
		k.tableIdx[bits] = i
	}
	if k.dry {
		return cref{31, 0}
	}
	return cref{32 - k.nb + i/4, i % 4}
}

// splat returns a group whose registers all hold the constant bits.
func (k *fn) splat(bits uint32) vg { return k.splatOf(splatSpec{bits: bits}) }

func (k *fn) splatF(v float32) vg { return k.splat(math.Float32bits(v)) }

// param returns a group whose registers all hold the float32 argument name.
func (k *fn) param(name string) vg { return k.splatOf(splatSpec{param: k.arg(name)}) }

func (k *fn) splatOf(s splatSpec) vg {
	i, ok := k.splatIdx[s]
	if !ok {
		i = len(k.splats)
		k.splats = append(k.splats, s)
		k.splatIdx[s] = i
	}
	r := 31
	if !k.dry {
		r = k.limit() + i
	}
	g := make(vg, k.u)
	for c := range g {
		g[c] = r
	}
	return g
}

// vec allocates a group of k.u consecutive free registers below the constants.
func (k *fn) vec() vg { return k.vecN(k.u) }

func (k *fn) vecN(n int) vg {
	lim := k.limit()
	if k.dry {
		lim = 32
	}
	for base := 0; base+n <= lim; base++ {
		free := true
		for c := 0; c < n; c++ {
			free = free && !k.used[base+c]
		}
		if !free {
			continue
		}
		g := make(vg, n)
		for c := range g {
			g[c] = base + c
			k.used[base+c] = true
		}
		return g
	}
	if k.dry {
		return make(vg, n) // the dry pass only counts constants
	}
	panic(fmt.Sprintf("%s: out of vector registers (%d constants and splats)", k.name, k.nb+k.ns))
}

// free releases temporaries (splats are left alone).
func (k *fn) free(gs ...vg) {
	for _, g := range gs {
		for _, r := range g {
			if r < k.limit() {
				k.used[r] = false
			}
		}
	}
}

// freeAll releases every temporary.
func (k *fn) freeAll() { k.used = [32]bool{} }

// label returns a fresh label name.
func (k *fn) label(name string) string {
	k.labels++
	return fmt.Sprintf("%s%d", name, k.labels)
}

// writeAsm writes the constant table and the function.
func (k *fn) writeAsm(w *bytes.Buffer) {
	tbl := k.name + "c<>"
	var splatBits []uint32
	for _, s := range k.splats {
		if s.param == "" {
			splatBits = append(splatBits, s.bits)
		}
	}
	if n := len(k.table) + len(splatBits); n > 0 {
		fmt.Fprintf(w, "// The constants of %s: %d bank registers, then the splatted values.\n", k.name, k.nb)
		off := 0
		put := func(b uint32) {
			fmt.Fprintf(w, "DATA %s+%d(SB)/4, $0x%08x // %s\n", tbl, off, b, describe(b))
			off += 4
		}
		for i := 0; i < 4*k.nb; i++ {
			b := uint32(0)
			if i < len(k.table) {
				b = k.table[i]
			}
			put(b)
		}
		for _, b := range splatBits {
			put(b)
		}
		fmt.Fprintf(w, "GLOBL %s(SB), RODATA|NOPTR, $%d\n\n", tbl, off)
	}
	for _, l := range k.doc {
		fmt.Fprintf(w, "// %s\n", l)
	}
	fmt.Fprintf(w, "TEXT ·%s(SB), NOSPLIT, $0-%d\n", k.name, k.size)
	if k.nb+len(splatBits) > 0 {
		fmt.Fprintf(w, "\tMOVD $%s(SB), R9\n", tbl)
		for b := 0; b < k.nb; b += 4 {
			n := min(4, k.nb-b)
			var regs []string
			for i := 0; i < n; i++ {
				regs = append(regs, fmt.Sprintf("V%d.S4", 32-k.nb+b+i))
			}
			fmt.Fprintf(w, "\tVLD1.P %d(R9), [%s]\n", 16*n, strings.Join(regs, ", "))
		}
	}
	for i, s := range k.splats {
		r := k.limit() + i
		if s.param != "" {
			fmt.Fprintf(w, "\tFMOVS %s, F%d\n\tVDUP V%d.S[0], V%d.S4\n", s.param, r, r, r)
		} else {
			fmt.Fprintf(w, "\tVLD1R.P 4(R9), [V%d.S4]\n", r)
		}
	}
	w.Write(k.code.Bytes())
}

// describe prints a constant as a float32, or as an integer when it is one.
func describe(b uint32) string {
	if b < 1<<16 {
		return fmt.Sprintf("%d", b)
	}
	return fmt.Sprintf("%g", math.Float32frombits(b))
}

// ---------------------------------------------------------------------------
// Instructions. Go's operand order is sources first, destination last; the
// helpers below take the destination first, as the ARM manual writes them.

// i emits one line of assembly.
func (k *fn) i(format string, a ...any) {
	fmt.Fprintf(&k.code, "\t"+format+"\n", a...)
}

// at emits a label.
func (k *fn) at(l string) { fmt.Fprintf(&k.code, "%s:\n", l) }

// comment emits a comment line.
func (k *fn) comment(format string, a ...any) {
	fmt.Fprintf(&k.code, "\t// "+format+"\n", a...)
}

// word emits an instruction Go's assembler lacks, as its encoding, with the
// instruction in GNU syntax as a comment.
func (k *fn) word(enc uint32, gnu string, a ...any) {
	k.i("WORD $0x%08x // %s", enc, fmt.Sprintf(gnu, a...))
}

// Encodings (Arm A64 ISA, "Advanced SIMD three same", "two-register misc",
// "vector x indexed element", "shift by immediate", "scalar pairwise" and
// "across lanes" classes), all with Q=1 (128-bit) and single-precision lanes
// unless the name says otherwise; Rd, Rn and Rm are or'ed in at bits 0, 5 and 16.
const (
	encFADD    = 0x4e20d400 // fadd  Vd.4s, Vn.4s, Vm.4s
	encFSUB    = 0x4ea0d400 // fsub  Vd.4s, Vn.4s, Vm.4s
	encFMUL    = 0x6e20dc00 // fmul  Vd.4s, Vn.4s, Vm.4s
	encFDIV    = 0x6e20fc00 // fdiv  Vd.4s, Vn.4s, Vm.4s
	encFMAX    = 0x4e20f400 // fmax  Vd.4s, Vn.4s, Vm.4s
	encFMIN    = 0x4ea0f400 // fmin  Vd.4s, Vn.4s, Vm.4s
	encFADDP   = 0x6e20d400 // faddp Vd.4s, Vn.4s, Vm.4s
	encFADD2D  = 0x4e60d400 // fadd  Vd.2d, Vn.2d, Vm.2d
	encFMULE   = 0x4f809000 // fmul  Vd.4s, Vn.4s, Vm.s[i]  (i = H:L at bits 11, 21)
	encFMLAE   = 0x4f801000 // fmla  Vd.4s, Vn.4s, Vm.s[i]
	encFMLSE   = 0x4f805000 // fmls  Vd.4s, Vn.4s, Vm.s[i]
	encFABS    = 0x4ea0f800 // fabs  Vd.4s, Vn.4s
	encFNEG    = 0x6ea0f800 // fneg  Vd.4s, Vn.4s
	encCMLT0   = 0x4ea0a800 // cmlt  Vd.4s, Vn.4s, #0 (integer: the sign bit)
	encSSHR    = 0x4f000400 // sshr  Vd.4s, Vn.4s, #s  (immh:immb = 64-s at bit 16)
	encFCVTL   = 0x0e217800 // fcvtl  Vd.4s, Vn.4h
	encFCVTL2  = 0x4e217800 // fcvtl2 Vd.4s, Vn.8h
	encFCVTN   = 0x0e216800 // fcvtn  Vd.4h, Vn.4s
	encFCVTN2  = 0x4e216800 // fcvtn2 Vd.8h, Vn.4s
	encFCVTLD  = 0x0e617800 // fcvtl  Vd.2d, Vn.2s
	encFCVTL2D = 0x4e617800 // fcvtl2 Vd.2d, Vn.4s
	encFADDPS  = 0x7e30d800 // faddp Sd, Vn.2s
	encFADDPD  = 0x7e70d800 // faddp Dd, Vn.2d
	encFMAXV   = 0x6e30f800 // fmaxv Sd, Vn.4s
)

func rdnm(d, n, m int) uint32 { return uint32(m)<<16 | uint32(n)<<5 | uint32(d) }

// three emits a three-same single-precision operation on each copy: d = n op m.
func (k *fn) three(enc uint32, op string, d, n, m vg) {
	for c := range d {
		k.word(enc|rdnm(d[c], n[c], m[c]), "%s v%d.4s, v%d.4s, v%d.4s", op, d[c], n[c], m[c])
	}
}

func (k *fn) fadd(d, n, m vg) { k.three(encFADD, "fadd", d, n, m) }
func (k *fn) fsub(d, n, m vg) { k.three(encFSUB, "fsub", d, n, m) }
func (k *fn) fmul(d, n, m vg) { k.three(encFMUL, "fmul", d, n, m) }
func (k *fn) fdiv(d, n, m vg) { k.three(encFDIV, "fdiv", d, n, m) }

// fmax and fmin return NaN when either operand is NaN.
func (k *fn) fmax(d, n, m vg) { k.three(encFMAX, "fmax", d, n, m) }
func (k *fn) fmin(d, n, m vg) { k.three(encFMIN, "fmin", d, n, m) }

// two emits a two-register operation on each copy.
func (k *fn) two(enc uint32, gnu string, d, n vg) {
	for c := range d {
		k.word(enc|rdnm(d[c], n[c], 0), gnu, d[c], n[c])
	}
}

func (k *fn) fabs(d, n vg) { k.two(encFABS, "fabs v%d.4s, v%d.4s", d, n) }
func (k *fn) fneg(d, n vg) { k.two(encFNEG, "fneg v%d.4s, v%d.4s", d, n) }

// cmlt0 sets each lane of d to all ones where the sign bit of n is set.
func (k *fn) cmlt0(d, n vg) { k.two(encCMLT0, "cmlt v%d.4s, v%d.4s, #0", d, n) }

// sshr is the arithmetic right shift of 32-bit lanes by 1..32.
func (k *fn) sshr(d, n vg, s int) {
	for c := range d {
		k.word(encSSHR|uint32(64-s)<<16|rdnm(d[c], n[c], 0), "sshr v%d.4s, v%d.4s, #%d", d[c], n[c], s)
	}
}

// byElem emits an operation with a bank constant as the by-element operand.
func (k *fn) byElem(enc uint32, op string, d, n vg, m cref) {
	for c := range d {
		e := enc | uint32(m.lane&1)<<21 | uint32(m.lane>>1)<<11 | rdnm(d[c], n[c], m.reg)
		k.word(e, "%s v%d.4s, v%d.4s, v%d.s[%d]", op, d[c], n[c], m.reg, m.lane)
	}
}

// fmulC sets d = n·m; fmlaC d += n·m and fmlsC d -= n·m, each rounded once.
func (k *fn) fmulC(d, n vg, m cref) { k.byElem(encFMULE, "fmul", d, n, m) }
func (k *fn) fmlaC(d, n vg, m cref) { k.byElem(encFMLAE, "fmla", d, n, m) }
func (k *fn) fmlsC(d, n vg, m cref) { k.byElem(encFMLSE, "fmls", d, n, m) }

// fmla sets d += n·m, rounded once (Go's VFMLA).
func (k *fn) fmla(d, n, m vg) {
	for c := range d {
		k.i("VFMLA V%d.S4, V%d.S4, V%d.S4", m[c], n[c], d[c])
	}
}

// iadd and isub are 32-bit integer lane operations: d = n ± m.
func (k *fn) iadd(d, n, m vg) {
	for c := range d {
		k.i("VADD V%d.S4, V%d.S4, V%d.S4", m[c], n[c], d[c])
	}
}

func (k *fn) isub(d, n, m vg) {
	for c := range d {
		k.i("VSUB V%d.S4, V%d.S4, V%d.S4", m[c], n[c], d[c])
	}
}

// shl shifts 32-bit lanes left.
func (k *fn) shl(d, n vg, s int) {
	for c := range d {
		k.i("VSHL $%d, V%d.S4, V%d.S4", s, n[c], d[c])
	}
}

// mov copies n to d.
func (k *fn) mov(d, n vg) {
	for c := range d {
		if d[c] != n[c] {
			k.i("VMOV V%d.B16, V%d.B16", n[c], d[c])
		}
	}
}

// bsl sets m = m ? t : f, bit by bit (m is a mask).
func (k *fn) bsl(m, t, f vg) {
	for c := range m {
		k.i("VBSL V%d.B16, V%d.B16, V%d.B16", f[c], t[c], m[c])
	}
}

// dup broadcasts a bank constant.
func (k *fn) dup(d vg, m cref) {
	for c := range d {
		k.i("VDUP V%d.S[%d], V%d.S4", m.reg, m.lane, d[c])
	}
}

// zero clears d.
func (k *fn) zero(d vg) {
	for c := range d {
		k.i("VEOR V%d.B16, V%d.B16, V%d.B16", d[c], d[c], d[c])
	}
}

// list is a register list for VLD1/VST1 with the given arrangement.
func list(g vg, arr string) string {
	var s []string
	for _, r := range g {
		s = append(s, fmt.Sprintf("V%d.%s", r, arr))
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// ld loads len(g) vectors (g consecutive) from the pointer p, advancing it.
func (k *fn) ld(g vg, p string) { k.i("VLD1.P %d(%s), %s", 16*len(g), p, list(g, "S4")) }

// st stores len(g) vectors (g consecutive) at the pointer p, advancing it.
func (k *fn) st(g vg, p string) { k.i("VST1.P %s, %d(%s)", list(g, "S4"), 16*len(g), p) }

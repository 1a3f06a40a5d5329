// Package pickle reads PyTorch checkpoints (.ckpt, .pt, .pth, .bin written by
// torch.save) without executing anything: a restricted unpickler rebuilds
// tensors and plain containers, and nothing else.
//
// # Formats
//
// Two layouts are read:
//
//   - the zip archive of torch >= 1.6: <folder>/data.pkl (the pickle),
//     <folder>/data/<key> (one record per storage), <folder>/byteorder
//     ("little" or "big"; little when absent). The folder name is whatever the
//     writer chose ("archive", the file's stem, ...). Storage records are read
//     lazily, one tensor at a time, directly from the file when they are stored
//     uncompressed and through a decompressor otherwise.
//   - the legacy stream of torch < 1.6: a pickled magic number
//     (0x1950a86a20f9469cfc6c), the pickled protocol version (1001), a pickled
//     system-information dict, the main pickle, the pickled list of storage
//     keys, then each storage as a little-endian int64 element count and its
//     little-endian bytes. Storage views (legacy view metadata) are supported.
//
// The even older tar layout (torch < 0.4) is detected and refused with an error.
//
// # What the unpickler accepts
//
// Every opcode of pickle protocols 0 to 5 is decoded, except the extension
// registry (EXT1, EXT2, EXT4) and out-of-band buffers (NEXT_BUFFER), which are
// refused. Values are None, booleans, integers (arbitrary size), floats,
// strings, bytes, tuples, lists, dicts, sets and frozensets, tensors and the
// allowed globals below. A global is never imported and nothing is ever called:
// a call (REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ) of an allowed global is
// interpreted by this package, which knows what each one builds.
//
// The allowed globals are exactly:
//
//	collections.OrderedDict                  an (ordered) dict; BUILD state (such as _metadata) is dropped
//	builtins.set, builtins.frozenset         a set built from a list (also __builtin__.set/frozenset)
//	builtins.bytes, _codecs.encode           bytes, as protocol 2 writes them: bytes() and encode(str, "latin1")
//	torch.Size                               a tuple of ints
//	torch._utils._rebuild_tensor             tensor from (storage, offset, size, stride)
//	torch._utils._rebuild_tensor_v2          tensor from (storage, offset, size, stride, requires_grad, hooks[, metadata])
//	torch._utils._rebuild_tensor_v3          the same over an untyped storage, with a dtype argument
//	torch._utils._rebuild_parameter          nn.Parameter: (tensor, requires_grad, hooks)
//	torch._utils._rebuild_parameter_with_state  (tensor, requires_grad, hooks, state)
//	torch._tensor._rebuild_from_type_v2      a plain torch.Tensor with Python state: (rebuild function, torch.Tensor, args, state)
//	                                         (also spelled torch.tensor._rebuild_from_type_v2, as in older files)
//	torch.Tensor                             never called: the type argument of _rebuild_from_type_v2
//	torch.{Double,Float,Half,BFloat16,Long,Int,Short,Char,Byte,Bool}Storage
//	torch.UntypedStorage                     storage types, never called: they name the dtype in persistent ids
//	                                         (also under torch.cuda, as legacy GPU checkpoints name them)
//	torch.{float32,float,float64,double,float16,half,bfloat16,int64,long,int32,int,int16,short,int8,uint8,bool,
//	       uint16,uint32,uint64,float8_e4m3fn,float8_e5m2}
//	                                         dtypes, as _rebuild_tensor_v3 arguments or plain values
//
// Python 2 module names (__builtin__, copy_reg) are read as their Python 3
// names. Any other global is refused with an error that names it
// (module.name), wrapping ErrRefused.
//
// # Lenient mode
//
// Real training checkpoints (SD 1.x .ckpt files from PyTorch Lightning) hold
// more than weights: "callbacks" keyed by a Lightning class, hyper-parameter
// objects, NumPy scalars in optimizer states. With Options.Lenient, an unknown
// global becomes an opaque placeholder instead of an error, and calling it,
// instantiating it or setting its state gives another placeholder, so the rest
// of the file, and the tensors, still load. A placeholder inside the state dict
// is still an error, as is one in place of the state dict itself. Even in
// lenient mode these globals are always refused, since no checkpoint has a
// reason to name them: anything in the modules os, posix, nt, posixpath,
// ntpath, sys, subprocess, _posixsubprocess, shutil, socket, importlib, runpy,
// pty, code, codeop, ctypes, pickle, _pickle, marshal, copyreg (copy_reg),
// types, operator, _operator, functools, io, _io, codecs, _codecs (but for
// _codecs.encode), webbrowser, multiprocessing, asyncio, threading, _thread,
// signal, tempfile, pathlib and glob (and their submodules), and the builtins
// eval, exec, compile, open, __import__, getattr, setattr, delattr, globals,
// locals, vars, input, breakpoint, exit, quit, help, print, execfile, reload,
// file, apply, type, object, super, classmethod, staticmethod, property and
// memoryview.
//
// # Tensors
//
// The state dict is the object stored under "state_dict" (repeatedly: a
// {"state_dict": {"state_dict": ...}} nesting is unwrapped) or, without that
// key, the top-level dict itself. Nested dicts, lists and tuples inside it are
// flattened into dotted names; entries that are not tensors (numbers, strings,
// None) are skipped. Tensors keep their stored dtype (F32, F16, BF16, F64, I64,
// I32, I16, I8, U8, BOOL, and U16, U32, U64, F8_E4M3, F8_E5M2 from
// _rebuild_tensor_v3); Load widens as weights.FromBytes does. Storage offsets
// and arbitrary non-negative strides are honoured: a non-contiguous tensor is
// copied into a contiguous one. A tensor that would hold more elements than its
// storage (an expanded view with zero strides) is refused when loaded, so that
// no allocation exceeds the bytes in the file.
//
// # Limits
//
// Every length read from the input is checked against what remains of it before
// anything is allocated; MARK nesting is bounded (1000), tensors have at most
// 64 dimensions, text integers at most 4300 digits (as Python), data.pkl at
// most 1 GiB, and the work done by calls that copy containers or hash keys,
// and by flattening the state dict (nodes visited, bytes of names made), is
// bounded by the size of the pickle, so neither memory nor time can grow faster
// than the input. Containers in the state dict are flattened up to 64 levels
// deep; a cycle is an error.
package pickle

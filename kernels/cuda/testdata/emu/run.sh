#!/usr/bin/env bash
# run.sh: run package kernels/cuda's GPU tests without a GPU. The .cu kernels
# are compiled for the host against emu.h (a thread-per-CUDA-thread emulation)
# into a shared library, and emu_test.go's fake driver, enabled by
# SDGO_EMU_LIB, allocates "device" memory in host memory and launches the
# emulated kernels. This checks the kernels' logic and the Go side (argument
# packing, strides, offsets, temporaries) against the CPU backend; it cannot
# check the real cuBLAS (a host GEMM, refGemm in cublasref_test.go, stands in
# for it and checks each call's arguments), performance, or what differs on real hardware
# (shared-memory and register limits, timing). Slow: about 7 minutes for all.
#
# Needs: g++ 11+ (C++20), python3, cuda_fp16.h/cuda_bf16.h (the CUDA toolkit's
# include directory; CUDA_INCLUDE overrides), Go, linux/amd64 or arm64.
# Usage: bash kernels/cuda/testdata/emu/run.sh [test regexp, default GPU]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pkg=$(cd "$here/../.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
inc=${CUDA_INCLUDE:-}
if [ -z "$inc" ]; then
	for d in /usr/include /usr/local/cuda/include /usr/local/cuda-*/include; do
		if [ -f "$d/cuda_fp16.h" ]; then inc=$d; break; fi
	done
fi
[ -n "$inc" ] || { echo "run.sh: cuda_fp16.h not found (set CUDA_INCLUDE)"; exit 2; }
python3 "$here/gen_decls.py" "$pkg"/*.cu > "$out/decls.h"
for src in "$pkg"/*.cu; do
	n=$(basename "$src" .cu)
	sed -E 's/extern __shared__ (\w+) (\w+)\[\];/\1 *\2 = (\1 *)g_dyn.data();/' "$src" > "$out/$n.cc"
	${CXX:-g++} -std=c++20 -O2 -fPIC -pthread -I"$here" -I"$inc" -include emu.h -c "$out/$n.cc" -o "$out/$n.o"
done
${CXX:-g++} -std=c++20 -O2 -fPIC -pthread -I"$here" -I"$out" -I"$inc" -c "$here/emu_lib.cpp" -o "$out/emu_lib.o"
${CXX:-g++} -shared -pthread -o "$out/libemu.so" "$out"/*.o
cd "$pkg"
SDGO_EMU_LIB="$out/libemu.so" SDGO_CUDA_REQUIRE=1 \
	go test -count=1 -timeout 30m -v -run "${1:-GPU}" . 2>&1 | grep -Ev '^=== (RUN|PAUSE|CONT)'

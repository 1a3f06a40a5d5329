#!/usr/bin/env bash
# devicecheck.sh: run package kernels/cuda's tests on a machine with an NVIDIA
# GPU and no Go toolchain, from a test binary built elsewhere:
#
#   CGO_ENABLED=0 go test -c -o .devbin/cuda.test ./kernels/cuda   # anywhere
#   bash kernels/cuda/devicecheck.sh                                # on the GPU machine
#
# It prints the driver and GPU, then runs each test in its own process (a kernel
# that faults poisons its CUDA context, and would fail every later test of the
# same process), from the package directory (the PTX freshness test reads the
# .cu sources there), with SDGO_CUDA_REQUIRE=1 so that a GPU test cannot pass by
# skipping and CUDA_LAUNCH_BLOCKING=1 so that a fault is reported by the launch
# that caused it. Then short benchmarks (GEMM, attention, convolution) in each
# precision mode (Backend.SetPrecision), each iteration synchronised. The tests
# get at most 200 s, the benchmarks 50 s: about 4 minutes at most.
# Exit status: 0 when every test passed.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/.devbin/cuda.test
start=$SECONDS
if [ ! -x "$bin" ]; then
	echo "devicecheck: $bin not found: build it with CGO_ENABLED=0 go test -c -o .devbin/cuda.test ./kernels/cuda"
	exit 2
fi
echo "== GPU and driver"
timeout 10 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1 || echo "(nvidia-smi failed)"
timeout 10 nvidia-smi 2>&1 | head -n 12
echo "== libraries"
ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libcublas(Lt)?\.so' || echo "(ldconfig lists no libcuda/libcublas)"
ls -d /usr/local/cuda*/lib64 2>/dev/null
uname -m

cd "$root/kernels/cuda" || exit 2
tests=$("$bin" -test.list '.*' 2>&1 | grep -E '^(Test|Benchmark)' | grep '^Test')
failed=()
for t in $tests; do
	left=$((200 - (SECONDS - start)))
	if [ "$left" -lt 10 ]; then
		echo "devicecheck: out of time before $t"
		failed+=("$t(not run)")
		continue
	fi
	echo "== $t"
	SDGO_CUDA_REQUIRE=1 CUDA_LAUNCH_BLOCKING=1 timeout "$((left < 60 ? left : 60))" \
		"$bin" -test.v -test.count=1 -test.run "^$t\$" 2>&1
	rc=$?
	[ "$rc" -eq 0 ] || failed+=("$t(rc=$rc)")
done
if [ $((SECONDS - start)) -lt 210 ]; then
	echo "== benchmarks, synchronised, per precision (fp32 tf32 fp16 bf16): MatMul F32 x F16 4096x1280x1280;"
	echo "   MatMulF16 (both F16); attention [2,8,4096,40] and SDXL [2,10,4096,64]; conv 3x3 [2,320,64,64]"
	timeout 40 "$bin" -test.run '^$' -test.bench 'GPU' -test.benchtime 10x 2>&1
	echo "== benchmark with cuBLAS off (PTX GEMM)"
	SDGO_CUBLAS=off timeout 10 "$bin" -test.run '^$' -test.bench 'GPUMatMul$/^fp32$' -test.benchtime 10x 2>&1
fi
echo "== summary ($((SECONDS - start)) s)"
if [ "${#failed[@]}" -eq 0 ]; then
	echo "devicecheck: all tests passed"
	exit 0
fi
echo "devicecheck: FAILED: ${failed[*]}"
exit 1

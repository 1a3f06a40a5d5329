#!/usr/bin/env bash
# cuda-device-run.sh: on a machine with an NVIDIA GPU (no Go needed), from the
# repository root, after scripts/cuda-device-build.sh has filled .devbin/:
# the kernel tests against the CPU (kernels/cuda/devicecheck.sh), the model and
# pipeline fixtures on the GPU in FP32, the CPU-vs-GPU comparison at full size
# in FP32, FP16 and BF16, sd bench at the real sizes in FP16 (FP32 too with
# SDGO_BENCH_PRECISIONS="fp16 fp32"), the earlier attention and convolution
# paths, and a whole generation.
# Logs go to $OUT (default /tmp/out). About 6 minutes on an H100.
set -u
cd "$(dirname "$0")/.."
T0=$SECONDS
for f in .devbin/*.xz; do
	xz -dkf "$f" 2>/dev/null ||
		python3 -c "import lzma,sys,shutil; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[1][:-3],'wb'))" "$f"
done
chmod +x .devbin/*.test .devbin/sd
export SDGO_FIXTURES=$PWD/testdata/fixtures SDGO_BENCH_CACHE=${SDGO_BENCH_CACHE:-/tmp/sdgo-bench}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
echo "== [$((SECONDS - T0))s] kernels (devicecheck.sh)"
timeout 190 bash kernels/cuda/devicecheck.sh >"$OUT/devicecheck.log" 2>&1
echo "devicecheck rc=$?"
grep -E "^(--- FAIL|FAIL|devicecheck|Benchmark)|panic" "$OUT/devicecheck.log" | head -60
echo "== [$((SECONDS - T0))s] fixtures on cuda (FP32)"
for p in unet vae clip; do
	(cd diffusion/$p && SDGO_TEST_DEVICE=cuda timeout 90 ../../.devbin/$p.test >"$OUT/fix_$p.log" 2>&1; echo "$p rc=$?")
	grep -E "^\s*--- FAIL|^FAIL|panic|Error:" "$OUT/fix_$p.log" | head -20
done
(cd diffusion && SDGO_TEST_DEVICE=cuda timeout 120 ../.devbin/diffusion.test -test.run 'Pipelines|Offload|Lora|DeviceArith' >"$OUT/fix_pipelines.log" 2>&1; echo "pipelines rc=$?")
grep -E "^\s*--- FAIL|^FAIL|panic|Error:" "$OUT/fix_pipelines.log" | head -20
echo "== [$((SECONDS - T0))s] component fixtures on cuda in FP16 (refcheck.Tolerance: 2e-2)"
for p in unet vae clip; do
	(cd diffusion/$p && SDGO_TEST_DEVICE=cuda SDGO_TEST_PRECISION=fp16 timeout 90 ../../.devbin/$p.test -test.v >"$OUT/fix16_$p.log" 2>&1; echo "$p fp16 rc=$?")
	grep -E "^\s*--- FAIL|^FAIL|panic|Error:" "$OUT/fix16_$p.log" | head -10
	grep -oE "max abs error [^ ]+ = [^ ]+ of max" "$OUT/fix16_$p.log" | awk '{print $6}' | sort -g | tail -1 | sed "s/^/$p fp16 worst relative error: /"
done
echo "== [$((SECONDS - T0))s] cpu vs cuda at full size"
(cd internal/bench && SDGO_TEST_DEVICE=cuda timeout 150 ../../.devbin/bench.test -test.v -test.run DeviceMatches >"$OUT/fullsize.log" 2>&1; echo "fullsize rc=$?")
grep -E "cosine|--- FAIL|panic" "$OUT/fullsize.log" | head -30
echo "== [$((SECONDS - T0))s] sd bench"
for p in ${SDGO_BENCH_PRECISIONS:-fp16}; do
	for spec in "--arch sd15 --component text --batch 2 --iters 20" \
		"--arch sd15 --component unet --size 512 --batch 2 --iters 10" \
		"--arch sd15 --component vae-decode --size 512 --iters 5" \
		"--arch sdxl --component unet --size 1024 --batch 2 --iters 5" \
		"--arch sd15 --component vae-decode --size 1024 --iters 3"; do
		# shellcheck disable=SC2086
		timeout 90 .devbin/sd bench --device cuda --precision $p --json $spec 2>&1 | tail -1
	done
done
echo "== [$((SECONDS - T0))s] fp16 UNet and VAE with the earlier attention (GEMM) and convolution (im2col) paths"
for env in SDGO_CUDA_ATTENTION=gemm SDGO_CUDA_CONV=im2col; do
	for spec in "--arch sd15 --component unet --size 512 --batch 2 --iters 10" \
		"--arch sdxl --component unet --size 1024 --batch 2 --iters 5" \
		"--arch sd15 --component vae-decode --size 512 --iters 5"; do
		# shellcheck disable=SC2086
		echo "$env $(env $env timeout 90 .devbin/sd bench --device cuda --precision fp16 --json $spec 2>&1 | tail -1)"
	done
done
echo "== [$((SECONDS - T0))s] VAE decode 512 in tf32 (what a force_upcast VAE could run in: PyTorch's cuDNN convolutions default to TF32)"
timeout 90 .devbin/sd bench --device cuda --precision tf32 --json --arch sd15 --component vae-decode --size 512 --iters 5 2>&1 | tail -1
echo "== [$((SECONDS - T0))s] whole generation, SD 1.5 512, 20 steps, fp16"
timeout 150 .devbin/sd bench --device cuda --arch sd15 --component pipeline --steps 20 --iters 3 --json 2>&1 | tail -1
echo "== [$((SECONDS - T0))s] where the device time goes (sd bench --profile: every operation waits for the device)"
for spec in "--arch sd15 --component unet --size 512 --batch 2 --iters 2" \
	"--arch sdxl --component unet --size 1024 --batch 2 --iters 2" \
	"--arch sd15 --component vae-decode --size 512 --iters 2"; do
	echo "-- $spec"
	# shellcheck disable=SC2086
	timeout 90 .devbin/sd bench --device cuda --profile $spec 2>&1 | head -16
done
echo "== done [$((SECONDS - T0))s]"

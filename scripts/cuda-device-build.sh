#!/usr/bin/env bash
# cuda-device-build.sh: build, on a machine with Go, the test binaries and the sd
# binary that scripts/cuda-device-run.sh runs on a GPU machine without Go. They
# go to .devbin/ (git-ignored), stripped and xz-compressed so that they travel
# beside the fixtures in a small working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .devbin
rm -f .devbin/*.test .devbin/*.xz .devbin/sd
export CGO_ENABLED=0
flags=(-ldflags='-s -w')
go test -c "${flags[@]}" -o .devbin/cuda.test ./kernels/cuda
for p in unet vae clip; do go test -c "${flags[@]}" -o .devbin/$p.test ./diffusion/$p; done
go test -c "${flags[@]}" -o .devbin/diffusion.test ./diffusion
go test -c "${flags[@]}" -o .devbin/bench.test ./internal/bench
go build "${flags[@]}" -o .devbin/sd ./cmd/sd
xz -9 -T0 .devbin/*.test .devbin/sd
du -sh .devbin

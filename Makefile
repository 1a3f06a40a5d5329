# sdgo: build, test, generate, benchmark.
SHELL := /bin/bash
GO ?= go
# Files written by `go generate`; `make test` checks that regenerating changes none of them.
GENERATED = kernels/asm/*_amd64.s kernels/asm/*_stub_amd64.go kernels/asm/*_arm64.s kernels/asm/*_stub_arm64.go diffusion/tokenizer/nfc_tables.go diffusion/tokenizer/*.gz

.PHONY: all build test vet check-fmt unit noasm test-arm64 generate check-generate cross bench fmt ptx

all: build

build:
	$(GO) build ./...

## test: everything CI runs.
test: vet check-fmt unit noasm test-arm64 check-generate cross

vet:
	$(GO) vet ./...
	$(GO) vet -tags noasm ./...
	GOARCH=arm64 $(GO) vet ./kernels/...
	GOOS=darwin GOARCH=arm64 $(GO) vet ./kernels/metal ./tensor/... ./cmd/...
	cd gen && $(GO) vet ./...

check-fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

unit:
	$(GO) test ./...

# The pure-Go fallbacks, as targets without assembly (and the noasm tag) run them.
noasm:
	$(GO) test -tags noasm ./...

# The arm64 (NEON) kernels: the kernels/asm and tensor tests, cross-compiled and run
# under user-mode emulation (Debian's qemu-user; .ci/run installs it), -test.short to
# keep the run to a minute or so; and gen/neon's check that every WORD encoding
# disassembles to the instruction its comment names. Emulated timings mean nothing:
# run the benchmarks on arm64 hardware.
QEMU_AARCH64 ?= $(shell command -v qemu-aarch64 || command -v qemu-aarch64-static)
ARM64_TEST_PKGS = kernels/asm tensor

test-arm64:
	@if [ -z "$(QEMU_AARCH64)" ]; then echo "test-arm64: qemu-aarch64 not found (apt-get install qemu-user)"; exit 1; fi
	cd gen && $(GO) test ./neon
	@bin=$$(mktemp -d) && trap 'rm -rf "$$bin"' EXIT && \
	for p in $(ARM64_TEST_PKGS); do \
		echo "arm64 under $(QEMU_AARCH64): ./$$p"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) test -c -o "$$bin/$${p//\//_}.test" ./$$p || exit 1; \
		(cd $$p && $(QEMU_AARCH64) "$$bin/$${p//\//_}.test" -test.short) || exit 1; \
	done

generate:
	$(GO) generate ./...

# Regenerating must leave the committed output unchanged.
check-generate:
	@before=$$(sha256sum $(GENERATED)); \
	$(GO) generate ./... || exit 1; \
	after=$$(sha256sum $(GENERATED)); \
	if [ "$$before" != "$$after" ]; then \
		echo "go generate changed the generated files: run 'make generate' and commit"; \
		diff <(echo "$$before") <(echo "$$after"); exit 1; \
	fi; echo "generated files are current"

# Every target must build from day one, with Go fallbacks where kernels are missing.
cross:
	GOOS=darwin GOARCH=arm64 $(GO) build ./...
	GOOS=linux GOARCH=arm64 $(GO) build ./...
	GOOS=windows GOARCH=amd64 $(GO) build ./...
	GOOS=linux GOARCH=amd64 $(GO) build -tags noasm ./...

## bench: the kernel and operator benchmarks (GFLOP/s and ms).
bench:
	$(GO) test -run '^$$' -bench 'Sgemm|PeakFMA' ./kernels/asm
	$(GO) test -run '^$$' -bench . -benchtime 3x ./tensor

fmt:
	gofmt -w $$(git ls-files '*.go')

## ptx: compile the CUDA C kernels (kernels/cuda/*.cu) to the PTX that package
## kernels/cuda embeds; needs nvcc (CUDA 11.8 or newer); commit the .ptx files.
## One PTX per source for the virtual architecture compute_80: PTX holds no
## machine code, the driver JIT-compiles it for the GPU it is loaded on (sm_80,
## sm_86, sm_89, sm_90 and later; the result is cached by the driver), so one file
## serves A100 and H100/H200, whereas PTX for compute_90 would not load on sm_80.
## The first line of each .ptx records the sha256 of its source, which the
## package's tests compare, so a stale PTX cannot ship.
NVCC ?= nvcc
CUDA_SRC = $(wildcard kernels/cuda/*.cu)

ptx:
	@command -v $(NVCC) >/dev/null || { echo "ptx: $(NVCC) not found (install the CUDA toolkit)"; exit 1; }
	@for src in $(CUDA_SRC); do \
		out=$${src%.cu}.ptx; \
		sum=$$(sha256sum "$$src" | cut -d' ' -f1); \
		$(NVCC) -ptx -arch=compute_80 -O3 -o "$$out.tmp" "$$src" || exit 1; \
		{ echo "// sdgo-source: $$(basename "$$src") sha256 $$sum"; cat "$$out.tmp"; } > "$$out" && rm -f "$$out.tmp" || exit 1; \
		echo "$$out"; \
	done

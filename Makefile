# sdgo: build, test, generate, benchmark.
SHELL := /bin/bash
GO ?= go
# Files written by `go generate`; `make test` checks that regenerating changes none of them.
GENERATED = kernels/asm/*_amd64.s kernels/asm/*_stub_amd64.go diffusion/tokenizer/nfc_tables.go diffusion/tokenizer/*.gz

.PHONY: all build test vet check-fmt unit noasm generate check-generate cross bench fmt

all: build

build:
	$(GO) build ./...

## test: everything CI runs.
test: vet check-fmt unit noasm check-generate cross

vet:
	$(GO) vet ./...
	$(GO) vet -tags noasm ./...
	cd gen && $(GO) vet ./...

check-fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

unit:
	$(GO) test ./...

# The pure-Go fallbacks, as non-amd64 targets run them.
noasm:
	$(GO) test -tags noasm ./...

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

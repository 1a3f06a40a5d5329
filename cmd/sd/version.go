package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/sdgo/sdgo/kernels/asm"
)

func init() {
	register(command{name: "version", summary: "print the version, Go toolchain and CPU kernels", run: runVersion})
}

func runVersion(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "version", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	fmt.Fprintf(e.stdout, "sd %s %s %s/%s kernels=%s\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH, asm.Features())
	return nil
}

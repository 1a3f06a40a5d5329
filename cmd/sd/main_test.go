package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// sd runs the command line in-process and returns its exit status and output.
func sd(t *testing.T, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	status = run(context.Background(), args, &out, &errb)
	return status, out.String(), errb.String()
}

func TestUsage(t *testing.T) {
	status, out, _ := sd(t, "help")
	require.Equal(t, 0, status)
	require.Contains(t, out, "version")
	status, _, errOut := sd(t, "frobnicate")
	require.Equal(t, 2, status)
	require.Contains(t, errOut, `unknown command "frobnicate"`)
	status, _, errOut = sd(t, "version", "--bogus")
	require.Equal(t, 2, status)
	require.Contains(t, errOut, "bogus")
}

func TestVersion(t *testing.T) {
	status, out, _ := sd(t, "version")
	require.Equal(t, 0, status)
	require.Contains(t, out, "kernels=")
}

//go:build !unix

package tensor

import "errors"

const canMapAnon = false

func mapAnon(int) ([]byte, error) {
	return nil, errors.New("tensor: no anonymous mappings on this platform")
}

func unmapAnon([]byte) {}

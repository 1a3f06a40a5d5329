// This module holds the reference fixtures (see fixtures/README.md). It is a module
// of its own so that `go get github.com/sdgo/sdgo` does not download it.
module github.com/sdgo/sdgo/testdata

go 1.26

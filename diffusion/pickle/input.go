package pickle

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// input is what the unpickler reads: a byte source that knows how much of it is
// left, so that no declared length is allocated before it is known to exist.
type input interface {
	readByte() (byte, error)
	// read returns the next n bytes; the slice may alias the input.
	read(n int64) ([]byte, error)
	// readLine returns the bytes up to (without) the next '\n'.
	readLine() ([]byte, error)
	// offset is the position of the next byte.
	offset() int64
	// remaining is the number of bytes left.
	remaining() int64
}

var errTruncated = errors.New("unexpected end of data")

// bytesInput reads a pickle held in memory.
type bytesInput struct {
	b   []byte
	pos int
}

func (in *bytesInput) readByte() (byte, error) {
	if in.pos >= len(in.b) {
		return 0, errTruncated
	}
	c := in.b[in.pos]
	in.pos++
	return c, nil
}

func (in *bytesInput) read(n int64) ([]byte, error) {
	if n < 0 || n > in.remaining() {
		return nil, errTruncated
	}
	s := in.b[in.pos : in.pos+int(n)]
	in.pos += int(n)
	return s, nil
}

func (in *bytesInput) readLine() ([]byte, error) {
	i := bytes.IndexByte(in.b[in.pos:], '\n')
	if i < 0 {
		return nil, errTruncated
	}
	s := in.b[in.pos : in.pos+i]
	in.pos += i + 1
	return s, nil
}

func (in *bytesInput) offset() int64    { return int64(in.pos) }
func (in *bytesInput) remaining() int64 { return int64(len(in.b) - in.pos) }

// streamInput reads pickles from a file, buffered, keeping track of the
// position so that what follows the pickles (legacy storages) can be found.
type streamInput struct {
	br  *bufio.Reader
	pos int64
	end int64
}

func newStreamInput(r io.ReaderAt, start, end int64) *streamInput {
	return &streamInput{br: bufio.NewReaderSize(io.NewSectionReader(r, start, end-start), 64<<10), pos: start, end: end}
}

func (in *streamInput) readByte() (byte, error) {
	c, err := in.br.ReadByte()
	if err != nil {
		return 0, ioErr(err)
	}
	in.pos++
	return c, nil
}

func (in *streamInput) read(n int64) ([]byte, error) {
	if n < 0 || n > in.remaining() {
		return nil, errTruncated
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(in.br, b); err != nil {
		return nil, ioErr(err)
	}
	in.pos += n
	return b, nil
}

func (in *streamInput) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := in.br.ReadSlice('\n')
		in.pos += int64(len(chunk))
		line = append(line, chunk...)
		if err == nil {
			return line[:len(line)-1], nil
		}
		if err != bufio.ErrBufferFull {
			return nil, ioErr(err)
		}
	}
}

func (in *streamInput) offset() int64    { return in.pos }
func (in *streamInput) remaining() int64 { return in.end - in.pos }

func ioErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errTruncated
	}
	return err
}

// The upload spool: an upload's body is written, as it arrives, to a temporary file in the data
// directory, encrypted under a key that lives only in this process's memory, so receiving an upload holds
// a few buffers of memory whatever its size and however slowly it comes. The file is unlinked as soon as
// it is created: it has no name while it is written, and nothing of it is left on disk once it is closed
// or the process ends, even by kill -9 (its blocks are freed with the last descriptor).
//
// The intake, the package reader and the store take a package as one []byte (the package format is
// checked as a whole, S/MIME layers are opened as a whole, and the store seals the content as one
// AES-GCM message), so once an upload is complete it is read back into memory under the memory budget
// all uploads share (Handler.load): memory is held only while the package is checked and committed, not
// while it is received.

package api

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// spoolChunk is the plaintext size of one sealed chunk of the spool.
const spoolChunk = 64 << 10

// spool is one upload's encrypted temporary file: written once, in order, then read back in order.
type spool struct {
	f       *os.File
	aead    cipher.AEAD
	buf     []byte // the chunk being filled
	scratch []byte // a sealed or opened chunk
	size    int64  // plaintext bytes written
	chunks  uint64 // chunks sealed and written
	done    bool   // finish was called: no more writes
}

// newSpool creates the spool file in dir (the system's temporary directory when dir is empty) and
// unlinks it at once.
func newSpool(dir string) (*spool, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, ".cafgate-upload-*")
	if err != nil {
		return nil, fmt.Errorf("creating the upload spool: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("unlinking the upload spool: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		f.Close()
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		f.Close()
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &spool{f: f, aead: aead, buf: make([]byte, 0, spoolChunk), scratch: make([]byte, 0, spoolChunk+aead.Overhead())}, nil
}

// Write appends p to the spool.
func (s *spool) Write(p []byte) (int, error) {
	if s.done {
		return 0, errors.New("upload spool: write after finish")
	}
	n := 0
	for len(p) > 0 {
		k := copy(s.buf[len(s.buf):cap(s.buf)], p)
		s.buf = s.buf[:len(s.buf)+k]
		p, n = p[k:], n+k
		if len(s.buf) == cap(s.buf) {
			if err := s.flush(); err != nil {
				return n, err
			}
		}
	}
	s.size += int64(n)
	return n, nil
}

// nonce is chunk i's nonce: its index, so no two chunks under the key share one.
func (s *spool) nonce(i uint64) []byte {
	n := make([]byte, s.aead.NonceSize())
	binary.BigEndian.PutUint64(n[len(n)-8:], i)
	return n
}

func (s *spool) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	s.scratch = s.aead.Seal(s.scratch[:0], s.nonce(s.chunks), s.buf, nil)
	if _, err := s.f.Write(s.scratch); err != nil {
		return spoolWriteError{err}
	}
	s.chunks++
	s.buf = s.buf[:0]
	return nil
}

// finish writes the last chunk; after it the spool can be read.
func (s *spool) finish() error {
	if s.done {
		return nil
	}
	s.done = true
	return s.flush()
}

// reader reads the spool from its start. One reader at a time.
func (s *spool) reader() (io.Reader, error) {
	if !s.done {
		return nil, errors.New("upload spool: read before finish")
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return &spoolReader{s: s}, nil
}

// Close closes (and so frees) the spool file.
func (s *spool) Close() error { return s.f.Close() }

type spoolReader struct {
	s     *spool
	chunk uint64
	plain []byte // the opened chunk not yet read
}

func (r *spoolReader) Read(p []byte) (int, error) {
	if len(r.plain) == 0 {
		if r.chunk == r.s.chunks {
			return 0, io.EOF
		}
		n := spoolChunk + r.s.aead.Overhead()
		if r.chunk == r.s.chunks-1 { // the last chunk may be short
			n = int(r.s.size-int64(r.chunk)*spoolChunk) + r.s.aead.Overhead()
		}
		sealed := r.s.scratch[:n]
		if _, err := io.ReadFull(r.s.f, sealed); err != nil {
			return 0, fmt.Errorf("reading the upload spool: %w", err)
		}
		plain, err := r.s.aead.Open(r.s.buf[:0], r.s.nonce(r.chunk), sealed, nil)
		if err != nil {
			return 0, fmt.Errorf("upload spool chunk %d does not open: %w", r.chunk, err)
		}
		r.plain, r.chunk = plain, r.chunk+1
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

// spoolWriteError is a failure to write the spool (a full or failing disk), told apart from a failure
// to read the request.
type spoolWriteError struct{ err error }

func (e spoolWriteError) Error() string { return "writing the upload spool: " + e.err.Error() }
func (e spoolWriteError) Unwrap() error { return e.err }

package smtpd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"cafgate/gateway/fault"
)

const firstChunk = 64 << 10

// bufPools keep message buffers between messages, one pool per size class (firstChunk << i), so a
// session does not allocate (and the runtime zero, fault in, and collect) a fresh buffer chain for
// every large message: at one connection sending 1 MiB messages, that garbage set the pace of
// garbage collection. A buffer goes back only once the message is no longer used (release).
var bufPools [16]sync.Pool // up to firstChunk << 15 = 2 GiB; larger classes are not pooled

// getBuf returns an empty buffer of capacity size, from the pool when size is a pooled class.
func getBuf(size int64) []byte {
	if i, ok := bufClass(size); ok {
		if b, _ := bufPools[i].Get().(*[]byte); b != nil {
			return (*b)[:0]
		}
	}
	return make([]byte, 0, size)
}

// putBuf gives b back to its pool; a buffer of another capacity is left to the collector.
func putBuf(b []byte) {
	if i, ok := bufClass(int64(cap(b))); ok {
		b = b[:0]
		bufPools[i].Put(&b)
	}
}

// bufClass is the pool of a capacity: firstChunk times a power of two.
func bufClass(size int64) (int, bool) {
	for i := range bufPools {
		if size == firstChunk<<i {
			return i, true
		}
	}
	return 0, false
}

// readMessage reads a message into memory through MaxMessageBytes and the server's memory budget,
// refreshing the read deadline while data arrives so ReadTimeout bounds idleness, not the transfer.
// release gives the memory back (and the buffer to its pool); call it once nothing uses the content
// any more. On error, go-smtp itself reads and discards the rest of the DATA up to the end-of-data
// line, so the session stays in step (for BDAT, it discards the rest of each chunk); the lineGuard
// bounds that to MaxDrainBytes and then sends the refusal itself and closes the connection.
func (s *session) readMessage(r io.Reader) (content []byte, release func(), err error) {
	limit := s.srv.opt.MaxMessageBytes
	var held int64
	var buf []byte
	release = func() {
		if buf != nil {
			putBuf(buf)
			buf = nil
		}
		s.srv.mem.Give(held)
	}
	for {
		if len(buf) == cap(buf) {
			size := min(max(2*int64(cap(buf)), firstChunk), limit+1)
			if !s.srv.mem.Take(size - int64(cap(buf))) {
				return nil, release, s.srv.refuse(fault.StoreUnavailable,
					"The gateway is too busy to take this message just now; nothing was accepted. Please try again later.",
					fmt.Errorf("message buffer budget of %d bytes exhausted", s.srv.opt.MaxBufferedBytes), s.client, "data")
			}
			held += size - int64(cap(buf))
			next := append(getBuf(size), buf...)
			if buf != nil {
				putBuf(buf)
			}
			buf = next
		}
		n, rerr := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if n > 0 {
			_ = s.nc.SetReadDeadline(time.Now().Add(s.srv.opt.ReadTimeout))
		}
		if int64(len(buf)) > limit {
			return nil, release, s.tooBig()
		}
		switch {
		case rerr == io.EOF:
			return buf, release, nil
		case rerr != nil:
			return nil, release, s.readFailed(rerr)
		}
	}
}

func (s *session) tooBig() error {
	return s.srv.refuse(fault.TooBig, fmt.Sprintf("The message is larger than the gateway accepts (%d bytes at most).", s.srv.opt.MaxMessageBytes),
		fmt.Errorf("message over %d bytes", s.srv.opt.MaxMessageBytes), s.client, "data")
}

// readFailed answers an error from go-smtp's data reader.
func (s *session) readFailed(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge):
		return s.tooBig()
	case errors.Is(err, smtp.ErrTooLongLine):
		return s.srv.refuse(fault.BadMessage, fmt.Sprintf("A line of the message is longer than %d bytes; it was not accepted.", s.srv.opt.MaxLineLength),
			err, s.client, "data")
	case errors.As(err, &ne) && ne.Timeout():
		return s.srv.refuseQuietly(fault.Internal, "The message did not arrive in time; nothing was accepted.", err, s.client, "data")
	}
	return s.srv.refuseQuietly(fault.Internal, "The message was not received completely; nothing was accepted.", err, s.client, "data")
}

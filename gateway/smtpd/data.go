package smtpd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/emersion/go-smtp"

	"cafgate/gateway/fault"
)

const firstChunk = 64 << 10

// readMessage reads a message into memory through MaxMessageBytes and the server's memory budget,
// refreshing the read deadline while data arrives so ReadTimeout bounds idleness, not the transfer.
// release gives the memory back; call it once the content is no longer needed. On error, go-smtp
// itself reads and discards the rest of the DATA up to the end-of-data line, so the session stays in
// step (for BDAT, it discards the rest of each chunk); the lineGuard bounds that to MaxDrainBytes and
// then sends the refusal itself and closes the connection.
func (s *session) readMessage(r io.Reader) (content []byte, release func(), err error) {
	limit := s.srv.opt.MaxMessageBytes
	var held int64
	release = func() { s.srv.mem.Give(held) }
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			size := min(max(2*int64(cap(buf)), firstChunk), limit+1)
			if !s.srv.mem.Take(size - int64(cap(buf))) {
				return nil, release, s.srv.refuse(fault.StoreUnavailable,
					"The gateway is too busy to take this message just now; nothing was accepted. Please try again later.",
					fmt.Errorf("message buffer budget of %d bytes exhausted", s.srv.opt.MaxBufferedBytes), s.client, "data")
			}
			held += size - int64(cap(buf))
			buf = append(make([]byte, 0, size), buf...)
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

package imapd

import (
	"bufio"
	"bytes"
	"context"
	"errors"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"cafgate/mailbox"
)

// Fetch answers FETCH and UID FETCH. A body section fetched without PEEK in a read-write folder sets
// \Seen first, and the answer then carries the new FLAGS. Each message's data is read (and decrypted:
// the header section alone when that is all that was asked) before its answer starts, so a store error
// never leaves half an answer on the wire.
func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	v := s.sel
	if v == nil {
		return errNotSelected
	}
	idx := v.resolve(numSet)
	if len(idx) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(s.srv.ctx)
	defer cancel()
	seen, err := s.markSeen(ctx, v, idx, options)
	if err != nil {
		return err
	}
	var infos map[uint32]mailbox.MessageInfo
	if options.InternalDate || options.RFC822Size {
		if infos, err = s.infos(ctx, v, idx); err != nil {
			return err
		}
	}
	needHeader, needContent := fetchNeeds(options)
	for _, i := range idx {
		uid := v.uids[i]
		m := &fetched{uid: uid}
		if err := s.load(ctx, v, m, needHeader, needContent); errors.Is(err, mailbox.ErrNotFound) {
			continue // expunged since the view was made; the next poll reports it
		} else if err != nil {
			return s.storeError(err, "fetch")
		}
		if err := writeFetch(w.CreateMessage(uint32(i+1)), m, v.flags[uid], infos[uid], options, seen[uid]); err != nil {
			return err
		}
	}
	return nil
}

// markSeen sets \Seen on the messages a non-PEEK body fetch reads, and returns those that changed.
func (s *session) markSeen(ctx context.Context, v *view, idx []int, options *imap.FetchOptions) (map[uint32]bool, error) {
	if v.readOnly || !readsBody(options) {
		return nil, nil
	}
	var uids []uint32
	for _, i := range idx {
		if !mailbox.HasFlag(v.flags[v.uids[i]], mailbox.FlagSeen) {
			uids = append(uids, v.uids[i])
		}
	}
	if len(uids) == 0 {
		return nil, nil
	}
	opCtx, cancel := context.WithTimeout(ctx, s.srv.opt.OpTimeout)
	defer cancel()
	changed, err := s.box.StoreFlags(opCtx, v.folderID, uids, mailbox.FlagsAdd, []string{mailbox.FlagSeen})
	if err != nil {
		return nil, s.storeError(err, "fetch")
	}
	seen := make(map[uint32]bool, len(changed))
	for uid, f := range changed {
		v.flags[uid] = f
		seen[uid] = true
	}
	if len(changed) > 0 {
		s.changed()
	}
	return seen, nil
}

func readsBody(o *imap.FetchOptions) bool {
	for _, bs := range o.BodySection {
		if !bs.Peek {
			return true
		}
	}
	for _, bs := range o.BinarySection {
		if !bs.Peek {
			return true
		}
	}
	return false
}

// fetchNeeds tells whether the answer needs the header section, the whole message, or neither.
func fetchNeeds(o *imap.FetchOptions) (header, content bool) {
	header = o.Envelope
	content = o.BodyStructure != nil || len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0
	for _, bs := range o.BodySection {
		if len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierHeader {
			header = true
		} else {
			content = true
		}
	}
	return header && !content, content
}

func (s *session) infos(ctx context.Context, v *view, idx []int) (map[uint32]mailbox.MessageInfo, error) {
	opCtx, cancel := context.WithTimeout(ctx, s.srv.opt.OpTimeout)
	defer cancel()
	list, err := s.box.MessageInfos(opCtx, v.folderID, v.uids[idx[0]], v.uids[idx[len(idx)-1]])
	if err != nil {
		return nil, s.storeError(err, "fetch")
	}
	out := make(map[uint32]mailbox.MessageInfo, len(list))
	for _, mi := range list {
		out[mi.UID] = mi
	}
	return out, nil
}

// fetched is one message's data for an answer.
type fetched struct {
	uid     uint32
	header  []byte // the header section (also set when content is)
	content []byte
}

func (s *session) load(ctx context.Context, v *view, m *fetched, header, content bool) error {
	opCtx, cancel := context.WithTimeout(ctx, s.srv.opt.OpTimeout)
	defer cancel()
	var err error
	switch {
	case content:
		if m.content, err = s.box.Content(opCtx, v.folderID, m.uid); err == nil {
			m.header = mailbox.HeaderSection(m.content)
		}
	case header:
		m.header, err = s.box.Header(opCtx, v.folderID, m.uid)
	}
	return err
}

// writeFetch writes one message's FETCH answer and closes it.
func writeFetch(rw *imapserver.FetchResponseWriter, m *fetched, flags []string, info mailbox.MessageInfo,
	o *imap.FetchOptions, seen bool) error {
	rw.WriteUID(imap.UID(m.uid))
	if o.Flags || seen {
		rw.WriteFlags(imapFlags(flags))
	}
	if o.InternalDate {
		rw.WriteInternalDate(info.InternalDate)
	}
	if o.RFC822Size {
		rw.WriteRFC822Size(info.Size)
	}
	if o.Envelope {
		rw.WriteEnvelope(envelope(m.header))
	}
	if o.BodyStructure != nil {
		rw.WriteBodyStructure(imapserver.ExtractBodyStructure(bytes.NewReader(m.content)))
	}
	for _, bs := range o.BodySection {
		data := bodySection(m, bs)
		if err := writeAll(rw.WriteBodySection(bs, int64(len(data))), data); err != nil {
			rw.Close()
			return err
		}
	}
	for _, bs := range o.BinarySection {
		data := imapserver.ExtractBinarySection(bytes.NewReader(m.content), bs)
		if err := writeAll(rw.WriteBinarySection(bs, int64(len(data))), data); err != nil {
			rw.Close()
			return err
		}
	}
	for _, bss := range o.BinarySectionSize {
		rw.WriteBinarySectionSize(bss, imapserver.ExtractBinarySectionSize(bytes.NewReader(m.content), bss))
	}
	return rw.Close()
}

// bodySection returns the bytes of one BODY[...] item: the stored bytes themselves for the whole
// message and the whole header (so signatures over them stay intact), go-imap's extraction otherwise.
func bodySection(m *fetched, bs *imap.FetchItemBodySection) []byte {
	filtered := len(bs.HeaderFields) > 0 || len(bs.HeaderFieldsNot) > 0
	switch {
	case len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierNone:
		return partial(m.content, bs.Partial)
	case len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierHeader && !filtered:
		return partial(m.header, bs.Partial)
	case len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierHeader:
		return imapserver.ExtractBodySection(bytes.NewReader(m.header), bs)
	}
	return imapserver.ExtractBodySection(bytes.NewReader(m.content), bs)
}

// partial returns the <offset.size> slice of b (all of b without one).
func partial(b []byte, p *imap.SectionPartial) []byte {
	if p == nil {
		return b
	}
	if p.Offset < 0 || p.Offset >= int64(len(b)) {
		return nil
	}
	b = b[p.Offset:]
	if p.Size >= 0 && p.Size < int64(len(b)) {
		b = b[:p.Size]
	}
	return b
}

func writeAll(wc interface {
	Write([]byte) (int, error)
	Close() error
}, data []byte) error {
	_, werr := wc.Write(data)
	cerr := wc.Close()
	return errors.Join(werr, cerr)
}

// envelope parses a header section into an ENVELOPE (nil when it cannot be read).
func envelope(header []byte) *imap.Envelope {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(header)))
	if err != nil {
		return nil
	}
	return imapserver.ExtractEnvelope(h)
}

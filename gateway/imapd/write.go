package imapd

import (
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"cafgate/mailbox"
)

// Store answers STORE and UID STORE: the flags change in one transaction, and unless .SILENT the new
// flags of every message named are written back.
func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, _ *imap.StoreOptions) error {
	v := s.sel
	if v == nil {
		return errNotSelected
	}
	if v.readOnly {
		return errReadOnly
	}
	idx := v.resolve(numSet)
	if len(idx) == 0 {
		return nil
	}
	op := map[imap.StoreFlagsOp]mailbox.FlagOp{imap.StoreFlagsSet: mailbox.FlagsSet, imap.StoreFlagsAdd: mailbox.FlagsAdd,
		imap.StoreFlagsDel: mailbox.FlagsRemove}[flags.Op]
	ctx, cancel := s.ctx()
	defer cancel()
	changed, err := s.box.StoreFlags(ctx, v.folderID, uidsAt(v, idx), op, storeFlags(flags.Flags))
	if err != nil {
		return s.storeError(err, "store")
	}
	for uid, f := range changed {
		v.flags[uid] = f
	}
	if len(changed) > 0 {
		s.changed()
	}
	if flags.Silent {
		return nil
	}
	for _, i := range idx {
		rw := w.CreateMessage(uint32(i + 1))
		rw.WriteUID(imap.UID(v.uids[i]))
		rw.WriteFlags(imapFlags(v.flags[v.uids[i]]))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// Expunge answers EXPUNGE, UID EXPUNGE and CLOSE: it removes the messages flagged \Deleted (of those
// named, for UID EXPUNGE) and writes their EXPUNGE answers.
func (s *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	v := s.sel
	if v == nil {
		return errNotSelected
	}
	if v.readOnly {
		return nil // CLOSE after EXAMINE expunges nothing; EXPUNGE in a read-only folder has nothing to do
	}
	var only []uint32
	if uids != nil {
		only = uidsAt(v, v.resolve(*uids))
		if len(only) == 0 {
			return nil
		}
	}
	ctx, cancel := s.ctx()
	defer cancel()
	gone, err := s.box.Expunge(ctx, v.folderID, only)
	if err != nil {
		return s.storeError(err, "expunge")
	}
	if len(gone) == 0 {
		return nil
	}
	s.changed()
	set := make(map[uint32]bool, len(gone))
	for _, uid := range gone {
		if v.index(uid) >= 0 {
			set[uid] = true
		}
	}
	return v.expunge(set, w.WriteExpunge)
}

// Copy answers COPY and UID COPY with COPYUID.
func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	v := s.sel
	if v == nil {
		return nil, errNotSelected
	}
	idx := v.resolve(numSet)
	if len(idx) == 0 {
		return nil, nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	res, err := s.box.Copy(ctx, v.folderID, uidsAt(v, idx), dest, false)
	if err != nil {
		return nil, s.copyError(err, "copy")
	}
	if len(res.Source) == 0 {
		return nil, nil
	}
	s.changed()
	return copyData(res), nil
}

// Move answers MOVE and UID MOVE: COPYUID, then the EXPUNGE of each message moved.
func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	v := s.sel
	if v == nil {
		return errNotSelected
	}
	if v.readOnly {
		return errReadOnly
	}
	idx := v.resolve(numSet)
	if len(idx) == 0 {
		return nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	res, err := s.box.Copy(ctx, v.folderID, uidsAt(v, idx), dest, true)
	if err != nil {
		return s.copyError(err, "move")
	}
	if len(res.Source) == 0 {
		return nil
	}
	s.changed()
	if err := w.WriteCopyData(copyData(res)); err != nil {
		return err
	}
	moved := make(map[uint32]bool, len(res.Source))
	for _, uid := range res.Source {
		moved[uid] = true
	}
	return v.expunge(moved, w.WriteExpunge)
}

// Append answers APPEND with APPENDUID. The literal's size was checked against AppendLimit before
// the client sent it.
func (s *session) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	limit := s.srv.opt.MaxMessageBytes
	if r.Size() > limit {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig, Text: "The message is larger than the gateway accepts."}
	}
	content, err := io.ReadAll(io.LimitReader(r, limit))
	if err != nil {
		return nil, err
	}
	if len(content) == 0 {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "An empty message cannot be stored."}
	}
	ctx, cancel := s.ctx()
	defer cancel()
	res, err := s.box.Append(ctx, name, content, storeFlags(options.Flags), options.Time)
	if err != nil {
		return nil, s.copyError(err, "append")
	}
	s.changed()
	return &imap.AppendData{UID: imap.UID(res.UID), UIDValidity: res.UIDValidity}, nil
}

// copyError is storeError with TRYCREATE for a destination folder that does not exist.
func (s *session) copyError(err error, op string) error {
	e := s.storeError(err, op)
	if ie, ok := e.(*imap.Error); ok && ie.Code == imap.ResponseCodeNonExistent {
		ie.Code = imap.ResponseCodeTryCreate
	}
	return e
}

func copyData(res *mailbox.Copied) *imap.CopyData {
	d := &imap.CopyData{UIDValidity: res.UIDValidity}
	for i := range res.Source {
		d.SourceUIDs.AddNum(imap.UID(res.Source[i]))
		d.DestUIDs.AddNum(imap.UID(res.Dest[i]))
	}
	return d
}

func uidsAt(v *view, idx []int) []uint32 {
	out := make([]uint32, len(idx))
	for i, x := range idx {
		out[i] = v.uids[x]
	}
	return out
}

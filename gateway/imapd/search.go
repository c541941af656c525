package imapd

import (
	"bytes"
	"context"
	"errors"
	"mime"
	"net/mail"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"cafgate/mailbox"
)

// Search answers SEARCH and UID SEARCH over the view: sequence and UID sets, flags, internal and sent
// dates, sizes, header fields, body and text (case-insensitive substrings of the stored bytes), NOT
// and OR. Message data is read only for the criteria that need it.
func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, _ *imap.SearchOptions) (*imap.SearchData, error) {
	v := s.sel
	if v == nil {
		return nil, errNotSelected
	}
	data := &imap.SearchData{}
	var seqs imap.SeqSet
	var uids imap.UIDSet
	if len(v.uids) > 0 {
		ctx, cancel := context.WithCancel(s.srv.ctx)
		defer cancel()
		all := v.resolve(imap.SeqSet{{Start: 1, Stop: 0}})
		var infos map[uint32]mailbox.MessageInfo
		if needsInfo(criteria) && len(all) > 0 {
			var err error
			if infos, err = s.infos(ctx, v, all); err != nil {
				return nil, err
			}
		}
		for _, i := range all {
			m := &candidate{s: s, ctx: ctx, v: v, seq: uint32(i + 1), uid: v.uids[i], info: infos[v.uids[i]]}
			ok, err := m.match(criteria)
			if errors.Is(err, mailbox.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, s.storeError(err, "search")
			}
			if !ok {
				continue
			}
			num := m.seq
			if kind == imapserver.NumKindUID {
				num = m.uid
			}
			seqs.AddNum(m.seq)
			uids.AddNum(imap.UID(m.uid))
			if data.Min == 0 || num < data.Min {
				data.Min = num
			}
			data.Max = max(data.Max, num)
			data.Count++
		}
	}
	data.All = seqs
	if kind == imapserver.NumKindUID {
		data.All = uids
	}
	return data, nil
}

func needsInfo(c *imap.SearchCriteria) bool {
	if !c.Since.IsZero() || !c.Before.IsZero() || c.Larger != 0 || c.Smaller != 0 {
		return true
	}
	for i := range c.Not {
		if needsInfo(&c.Not[i]) {
			return true
		}
	}
	for i := range c.Or {
		if needsInfo(&c.Or[i][0]) || needsInfo(&c.Or[i][1]) {
			return true
		}
	}
	return false
}

// candidate is one message being matched; its header and content are read at most once, when a
// criterion needs them.
type candidate struct {
	s        *session
	ctx      context.Context
	v        *view
	seq, uid uint32
	info     mailbox.MessageInfo
	m        *fetched
}

func (c *candidate) match(cr *imap.SearchCriteria) (bool, error) {
	if !c.matchMeta(cr) {
		return false, nil
	}
	if len(cr.Header) > 0 || !cr.SentSince.IsZero() || !cr.SentBefore.IsZero() {
		h, err := c.headerBytes()
		if err != nil {
			return false, err
		}
		if !matchHeader(h, cr) {
			return false, nil
		}
	}
	if len(cr.Body) > 0 || len(cr.Text) > 0 {
		all, err := c.contentBytes()
		if err != nil {
			return false, err
		}
		lowAll := bytes.ToLower(all)
		lowBody := lowAll[min(len(mailbox.HeaderSection(all)), len(lowAll)):]
		for _, t := range cr.Body {
			if !bytes.Contains(lowBody, bytes.ToLower([]byte(t))) {
				return false, nil
			}
		}
		for _, t := range cr.Text {
			if !bytes.Contains(lowAll, bytes.ToLower([]byte(t))) {
				return false, nil
			}
		}
	}
	for i := range cr.Not {
		ok, err := c.match(&cr.Not[i])
		if err != nil || ok {
			return false, err
		}
	}
	for i := range cr.Or {
		a, err := c.match(&cr.Or[i][0])
		if err != nil {
			return false, err
		}
		if a {
			continue
		}
		if b, err := c.match(&cr.Or[i][1]); err != nil || !b {
			return false, err
		}
	}
	return true, nil
}

// matchMeta checks the criteria that need no message data.
func (c *candidate) matchMeta(cr *imap.SearchCriteria) bool {
	n := uint32(len(c.v.uids))
	for _, set := range cr.SeqNum {
		if !inSeqSet(set, c.seq, n) {
			return false
		}
	}
	for _, set := range cr.UID {
		if !inUIDSet(set, c.uid, c.v.uids[len(c.v.uids)-1]) {
			return false
		}
	}
	flags := c.v.flags[c.uid]
	for _, f := range cr.Flag {
		if !mailbox.HasFlag(flags, string(f)) {
			return false
		}
	}
	for _, f := range cr.NotFlag {
		if mailbox.HasFlag(flags, string(f)) {
			return false
		}
	}
	if !inDates(c.info.InternalDate, cr.Since, cr.Before) {
		return false
	}
	return (cr.Larger == 0 || c.info.Size > cr.Larger) && (cr.Smaller == 0 || c.info.Size < cr.Smaller)
}

func inSeqSet(set imap.SeqSet, seq, last uint32) bool {
	for _, r := range set {
		lo, hi := staticRange(r.Start, r.Stop, last)
		if seq >= lo && seq <= hi {
			return true
		}
	}
	return false
}

func inUIDSet(set imap.UIDSet, uid, last uint32) bool {
	for _, r := range set {
		lo, hi := staticRange(uint32(r.Start), uint32(r.Stop), last)
		if uid >= lo && uid <= hi {
			return true
		}
	}
	return false
}

// inDates compares dates only, as RFC 3501 asks: since <= day(t) < before.
func inDates(t, since, before time.Time) bool {
	if since.IsZero() && before.IsZero() {
		return true
	}
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	return (since.IsZero() || !d.Before(since)) && (before.IsZero() || d.Before(before))
}

func matchHeader(head []byte, cr *imap.SearchCriteria) bool {
	msg, err := mail.ReadMessage(bytes.NewReader(head))
	if err != nil {
		return false
	}
	for _, f := range cr.Header {
		vals := msg.Header[textproto.CanonicalMIMEHeaderKey(f.Key)]
		if len(vals) == 0 {
			return false
		}
		if f.Value == "" {
			continue
		}
		found := false
		for _, v := range vals {
			if strings.Contains(strings.ToLower(decodeWords(v)), strings.ToLower(f.Value)) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if cr.SentSince.IsZero() && cr.SentBefore.IsZero() {
		return true
	}
	t, err := msg.Header.Date()
	return err == nil && inDates(t, cr.SentSince, cr.SentBefore)
}

func (c *candidate) headerBytes() ([]byte, error) {
	if c.m == nil {
		c.m = &fetched{uid: c.uid}
	}
	if c.m.header == nil {
		if err := c.s.load(c.ctx, c.v, c.m, true, false); err != nil {
			return nil, err
		}
	}
	return c.m.header, nil
}

func (c *candidate) contentBytes() ([]byte, error) {
	if c.m == nil {
		c.m = &fetched{uid: c.uid}
	}
	if c.m.content == nil {
		if err := c.s.load(c.ctx, c.v, c.m, false, true); err != nil {
			return nil, err
		}
	}
	return c.m.content, nil
}

// decodeWords decodes RFC 2047 encoded words; a value it cannot decode is matched as it is.
func decodeWords(v string) string {
	d, err := new(mime.WordDecoder).DecodeHeader(v)
	if err != nil {
		return v
	}
	return d
}

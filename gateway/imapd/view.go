package imapd

import (
	"context"
	"errors"
	"sort"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"cafgate/mailbox"
)

// view is the selected folder as this client knows it: sequence number n is uids[n-1]. Changes made in
// the store (by delivery, by other sessions) reach the client through sync, which compares the store
// with the view and writes EXISTS, EXPUNGE and FETCH FLAGS; changes this session makes itself are
// applied to the view as it reports them.
type view struct {
	folderID int64
	readOnly bool
	uids     []uint32
	flags    map[uint32][]string // the flags the client was last told, by UID
	gone     map[uint32]bool     // expunged in the store, not yet reported (EXPUNGE not allowed then)
	maxUID   uint32              // the largest UID the view ever held
	changes  int64               // the folder's change counter when the view last matched the store
}

func newView(snap *mailbox.Snapshot, readOnly bool) *view {
	v := &view{folderID: snap.Folder.ID, readOnly: readOnly, flags: map[uint32][]string{}, gone: map[uint32]bool{},
		changes: snap.Folder.Changes}
	for _, m := range snap.Messages {
		v.uids = append(v.uids, m.UID)
		v.flags[m.UID] = m.Flags
		v.maxUID = max(v.maxUID, m.UID)
	}
	return v
}

// sync reports the store's changes to the client. Without allowExpunge (during FETCH, STORE, SEARCH)
// expunged messages stay in the view, unreadable, until a later command may report them.
func (v *view) sync(ctx context.Context, box *mailbox.HostedUser, w *imapserver.UpdateWriter, allowExpunge bool) error {
	changes, err := box.Changes(ctx, v.folderID)
	if errors.Is(err, mailbox.ErrNoMailbox) {
		return nil // the folder was deleted by another session; the client learns it at its next SELECT
	}
	if err != nil || (changes == v.changes && (len(v.gone) == 0 || !allowExpunge)) {
		return nil // a store hiccup is no reason to fail the command this poll follows
	}
	snap, err := box.Snapshot(ctx, v.folderID)
	if err != nil {
		return nil
	}
	now := make(map[uint32][]string, len(snap.Messages))
	for _, m := range snap.Messages {
		now[m.UID] = m.Flags
	}
	for _, uid := range v.uids {
		if _, ok := now[uid]; !ok {
			v.gone[uid] = true
		}
	}
	if allowExpunge && len(v.gone) > 0 {
		if err := v.expunge(v.gone, w.WriteExpunge); err != nil {
			return err
		}
	}
	if err := v.appendNew(snap.Messages, w); err != nil {
		return err
	}
	v.changes = snap.Folder.Changes
	for i, uid := range v.uids {
		f, ok := now[uid]
		if !ok || sameFlags(f, v.flags[uid]) {
			continue
		}
		v.flags[uid] = f
		if err := w.WriteMessageFlags(uint32(i+1), imap.UID(uid), imapFlags(f)); err != nil {
			return err
		}
	}
	return nil
}

// appendNew adds the messages newer than the view and reports the new count.
func (v *view) appendNew(msgs []mailbox.MessageFlags, w *imapserver.UpdateWriter) error {
	added := false
	for _, m := range msgs {
		if m.UID <= v.maxUID {
			continue
		}
		v.uids = append(v.uids, m.UID)
		v.flags[m.UID] = m.Flags
		v.maxUID = m.UID
		added = true
	}
	if !added {
		return nil
	}
	return w.WriteNumMessages(uint32(len(v.uids)))
}

// expunge removes the UIDs in gone from the view, writing each one's sequence number from the highest
// down (so the numbers written stay valid as each removal shifts the ones above it).
func (v *view) expunge(gone map[uint32]bool, write func(seq uint32) error) error {
	for i := len(v.uids) - 1; i >= 0; i-- {
		uid := v.uids[i]
		if !gone[uid] {
			continue
		}
		if err := write(uint32(i + 1)); err != nil {
			return err
		}
		v.uids = append(v.uids[:i], v.uids[i+1:]...)
		delete(v.flags, uid)
		delete(v.gone, uid)
	}
	return nil
}

// index returns the position of uid in the view, or -1.
func (v *view) index(uid uint32) int {
	i := sort.Search(len(v.uids), func(i int) bool { return v.uids[i] >= uid })
	if i < len(v.uids) && v.uids[i] == uid {
		return i
	}
	return -1
}

// resolve returns the positions (ascending, no duplicates) the set names, leaving out messages that
// are expunged in the store. "*" is the last message (sequence set) or the largest UID (UID set);
// the SEARCHRES marker "$" names nothing, as SEARCHRES is not offered.
func (v *view) resolve(set imap.NumSet) []int {
	n := len(v.uids)
	if n == 0 || imap.IsSearchRes(set) {
		return nil
	}
	in := make([]bool, n)
	switch set := set.(type) {
	case imap.SeqSet:
		for _, r := range set {
			lo, hi := staticRange(r.Start, r.Stop, uint32(n))
			for seq := max(lo, 1); seq <= hi && seq <= uint32(n); seq++ {
				in[seq-1] = true
			}
		}
	case imap.UIDSet:
		last := v.uids[n-1]
		for _, r := range set {
			lo, hi := staticRange(uint32(r.Start), uint32(r.Stop), last)
			i := sort.Search(n, func(i int) bool { return v.uids[i] >= lo })
			for ; i < n && v.uids[i] <= hi; i++ {
				in[i] = true
			}
		}
	}
	var out []int
	for i, ok := range in {
		if ok && !v.gone[v.uids[i]] {
			out = append(out, i)
		}
	}
	return out
}

// staticRange replaces "*" (0) by last and orders the ends.
func staticRange(start, stop, last uint32) (uint32, uint32) {
	if start == 0 {
		start = last
	}
	if stop == 0 {
		stop = last
	}
	if start > stop {
		start, stop = stop, start
	}
	return start, stop
}

// knownFlags is the FLAGS answer of SELECT: the system flags and every keyword in the folder.
func (v *view) knownFlags() []imap.Flag {
	seen := map[string]bool{}
	out := []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft}
	for _, f := range out {
		seen[string(f)] = true
	}
	var kw []string
	for _, fs := range v.flags {
		for _, f := range fs {
			if !seen[f] {
				seen[f] = true
				kw = append(kw, f)
			}
		}
	}
	sort.Strings(kw)
	for _, k := range kw {
		out = append(out, imap.Flag(k))
	}
	return out
}

// firstUnseen is the sequence number of the first message without \Seen, or 0.
func (v *view) firstUnseen() uint32 {
	for i, uid := range v.uids {
		if !mailbox.HasFlag(v.flags[uid], mailbox.FlagSeen) {
			return uint32(i + 1)
		}
	}
	return 0
}

func imapFlags(fs []string) []imap.Flag {
	out := make([]imap.Flag, len(fs))
	for i, f := range fs {
		out[i] = imap.Flag(f)
	}
	return out
}

func storeFlags(fs []imap.Flag) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = string(f)
	}
	return out
}

func sameFlags(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

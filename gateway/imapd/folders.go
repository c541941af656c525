package imapd

import (
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"cafgate/directory"
	"cafgate/gateway/fault"
	"cafgate/mailbox"
	"cafgate/mailbox/ledger"
)

// open finishes a sign-in: the per-practitioner session limit, the hosted mailbox (default folders on
// the first sign-in), the notifier and the ledger.
func (s *session) open(mail string, p *directory.Practitioner) error {
	if !s.srv.addUser(mail) {
		fe := fault.New(fault.RateLimited, "You have too many IMAP sessions open; close some mail clients or windows and try again.", nil)
		s.srv.opt.Log.Warn("imap sign-in refused: too many sessions", "id", fe.ID, "dn", p.DN, "remote", s.client.RemoteAddr)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: fe.Sentence() + " (ID " + fe.ID + ")"}
	}
	ctx, cancel := s.ctx()
	defer cancel()
	box, err := s.srv.store.HostedUser(ctx, mail)
	if err != nil {
		s.srv.dropUser(mail)
		return s.storeError(err, "open")
	}
	s.user, s.box, s.counted, s.checked = p, box, true, s.srv.opt.Now()
	s.sessionID = fault.NewID()
	s.notify, s.unwatch = s.srv.opt.Notifier.Watch(mail)
	s.srv.opt.Log.Info("imap sign-in", "session", s.sessionID, "via", s.client.Via, "remote", s.client.RemoteAddr,
		"dn", p.DN, "agency", p.Agency)
	s.record(ledger.SignIn, mail, "")
	return nil
}

// changed tells the user's other sessions that their folders changed.
func (s *session) changed() { s.srv.opt.Notifier.Notify(s.box.Mail()) }

// Select opens a folder, read-write or (EXAMINE) read-only.
func (s *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	s.sel = nil
	ctx, cancel := s.ctx()
	defer cancel()
	f, err := s.box.Folder(ctx, name)
	if err != nil {
		return nil, s.storeError(err, "select")
	}
	snap, err := s.box.Snapshot(ctx, f.ID)
	if err != nil {
		return nil, s.storeError(err, "select")
	}
	v := newView(snap, options.ReadOnly)
	s.sel = v
	data := &imap.SelectData{
		Flags:       v.knownFlags(),
		NumMessages: uint32(len(v.uids)),
		UIDNext:     imap.UID(snap.Folder.UIDNext),
		UIDValidity: snap.Folder.UIDValidity,
	}
	if !options.ReadOnly {
		data.PermanentFlags = append(append([]imap.Flag(nil), data.Flags...), imap.FlagWildcard)
	} else {
		data.PermanentFlags = []imap.Flag{}
	}
	data.FirstUnseenSeqNum = v.firstUnseen()
	return data, nil
}

// Create makes a folder (and its missing parents).
func (s *session) Create(name string, options *imap.CreateOptions) error {
	use := ""
	if options != nil && len(options.SpecialUse) == 1 {
		use = string(options.SpecialUse[0])
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.box.CreateFolder(ctx, name, use); err != nil {
		return s.storeError(err, "create")
	}
	s.changed()
	return nil
}

// Delete removes a folder and its messages.
func (s *session) Delete(name string) error {
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.box.DeleteFolder(ctx, name); err != nil {
		return s.storeError(err, "delete")
	}
	s.changed()
	return nil
}

// Rename renames a folder and its subfolders.
func (s *session) Rename(from, to string, _ *imap.RenameOptions) error {
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.box.RenameFolder(ctx, from, to); err != nil {
		return s.storeError(err, "rename")
	}
	s.changed()
	return nil
}

// Subscribe marks a folder subscribed.
func (s *session) Subscribe(name string) error { return s.subscribe(name, true) }

// Unsubscribe marks a folder not subscribed.
func (s *session) Unsubscribe(name string) error { return s.subscribe(name, false) }

func (s *session) subscribe(name string, on bool) error {
	ctx, cancel := s.ctx()
	defer cancel()
	return s.storeError(s.box.SetSubscribed(ctx, name, on), "subscribe")
}

// List answers LIST and LSUB: special-use attributes always, \HasChildren or \HasNoChildren,
// \Subscribed when asked, and STATUS with LIST-STATUS.
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if len(patterns) == 0 || (len(patterns) == 1 && patterns[0] == "") {
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: mailbox.FolderSeparator})
	}
	ctx, cancel := s.ctx()
	defer cancel()
	folders, err := s.box.Folders(ctx)
	if err != nil {
		return s.storeError(err, "list")
	}
	sort.Slice(folders, func(i, j int) bool { return folderLess(folders[i].Name, folders[j].Name) })
	for i := range folders {
		f := &folders[i]
		if !matchAny(f.Name, ref, patterns) || (options.SelectSubscribed && !f.Subscribed) ||
			(options.SelectSpecialUse && f.SpecialUse == "") {
			continue
		}
		data := &imap.ListData{Mailbox: f.Name, Delim: mailbox.FolderSeparator, Attrs: folderAttrs(f, folders)}
		if f.Subscribed && (options.ReturnSubscribed || options.SelectSubscribed) {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		if options.ReturnStatus != nil {
			st, err := s.status(f.Name, options.ReturnStatus)
			if err != nil {
				return err
			}
			data.Status = st
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

// folderLess orders INBOX first, then by name.
func folderLess(a, b string) bool {
	if (a == mailbox.Inbox) != (b == mailbox.Inbox) {
		return a == mailbox.Inbox
	}
	return a < b
}

func matchAny(name, ref string, patterns []string) bool {
	for _, p := range patterns {
		if imapserver.MatchList(name, mailbox.FolderSeparator, ref, p) {
			return true
		}
		if name == mailbox.Inbox && imapserver.MatchList("inbox", mailbox.FolderSeparator, strings.ToLower(ref), strings.ToLower(p)) {
			return true // INBOX matches whatever the case of the pattern
		}
	}
	return false
}

func folderAttrs(f *mailbox.Folder, all []mailbox.Folder) []imap.MailboxAttr {
	var attrs []imap.MailboxAttr
	if f.SpecialUse != "" {
		attrs = append(attrs, imap.MailboxAttr(f.SpecialUse))
	}
	children := imap.MailboxAttrHasNoChildren
	for i := range all {
		if strings.HasPrefix(all[i].Name, f.Name+string(mailbox.FolderSeparator)) {
			children = imap.MailboxAttrHasChildren
			break
		}
	}
	return append(attrs, children)
}

// Status answers STATUS.
func (s *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	return s.status(name, options)
}

func (s *session) status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	st, err := s.box.FolderStatus(ctx, name)
	if err != nil {
		return nil, s.storeError(err, "status")
	}
	data := &imap.StatusData{Mailbox: st.Name}
	if options.NumMessages {
		data.NumMessages = &st.Messages
	}
	if options.UIDNext {
		data.UIDNext = imap.UID(st.UIDNext)
	}
	if options.UIDValidity {
		data.UIDValidity = st.UIDValidity
	}
	if options.NumUnseen {
		data.NumUnseen = &st.Unseen
	}
	if options.NumDeleted {
		data.NumDeleted = &st.Deleted
	}
	if options.Size {
		data.Size = &st.Size
	}
	if options.NumRecent {
		zero := uint32(0)
		data.NumRecent = &zero
	}
	if options.AppendLimit {
		lim := s.AppendLimit()
		data.AppendLimit = &lim
	}
	return data, nil
}

package imapd

import (
	"context"
	"errors"
	"fmt"

	"github.com/emersion/go-imap/v2"

	"cafgate/gateway/fault"
	"cafgate/mailbox"
)

// storeError turns a store error into the client's answer: a fixed sentence per kind, never the
// error's own text. Failures the client cannot act on are logged with an ID the answer quotes.
func (s *session) storeError(err error, op string) error {
	if err == nil {
		return nil
	}
	no := func(code imap.ResponseCode, text string) error {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
	}
	switch {
	case errors.Is(err, mailbox.ErrNoMailbox):
		return no(imap.ResponseCodeNonExistent, "No such folder.")
	case errors.Is(err, mailbox.ErrMailboxExists):
		return no(imap.ResponseCodeAlreadyExists, "A folder with that name exists already.")
	case errors.Is(err, mailbox.ErrMailboxName):
		return no(imap.ResponseCodeCannot, "That folder name is not allowed: no * or %, no empty levels, no control characters, at most 200 bytes.")
	case errors.Is(err, mailbox.ErrMailboxCannot):
		return no(imap.ResponseCodeCannot, cannotSentence(op))
	case errors.Is(err, mailbox.ErrMailboxLimit):
		return no(imap.ResponseCodeLimit, "A limit of the hosted mailbox was reached (folders, or flags on one message).")
	case errors.Is(err, mailbox.ErrInvalid):
		return no(imap.ResponseCodeCannot, "Unsupported flag or keyword.")
	case errors.Is(err, mailbox.ErrNotFound):
		return no(imap.ResponseCodeNonExistent, "The message is no longer there.")
	}
	id := fault.NewID()
	s.srv.opt.Log.Error("imap store operation failed", "id", id, "session", s.sessionID, "op", op, "err", err)
	switch {
	case errors.Is(err, mailbox.ErrFull):
		return no(imap.ResponseCodeOverQuota, fmt.Sprintf("The gateway is out of storage space; please try again later (ID %s).", id))
	case errors.Is(err, mailbox.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return no(imap.ResponseCodeUnavailable, fmt.Sprintf("The mailbox cannot be reached just now; please try again later (ID %s).", id))
	case errors.Is(err, mailbox.ErrCorrupt):
		return no(imap.ResponseCodeCorruption, fmt.Sprintf("A stored message failed its integrity check; please quote this ID to your administrator (ID %s).", id))
	}
	return no(imap.ResponseCodeServerBug, fmt.Sprintf("Internal error; please try again later and quote this ID if it persists (ID %s).", id))
}

func cannotSentence(op string) string {
	switch op {
	case "delete":
		return "INBOX, the special-use folders (Sent, Drafts, Trash, Junk, Archive) and folders with subfolders cannot be deleted."
	case "rename":
		return "INBOX cannot be renamed, and a folder cannot move inside itself."
	case "append":
		return "Messages reach INBOX only through the gateway; save copies to Sent, Drafts or another folder."
	case "move":
		return "Source and destination are the same folder."
	}
	return "This operation is not allowed on that folder."
}

var errReadOnly = &imap.Error{Type: imap.StatusResponseTypeNo, Code: "READ-ONLY", Text: "The folder was opened with EXAMINE: it is read-only."}

var errNotSelected = &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "No folder is selected."}

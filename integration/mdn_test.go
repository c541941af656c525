package integration

import "testing"

// TestReadReceipts runs integration/py/mdn_e2e.py against the built gateway: a package delivered to a
// hosted recipient, their RFC 8098 read receipt submitted with smtplib, the "read" ledger event, the
// notification in the sender's hosted mailbox (imaplib), a receipt signed with `openssl cms`, and the
// refusal of bad receipts.
func TestReadReceipts(t *testing.T) {
	t.Parallel()
	g := startGateway(t)
	g.runPython(t, "mdn_e2e")
}

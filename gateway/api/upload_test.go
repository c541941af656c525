package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"cafgate/gateway/intake"
	"cafgate/mailbox"
	"cafgate/policy"
)

// uploadRaw posts a raw package.
func (e *env) uploadRaw(agency, actor string, content []byte, hdr map[string]string) *resp {
	e.t.Helper()
	return e.do(call{method: "POST", path: "/v1/packages", key: e.keys[agency], actor: actor, ctype: "message/rfc822",
		body: bytes.NewReader(content), header: hdr})
}

// uploadForm posts a package as a form.
func (e *env) uploadForm(agency, actor, manifest string, docs []testDoc, rcpts []string, hdr map[string]string) *resp {
	e.t.Helper()
	body, ct := formBody(e.t, manifest, docs, rcpts)
	return e.do(call{method: "POST", path: "/v1/packages", key: e.keys[agency], actor: actor, ctype: ct, body: body, header: hdr})
}

func (e *env) messageCount() int {
	e.t.Helper()
	list, err := e.store.List(context.Background(), mailbox.ListOptions{Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(list)
}

func TestUploadRawAndStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ref := e.episode(0)
	r := e.uploadRaw(health, priya, rawPackage(priya, []string{gwen, rita}, manifestFor(ref, priya, threeDocs()), threeDocs()), nil)
	if r.status != http.StatusCreated {
		t.Fatalf("upload: %s", r)
	}
	var st packageResult
	r.json(t, &st)
	if st.Sender != priya || st.Agency != health || st.Via != "https" || st.Episode != ref || st.ConsentVersion != 1 ||
		r.header.Get("Location") != "/v1/packages/"+st.ID {
		t.Errorf("status: %+v, Location %q", st, r.header.Get("Location"))
	}
	want := gwen + "=deliver-all/consent allowed=childs-details,development-of-the-child,parents-and-carers,family-and-environment,conclusions-and-actions,consent withheld=\n" +
		rita + "=deliver-all/consent allowed=childs-details,development-of-the-child,parents-and-carers,family-and-environment,conclusions-and-actions,consent withheld="
	if got := st.decisions(); got != want {
		t.Errorf("decisions:\n%s\nwant:\n%s", got, want)
	}
	// The status is the store's: the message is there, with this digest.
	stored, err := e.store.Message(context.Background(), st.ID)
	if err != nil || fmt.Sprintf("%x", sha256.Sum256(stored.Content)) != st.Digest || stored.Via != "https" {
		t.Fatalf("stored: %v", err)
	}
	g := e.do(call{method: "GET", path: "/v1/packages/" + st.ID, key: e.keys[health], actor: sam})
	var again packageResult
	g.json(t, &again)
	if g.status != 200 || again.decisions() != want || again.ID != st.ID {
		t.Errorf("GET: %s", g)
	}
	// Another agency, or an ID nobody has: the same 404.
	other := wantProblem(t, e.do(call{method: "GET", path: "/v1/packages/" + st.ID, key: e.keys[school], actor: harriet}), 404, "not-found")
	none := wantProblem(t, e.do(call{method: "GET", path: "/v1/packages/0000000000000000", key: e.keys[health], actor: priya}), 404, "not-found")
	if other.Detail != none.Detail || other.Title != none.Detail && other.Title != none.Title {
		t.Errorf("404s differ: %+v / %+v", other, none)
	}
	// The log carries no content.
	for _, secret := range []string{"CAF form (example)", "NFS-2026-0042", "CAF review"} {
		if strings.Contains(e.log.String(), secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
}

func TestUploadFormDecisions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ref := e.episode(1) // refuses the police, sam by name, and family and environment to social care
	r := e.uploadForm(school, harriet, manifestFor(ref, harriet, threeDocs()), threeDocs(), []string{gwen, rita, "Sam.Fictitious@health.cafgate.test", gwen}, nil)
	if r.status != 201 {
		t.Fatalf("upload: %s", r)
	}
	var st packageResult
	r.json(t, &st)
	want := gwen + "=deliver-sections/sections-withheld allowed=childs-details,development-of-the-child,parents-and-carers,conclusions-and-actions,consent withheld=family-and-environment\n" +
		rita + "=refuse/refused-agency allowed= withheld=\n" +
		sam + "=refuse/refused-person allowed= withheld="
	if got := st.decisions(); got != want {
		t.Errorf("decisions:\n%s\nwant:\n%s", got, want)
	}
	// The package built from the form is one the package reader takes, documents byte for byte.
	stored, err := e.store.Message(context.Background(), st.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"From: " + harriet, "Message-ID: <", "@gateway.test>", "filename=caf-form.pdf", "Content-Type: application/vnd.cafgate.manifest+json"} {
		if !bytes.Contains(stored.Content, []byte(want)) {
			t.Errorf("built package lacks %q", want)
		}
	}
}

func TestUploadRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(l *Limits) { l.MaxRecipients = 3 })
	ref := e.episode(1)
	docs := threeDocs()
	mf := manifestFor(ref, harriet, docs)
	// Every recipient refused by consent: 403 naming the reasons, nothing stored.
	p := wantProblem(t, e.uploadForm(school, harriet, mf, docs, []string{rita}, nil), 403, "not-permitted")
	if !strings.Contains(p.Detail, "Not sent to anyone") {
		t.Errorf("all-refused detail: %q", p.Detail)
	}
	bad := strings.Replace(mf, `"consent"`+"\n", `"health"`+"\n", 1)
	wantProblem(t, e.uploadForm(school, harriet, bad, docs, []string{gwen}, nil), 400, "bad-message", "manifest#/documents/2/sections/0")
	wantProblem(t, e.uploadRaw(school, harriet, rawPackage(harriet, []string{gwen}, bad, docs), nil), 400, "bad-message", "/documents/2/sections/0")
	extra := append(threeDocs(), testDoc{"extra.pdf", "application/pdf", []byte("%PDF"), nil})
	wantProblem(t, e.uploadForm(school, harriet, mf, extra, []string{gwen}, nil), 400, "bad-message", "document[3]")
	wantProblem(t, e.uploadForm(school, harriet, "", docs, []string{gwen}, nil), 400, "bad-message", "manifest")
	wantProblem(t, e.uploadForm(school, harriet, mf, docs, nil, nil), 400, "bad-request", "recipient")
	wantProblem(t, e.uploadForm(school, harriet, mf, docs, []string{gwen, "not an address"}, nil), 400, "bad-request", "recipient[1]")
	// Every recipient refused by the directory check: the refusal of the one kind, or 403 when mixed,
	// listing each recipient.
	one := wantProblem(t, e.uploadForm(school, harriet, mf, docs, []string{oliver}, nil), 403, "not-permitted", "recipient[0]")
	if len(one.Recipients) != 1 || one.Recipients[0].Reason != "recipient-vetting-lapsed" || one.Recipients[0].ID != one.ID {
		t.Errorf("one refused recipient: %+v", one)
	}
	mixedRcpts := wantProblem(t, e.uploadForm(school, harriet, mf, docs, []string{"nobody@police.cafgate.test", oliver}, nil), 403, "not-permitted", "recipient[0]")
	if got := refusalSummary(mixedRcpts.Recipients); got != "nobody@police.cafgate.test:recipient[0]:recipient-unknown "+oliver+":recipient[1]:recipient-vetting-lapsed" {
		t.Errorf("mixed refusals: %s", got)
	}
	unknown := wantProblem(t, e.uploadForm(school, harriet, mf, docs, []string{"nobody@police.cafgate.test", "noone@police.cafgate.test"}, nil), 422, "unknown-recipient", "recipient[0]")
	if len(unknown.Recipients) != 2 || !strings.HasPrefix(unknown.Detail, "No recipient may receive this package") {
		t.Errorf("every recipient unknown: %+v", unknown)
	}
	wantProblem(t, e.uploadForm(school, harriet, mf, docs, []string{gwen, rita, sam, priya}, nil), 422, "too-many-recipients", "recipient[3]")
	wantProblem(t, e.uploadRaw(school, harriet, rawPackage(harriet, []string{"nobody@police.cafgate.test"}, mf, docs), nil), 422, "unknown-recipient", "header To")
	// The package must be the practitioner's own.
	wantProblem(t, e.uploadRaw(school, harriet, rawPackage(gwen, []string{gwen}, manifestFor(ref, gwen, docs), docs), nil), 403, "sender-mismatch")
	// A Bcc would not stay blind.
	withBcc := bytes.Replace(rawPackage(harriet, []string{gwen}, mf, docs), []byte("Subject:"), []byte("Bcc: "+rita+"\r\nSubject:"), 1)
	wantProblem(t, e.uploadRaw(school, harriet, withBcc, nil), 400, "bad-message", "header Bcc")
	// Neither form.
	wantProblem(t, e.do(call{method: "POST", path: "/v1/packages", key: e.keys[school], actor: harriet, ctype: "application/json",
		body: strings.NewReader("{}")}), 415, "unsupported-media-type", "header Content-Type")
	wantProblem(t, e.uploadRaw(school, harriet, rawPackage(harriet, []string{gwen}, mf, docs), map[string]string{IdempotencyKeyHeader: "bad key"}),
		400, "bad-request", "header Idempotency-Key")
	// A message with bare LF inside CRLF lines is refused; one with only LF is made CRLF.
	mixed := bytes.Replace(rawPackage(harriet, []string{gwen}, mf, docs), []byte("Subject: CAF review\r\n"), []byte("Subject: CAF review\n"), 1)
	wantProblem(t, e.uploadRaw(school, harriet, mixed, nil), 400, "bad-message")
	unix := bytes.ReplaceAll(rawPackage(harriet, []string{gwen}, mf, docs), []byte("\r\n"), []byte("\n"))
	if r := e.uploadRaw(school, harriet, unix, nil); r.status != 201 {
		t.Errorf("LF-only package: %s", r)
	}
	if n := e.messageCount(); n != 1 {
		t.Errorf("%d messages stored, want 1 (only the LF-only package)", n)
	}
}

func TestUploadSizeAndTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(l *Limits) {
		l.MaxUploadBytes = 4000
		l.MaxBufferedBytes = 20000
		l.RequestTimeout = 2 * time.Second
	})
	ref := e.episode(0)
	docs := threeDocs()
	docs[0].data = bytes.Repeat([]byte("x"), 5000)
	big := rawPackage(priya, []string{gwen}, manifestFor(ref, priya, docs), docs)
	wantProblem(t, e.uploadRaw(health, priya, big, nil), 413, "too-big")
	// Without a Content-Length (chunked) the limit holds while reading.
	wantProblem(t, e.do(call{method: "POST", path: "/v1/packages", key: e.keys[health], actor: priya, ctype: "message/rfc822",
		body: io.MultiReader(bytes.NewReader(big))}), 413, "too-big")
	body, ct := formBody(t, manifestFor(ref, priya, docs), docs, []string{gwen})
	wantProblem(t, e.do(call{method: "POST", path: "/v1/packages", key: e.keys[health], actor: priya, ctype: ct, body: io.MultiReader(body)}), 413, "too-big")
	// A body that stops arriving is cut off at the request time limit.
	pr, pw := io.Pipe()
	go func() {
		pw.Write(big[:1000])
		time.Sleep(3 * time.Second)
		pw.CloseWithError(io.ErrUnexpectedEOF)
	}()
	r := e.do(call{method: "POST", path: "/v1/packages", key: e.keys[health], actor: priya, ctype: "message/rfc822", body: pr})
	wantProblem(t, r, 408, "request-timeout")
	if n := e.messageCount(); n != 0 {
		t.Errorf("%d messages stored", n)
	}
	if e.h.mem.InUse() != 0 {
		t.Errorf("upload memory not given back: %d", e.h.mem.InUse())
	}
}

func TestUploadMemoryBudget(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(l *Limits) { l.MaxBufferedBytes = 1000 })
	ref := e.episode(0)
	r := e.uploadRaw(health, priya, rawPackage(priya, []string{gwen}, manifestFor(ref, priya, threeDocs()), threeDocs()), nil)
	wantProblem(t, r, 503, "store-unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After: %s", r)
	}
	// Uploads under way hold the budget: with it all taken, the next upload is refused until one ends.
	e2 := newEnv(t)
	if !e2.h.mem.Take(DefaultLimits().MaxBufferedBytes - memOverhead) {
		t.Fatal("budget")
	}
	up := func() *resp {
		return e2.uploadRaw(health, priya, rawPackage(priya, []string{gwen}, manifestFor(e2.episode(0), priya, threeDocs()), threeDocs()), nil)
	}
	if r := up(); r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Errorf("budget exhausted: %s", r)
	}
	e2.h.mem.Give(DefaultLimits().MaxBufferedBytes - memOverhead)
	if r := up(); r.status != 201 {
		t.Errorf("budget given back: %s", r)
	}
	if n := e2.messageCount(); n != 1 {
		t.Errorf("%d messages stored, want 1", n)
	}
	if e.h.mem.InUse() != 0 {
		t.Errorf("upload memory not given back: %d", e.h.mem.InUse())
	}
}

// TestUploadInterrupted: a body cut off half way stores nothing.
func TestUploadInterrupted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	content := rawPackage(priya, []string{gwen}, manifestFor(e.episode(0), priya, threeDocs()), threeDocs())
	conn, err := tls.Dial("tcp", e.srv.Listener.Addr().String(), &tls.Config{RootCAs: e.pool})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/packages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n%s: %s\r\nContent-Type: message/rfc822\r\nContent-Length: %d\r\n\r\n",
		e.keys[health], OnBehalfOfHeader, priya, len(content))
	conn.Write(content[:len(content)/2])
	conn.Close()
	e.waitLog(`"route":"/v1/packages"`)
	if n := e.messageCount(); n != 0 {
		t.Errorf("%d messages stored after an interrupted upload", n)
	}
}

func TestUploadIdempotency(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ref := e.episode(0)
	docs := threeDocs()
	mf := manifestFor(ref, priya, docs)
	key := map[string]string{IdempotencyKeyHeader: "upload-1"}
	first := e.uploadForm(health, priya, mf, docs, []string{gwen}, key)
	if first.status != 201 || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %s", first)
	}
	// A retry (a new form, so a new boundary) gets the first answer.
	again := e.uploadForm(health, priya, mf, docs, []string{gwen}, key)
	var a, b packageResult
	first.json(t, &a)
	again.json(t, &b)
	if again.status != 201 || again.header.Get("Idempotent-Replayed") != "true" || a.ID != b.ID || a.decisions() != b.decisions() {
		t.Fatalf("retry: %s", again)
	}
	// The same key for another package, or for another practitioner, is refused.
	wantProblem(t, e.uploadForm(health, priya, mf, docs, []string{gwen, rita}, key), 422, "idempotency-key-reused", "header Idempotency-Key")
	// Another client's keys are its own.
	if r := e.uploadForm(school, harriet, manifestFor(ref, harriet, docs), docs, []string{gwen}, key); r.status != 201 {
		t.Fatalf("other client, same key: %s", r)
	}
	// A refused upload gives its key back.
	k2 := map[string]string{IdempotencyKeyHeader: "upload-2"}
	wantProblem(t, e.uploadForm(health, priya, mf, docs, []string{oliver}, k2), 403, "not-permitted")
	if r := e.uploadForm(health, priya, mf, docs, []string{rita}, k2); r.status != 201 {
		t.Fatalf("key after a refusal: %s", r)
	}
	if n := e.messageCount(); n != 3 {
		t.Errorf("%d messages, want 3", n)
	}
}

// TestUploadIdempotencyAfterCrash: a key left pending by a gateway that died is resolved from the
// store: the message it had committed is the answer; without one, the retry is accepted once.
func TestUploadIdempotencyAfterCrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	content := rawPackage(priya, []string{gwen}, manifestFor(e.episode(0), priya, threeDocs()), threeDocs())
	sum := sha256.Sum256(content)
	reserve := func(k string) {
		res, err := e.store.ReserveIdempotencyKey(ctx, mailbox.IdemRequest{ClientID: e.clients[health], Key: k,
			RequestHash: requestHash("raw", priya, sum[:]), Sender: priya, Digest: hex.EncodeToString(sum[:]),
			Holder: "the-process-that-died", Lease: time.Hour, TTL: 24 * time.Hour})
		if err != nil || res.Outcome != mailbox.IdemReserved {
			t.Fatalf("reserve: %+v %v", res, err)
		}
	}
	// Died after the commit: the retry is answered with that message.
	reserve("after-commit")
	p, err := e.sdir.Lookup(ctx, priya)
	if err != nil {
		t.Fatal(err)
	}
	id, err := e.in.Accept(ctx, &intake.Submission{Sender: p, From: priya, Recipients: []string{gwen}, Content: content,
		Client: intake.Client{RemoteAddr: "192.0.2.1:1", Via: "https", TLS: true}})
	if err != nil {
		t.Fatal(err)
	}
	r := e.uploadRaw(health, priya, content, map[string]string{IdempotencyKeyHeader: "after-commit"})
	var st packageResult
	r.json(t, &st)
	if r.status != 201 || st.ID != id || r.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry after a crash past the commit: %s (want %s)", r, id)
	}
	// Died before the commit: the retry is accepted, once.
	reserve("before-commit")
	r = e.uploadRaw(health, priya, content, map[string]string{IdempotencyKeyHeader: "before-commit"})
	r2 := e.uploadRaw(health, priya, content, map[string]string{IdempotencyKeyHeader: "before-commit"})
	var a, b packageResult
	r.json(t, &a)
	r2.json(t, &b)
	if r.status != 201 || r.header.Get("Idempotent-Replayed") != "" || a.ID == id || b.ID != a.ID {
		t.Fatalf("retry after a crash before the commit: %s / %s", r, r2)
	}
	if n := e.messageCount(); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
	// A key pending in this very process is in progress: 409 with Retry-After.
	res, err := e.store.ReserveIdempotencyKey(ctx, mailbox.IdemRequest{ClientID: e.clients[health], Key: "busy",
		RequestHash: requestHash("raw", priya, sum[:]), Sender: priya, Digest: hex.EncodeToString(sum[:]),
		Holder: e.h.opt.Holder, Lease: time.Hour, TTL: 24 * time.Hour})
	if err != nil || res.Outcome != mailbox.IdemReserved {
		t.Fatal(res, err)
	}
	r = e.uploadRaw(health, priya, content, map[string]string{IdempotencyKeyHeader: "busy"})
	wantProblem(t, r, 409, "idempotency-key-in-use", "header Idempotency-Key")
	if r.header.Get("Retry-After") == "" {
		t.Error("409 in progress without Retry-After")
	}
}

func TestUploadUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	content := rawPackage(priya, []string{gwen}, manifestFor(e.episode(0), priya, threeDocs()), threeDocs())
	e.sdir.down.Store(true)
	wantProblem(t, e.uploadRaw(health, priya, content, nil), 503, "directory-unavailable")
	e.sdir.down.Store(false)
	e.store.Close()
	r := e.uploadRaw(health, priya, content, nil)
	if r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("store closed: %s", r)
	}
}

// refusalSummary is "recipient:field:reason" of each refusal, space separated.
func refusalSummary(rs []refusal) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Recipient+":"+r.Field+":"+r.Reason)
	}
	return strings.Join(out, " ")
}

// TestUploadSomeRecipientsRefused: as SMTP takes a message for the recipients RCPT accepted, an
// upload is accepted for the recipients the directory check lets through, and its answer gives every
// recipient's decision in the order named.
func TestUploadSomeRecipientsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ref := e.episode(0)
	docs := threeDocs()
	key := map[string]string{IdempotencyKeyHeader: "partial-1"}
	r := e.uploadForm(health, priya, manifestFor(ref, priya, docs), docs, []string{gwen, "nobody@police.cafgate.test", oliver}, key)
	if r.status != http.StatusCreated {
		t.Fatalf("upload: %s", r)
	}
	var st packageResult
	r.json(t, &st)
	got := ""
	for _, x := range st.Recipients {
		got += fmt.Sprintf("%s %s/%s field=%q detail=%t\n", x.Recipient, x.Decision, x.Reason, x.Field, x.Detail != "")
	}
	want := gwen + ` deliver-all/consent field="" detail=true
nobody@police.cafgate.test refuse/recipient-unknown field="recipient[1]" detail=true
` + oliver + ` refuse/recipient-vetting-lapsed field="recipient[2]" detail=true
`
	if got != want {
		t.Errorf("answer:\n%swant:\n%s", got, want)
	}
	// The package is stored for gwen only.
	stored, err := e.store.Message(context.Background(), st.ID)
	if err != nil || strings.Join(stored.Recipients, ",") != gwen {
		t.Fatalf("stored recipients: %v %v", stored, err)
	}
	// A retry with the key is answered from the first upload, and still names every recipient.
	again := e.uploadForm(health, priya, manifestFor(ref, priya, docs), docs, []string{gwen, "nobody@police.cafgate.test", oliver}, key)
	var st2 packageResult
	again.json(t, &st2)
	if again.status != 201 || again.header.Get("Idempotent-Replayed") != "true" || st2.ID != st.ID || len(st2.Recipients) != 3 ||
		st2.Recipients[1].Decision != "refuse" || st2.Recipients[1].Reason != reasonNotAccepted || st2.Recipients[0].Decision != "deliver-all" {
		t.Errorf("replay: %s", again)
	}
	// The status names the recipients the package was accepted for.
	g := e.do(call{method: "GET", path: "/v1/packages/" + st.ID, key: e.keys[health], actor: priya})
	var st3 packageResult
	g.json(t, &st3)
	if g.status != 200 || len(st3.Recipients) != 1 || st3.Recipients[0].Recipient != gwen || st3.Recipients[0].Detail == "" {
		t.Errorf("status: %s", g)
	}
	// The raw form: To and Cc, one unknown.
	raw := rawPackage(priya, []string{gwen, "nobody@police.cafgate.test"}, manifestFor(ref, priya, docs), docs)
	rr := e.uploadRaw(health, priya, raw, nil)
	var st4 packageResult
	rr.json(t, &st4)
	if rr.status != 201 || len(st4.Recipients) != 2 || st4.Recipients[1].Reason != "recipient-unknown" || st4.Recipients[1].Field != "header To" {
		t.Errorf("raw upload: %s", rr)
	}
	if n := e.messageCount(); n != 2 {
		t.Errorf("%d messages stored, want 2", n)
	}
}

// TestReasonSentences: every reason code the policy gives is put in words.
func TestReasonSentences(t *testing.T) {
	for _, r := range policy.Reasons() {
		if reasonSentence(r) == "" {
			t.Errorf("no sentence for %s", r)
		}
	}
}

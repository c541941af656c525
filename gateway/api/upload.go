// POST /v1/packages: upload a package. The answer comes only after the intake's durable commit; with an
// Idempotency-Key a retry gets the first answer and the package is never accepted twice (the crash
// windows are described in mailbox/apiclient_idempotency.go and docs/api.md).

package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"cafgate/gateway/fault"
	"cafgate/gateway/intake"
	"cafgate/mailbox"
)

// IdempotencyKeyHeader is the header of a retry-safe upload.
const IdempotencyKeyHeader = "Idempotency-Key"

// maxIdempotencyKey bounds the key's length.
const maxIdempotencyKey = 255

func (h *Handler) upload(rq *request) (*reply, *Problem) {
	key, p := idempotencyKey(rq.r)
	if p != nil {
		return nil, p
	}
	if rq.r.ContentLength > h.opt.Limits.MaxUploadBytes {
		return nil, tooBig(h.opt.Limits.MaxUploadBytes, fmt.Errorf("declared Content-Length %d", rq.r.ContentLength))
	}
	up, p := h.readUpload(rq, h.maxBody(rq))
	if p != nil {
		return nil, p
	}
	defer h.release(up)
	if p := h.load(rq, up); p != nil {
		return nil, p
	}
	rq.note("form", up.form, "size", len(up.content), "recipients", len(up.recipients))
	if key == "" {
		if p := h.checkRecipients(rq, up); p != nil {
			return nil, p
		}
		return h.accept(rq, up)
	}
	return h.acceptOnce(rq, up, key)
}

// idempotencyKey returns the Idempotency-Key header: 1 to 255 visible ASCII characters, or none.
func idempotencyKey(r *http.Request) (string, *Problem) {
	vs := r.Header.Values(IdempotencyKeyHeader)
	if len(vs) == 0 {
		return "", nil
	}
	k := vs[0]
	ok := len(vs) == 1 && len(k) > 0 && len(k) <= maxIdempotencyKey
	for i := 0; ok && i < len(k); i++ {
		ok = k[i] > 0x20 && k[i] < 0x7f
	}
	if !ok {
		return "", faultProblem(fault.BadCommand, fmt.Sprintf("The Idempotency-Key must be one value of 1 to %d visible ASCII characters.", maxIdempotencyKey),
			"header "+IdempotencyKeyHeader, nil)
	}
	return k, nil
}

// accept hands the package to the intake and answers with its status.
func (h *Handler) accept(rq *request, up *upload) (*reply, *Problem) {
	id, err := h.opt.Intake.Accept(rq.ctx, &intake.Submission{Sender: rq.actor, From: rq.actor.Mail,
		Recipients: up.allowed, Content: up.content, Client: rq.ic})
	if err != nil {
		p := fromFault(err)
		p.logged = true // the intake logged it under the same ID
		if up.form {
			p.Field = formField(p.Field)
		}
		return nil, withRefusals(p, up)
	}
	rq.note("message", id)
	return h.statusReply(rq, id, http.StatusCreated, up)
}

// acceptOnce is accept under an idempotency key.
func (h *Handler) acceptOnce(rq *request, up *upload, key string) (*reply, *Problem) {
	sum := sha256.Sum256(up.content)
	res, err := h.opt.Store.ReserveIdempotencyKey(rq.ctx, mailbox.IdemRequest{ClientID: rq.client.ID, Key: key,
		RequestHash: up.requestHash, Sender: rq.actor.Mail, Digest: hex.EncodeToString(sum[:]), Holder: h.opt.Holder,
		Lease: h.opt.Limits.leaseOf(), TTL: h.opt.Limits.IdempotencyKeyExpiry})
	if err != nil {
		return nil, storeProblem(err)
	}
	switch res.Outcome {
	case mailbox.IdemReplay:
		rq.note("message", res.MessageID, "replayed", true)
		rep, p := h.statusReply(rq, res.MessageID, http.StatusCreated, up)
		if rep != nil {
			rep.header.Set("Idempotent-Replayed", "true")
		}
		return rep, p
	case mailbox.IdemInProgress:
		p := newProblem(slugKeyInUse, "An upload with this Idempotency-Key is being accepted right now; retry after the time given.",
			"header "+IdempotencyKeyHeader, nil)
		p.retryAfter = res.RetryAfter
		return nil, p
	case mailbox.IdemMismatch:
		return nil, newProblem(slugKeyReused, "This Idempotency-Key was used for a different upload; use a new key for a new package.",
			"header "+IdempotencyKeyHeader, nil)
	}
	p := h.checkRecipients(rq, up)
	var rep *reply
	if p == nil {
		rep, p = h.accept(rq, up)
	}
	// The outcome must be recorded even when the request's own time is up.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(rq.ctx), 10*time.Second)
	defer cancel()
	if p != nil {
		if err := h.opt.Store.ReleaseIdempotencyKey(ctx, rq.client.ID, key, h.opt.Holder); err != nil {
			h.opt.Log.Warn("api: releasing an idempotency key", "client", rq.client.ID, "err", err)
		}
		return nil, p
	}
	id := rep.messageID
	if ok, err := h.opt.Store.CompleteIdempotencyKey(ctx, rq.client.ID, key, h.opt.Holder, id); err != nil || !ok {
		// The package is accepted whatever happens here; a retry finds it from the pending key.
		h.opt.Log.Warn("api: idempotency key not bound to its message", "client", rq.client.ID, "message", id, "taken_over", !ok, "err", err)
	}
	return rep, nil
}

// API clients: the agency case systems that use the HTTPS API. Each is bound to one agency and holds one
// credential, an API key (random, shown once, kept only as a SHA-256 hash, compared in constant time)
// or a client certificate (pinned by its SHA-256 fingerprint). Revocation is immediate and final.

package mailbox

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"cafgate/mailbox/ledger"
)

var (
	// ErrClientNotFound: no API client has that ID.
	ErrClientNotFound = errors.New("mailbox: no such API client")
	// ErrClientCredentials: the API key or certificate names no client, a revoked one, or does not
	// match. Every reason is this one error; the wrapped detail is for the log only.
	ErrClientCredentials = errors.New("mailbox: API client credentials not accepted")
)

// APIKeyPrefix starts every API key, so a leaked key is easy to recognise (and to scan for).
const APIKeyPrefix = "cafk_"

// APIClient is a registered API client. It never holds the key itself.
type APIClient struct {
	ID              string    `json:"id"`
	Agency          string    `json:"agency"`
	Name            string    `json:"name"`
	Credential      string    `json:"credential"`                 // "api-key" or "certificate"
	CertFingerprint string    `json:"cert_fingerprint,omitempty"` // SHA-256, lower-case hex
	CreatedAt       time.Time `json:"created_at"`
	CreatedBy       string    `json:"created_by"`
	RevokedAt       time.Time `json:"revoked_at,omitzero"`
	RevokedBy       string    `json:"revoked_by,omitempty"`
}

// Revoked reports whether the client was revoked.
func (c *APIClient) Revoked() bool { return !c.RevokedAt.IsZero() }

// NewAPIClient is what AddAPIClient needs.
type NewAPIClient struct {
	Agency          string // required: the agency as the directory names it
	Name            string // required: what the agency calls the system
	CertFingerprint string // a client certificate's SHA-256 fingerprint; empty: the client gets an API key
	By              string // who registered it (recorded)
}

// AddAPIClient registers a client. For a key client it returns the API key, which is stored only as a
// hash and cannot be shown again; for a certificate client the key is "".
func (s *Store) AddAPIClient(ctx context.Context, n NewAPIClient) (*APIClient, string, error) {
	c, err := checkNewClient(n)
	if err != nil {
		return nil, "", err
	}
	c.CreatedAt = s.opt.Now().UTC()
	if c.ID, err = randomToken(10); err != nil {
		return nil, "", err
	}
	var key, keyHash any
	if c.CertFingerprint == "" {
		secret, err := randomToken(32)
		if err != nil {
			return nil, "", err
		}
		key, keyHash = APIKeyPrefix+strings.ToLower(c.ID)+"_"+strings.ToLower(secret), hashSecret(strings.ToLower(secret))
	}
	var fp any
	if c.CertFingerprint != "" {
		fp = c.CertFingerprint
	}
	err = s.episodeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO api_clients (id, agency, name, key_hash, cert_fingerprint, created_at, created_by)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, c.ID, c.Agency, c.Name, keyHash, fp, formatTime(c.CreatedAt), c.CreatedBy)
		if errors.Is(classify(err), ErrDuplicate) && fp != nil {
			return fmt.Errorf("%w: another client already uses this certificate", ErrDuplicate)
		}
		if err != nil {
			return classify(err)
		}
		return classify(appendEvent(ctx, tx, event{At: c.CreatedAt, Type: EventClientAdded, Data: clientEventData(c, c.CreatedBy, "")}))
	})
	if err != nil {
		return nil, "", err
	}
	k, _ := key.(string)
	return c, k, nil
}

// checkNewClient validates n and returns the client it describes (without ID or time).
func checkNewClient(n NewAPIClient) (*APIClient, error) {
	c := &APIClient{Agency: strings.TrimSpace(n.Agency), Name: strings.TrimSpace(n.Name), CreatedBy: strings.TrimSpace(n.By),
		Credential: "api-key"}
	for what, v := range map[string]string{"agency": c.Agency, "name": c.Name} {
		if v == "" || len(v) > 200 || strings.IndexFunc(v, unicode.IsControl) >= 0 {
			return nil, fmt.Errorf("%w: the client's %s must be 1 to 200 characters without control characters", ErrInvalid, what)
		}
	}
	if c.CreatedBy == "" {
		c.CreatedBy = "unknown"
	}
	if n.CertFingerprint != "" {
		fp, err := NormaliseFingerprint(n.CertFingerprint)
		if err != nil {
			return nil, err
		}
		c.CertFingerprint, c.Credential = fp, "certificate"
	}
	return c, nil
}

// NormaliseFingerprint accepts a SHA-256 certificate fingerprint as openssl prints it
// ("sha256 Fingerprint=AB:CD:..."), with or without colons, in either case, and returns it as 64
// lower-case hex digits.
func NormaliseFingerprint(s string) (string, error) {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '='); i >= 0 {
		s = s[i+1:]
	}
	s = strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(s))
	if b, err := hex.DecodeString(s); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("%w: a certificate fingerprint is the SHA-256 of the certificate: 64 hex digits, colons allowed", ErrInvalid)
	}
	return s, nil
}

// CertFingerprint returns the SHA-256 fingerprint of a DER certificate, as stored.
func CertFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// APIClients returns every client, oldest first, revoked ones included.
func (s *Store) APIClients(ctx context.Context) ([]APIClient, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+clientColumns+` FROM api_clients ORDER BY created_at, id`)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []APIClient
	for rows.Next() {
		c, _, err := scanClient(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *c)
	}
	return out, classify(rows.Err())
}

// APIClient returns the client with id, revoked or not; it wraps ErrClientNotFound.
func (s *Store) APIClient(ctx context.Context, id string) (*APIClient, error) {
	c, _, err := scanClient(s.rdb.QueryRowContext(ctx, `SELECT `+clientColumns+` FROM api_clients WHERE id = ?`, strings.ToUpper(id)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %q", ErrClientNotFound, clipInput(id))
	}
	return c, err
}

// RevokeAPIClient revokes the client with id from now on and returns it; by (who) and reason (why,
// required) go to the ledger's "client-revoked" event, in the same transaction. Revoking a revoked
// client changes nothing, records nothing and is not an error.
func (s *Store) RevokeAPIClient(ctx context.Context, id, by, reason string) (*APIClient, error) {
	id = strings.ToUpper(strings.TrimSpace(id))
	if strings.TrimSpace(by) == "" {
		by = "unknown"
	}
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > maxClientReason || strings.IndexFunc(reason, unicode.IsControl) >= 0 {
		return nil, fmt.Errorf("%w: a revocation needs a reason of 1 to %d characters without control characters", ErrInvalid, maxClientReason)
	}
	now := s.opt.Now().UTC()
	err := s.episodeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE api_clients SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at IS NULL`,
			formatTime(now), by, id)
		if err != nil {
			return classify(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM api_clients WHERE id = ?`, id).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: %q", ErrClientNotFound, clipInput(id))
			}
			return classify(err)
		}
		c, _, err := scanClient(tx.QueryRowContext(ctx, `SELECT `+clientColumns+` FROM api_clients WHERE id = ?`, id))
		if err != nil {
			return err
		}
		return classify(appendEvent(ctx, tx, event{At: now, Type: EventClientRevoked, Data: clientEventData(c, by, reason)}))
	})
	if err != nil {
		return nil, err
	}
	return s.APIClient(ctx, id)
}

// APIClientByKey returns the unrevoked client an API key belongs to. Every failure (malformed key,
// unknown client, wrong secret, revoked, certificate client) wraps ErrClientCredentials; the secret is
// compared by its hash in constant time, and a key naming no client costs the same comparison.
func (s *Store) APIClientByKey(ctx context.Context, key string) (*APIClient, error) {
	id, secret, ok := splitKey(key)
	if !ok {
		// Never quoted: a malformed key may be a secret pasted alone.
		return nil, fmt.Errorf("%w: malformed API key", ErrClientCredentials)
	}
	got := hashSecret(secret)
	c, want, err := scanClient(s.rdb.QueryRowContext(ctx, `SELECT `+clientColumns+` FROM api_clients WHERE id = ?`, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		equalConstantTime(got, hashSecret("")) // the same work as a known client
		return nil, fmt.Errorf("%w: no client %s", ErrClientCredentials, id)
	case err != nil:
		return nil, err
	}
	match := equalConstantTime(got, want.String)
	switch {
	case !want.Valid || !match:
		return nil, fmt.Errorf("%w: wrong key for client %s", ErrClientCredentials, c.ID)
	case c.Revoked():
		return nil, fmt.Errorf("%w: client %s was revoked", ErrClientCredentials, c.ID)
	}
	return c, nil
}

// APIClientByCert returns the unrevoked client pinned to a certificate fingerprint; failures wrap
// ErrClientCredentials.
func (s *Store) APIClientByCert(ctx context.Context, fingerprint string) (*APIClient, error) {
	c, _, err := scanClient(s.rdb.QueryRowContext(ctx, `SELECT `+clientColumns+` FROM api_clients WHERE cert_fingerprint = ?`,
		strings.ToLower(fingerprint)))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("%w: no client has certificate %s", ErrClientCredentials, clipInput(fingerprint))
	case err != nil:
		return nil, err
	case c.Revoked():
		return nil, fmt.Errorf("%w: client %s was revoked", ErrClientCredentials, c.ID)
	}
	return c, nil
}

const clientColumns = `id, agency, name, key_hash, cert_fingerprint, created_at, created_by, revoked_at, revoked_by`

// scanClient scans clientColumns; it also returns the key hash (for the key check only).
func scanClient(sc scanner) (*APIClient, sql.NullString, error) {
	var c APIClient
	var keyHash, fp, revokedAt, revokedBy sql.NullString
	var created string
	if err := sc.Scan(&c.ID, &c.Agency, &c.Name, &keyHash, &fp, &created, &c.CreatedBy, &revokedAt, &revokedBy); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, keyHash, err
		}
		return nil, keyHash, classify(err)
	}
	c.Credential, c.CertFingerprint, c.RevokedBy = "api-key", fp.String, revokedBy.String
	if fp.Valid {
		c.Credential = "certificate"
	}
	var err error
	if c.CreatedAt, err = parseTime(created); err == nil && revokedAt.Valid {
		c.RevokedAt, err = parseTime(revokedAt.String)
	}
	if err != nil {
		return nil, keyHash, fmt.Errorf("mailbox: API client %s: %w", c.ID, err)
	}
	return &c, keyHash, nil
}

// tokenEncoding is Crockford's base32 (no I, L, O, U), as the gateway's other IDs.
var tokenEncoding = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// randomToken returns n random bytes in tokenEncoding.
func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return tokenEncoding.EncodeToString(b), nil
}

// splitKey takes "cafk_<id>_<secret>" apart; ok is false when key does not have that form.
func splitKey(key string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(key), APIKeyPrefix)
	id, secret, cut := strings.Cut(rest, "_")
	id, secret = strings.ToUpper(id), strings.ToLower(secret)
	return id, secret, found && cut && len(id) == 16 && len(secret) == 52
}

// hashSecret is the stored form of a key's secret: its secret is 256 random bits, so a plain SHA-256
// is enough (no stretching needed, unlike a password).
func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte("cafgate/api-key/v1\x00" + secret))
	return hex.EncodeToString(sum[:])
}

// clip keeps a value that came from a request short in errors.
func clipInput(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

// Ledger events of API clients.
const (
	EventClientAdded   = ledger.ClientAdded
	EventClientRevoked = ledger.ClientRevoked
)

// maxClientReason bounds a revocation's reason.
const maxClientReason = 500

// clientEventData is the data of "client-added" and "client-revoked": which client, which agency, who
// and (for a revocation) why. Never the key or its hash.
type clientEvent struct {
	Client          string `json:"client"`
	Agency          string `json:"agency"`
	Name            string `json:"name"`
	Credential      string `json:"credential"`
	CertFingerprint string `json:"cert_fingerprint,omitempty"`
	By              string `json:"by"`
	Reason          string `json:"reason,omitempty"`
}

func clientEventData(c *APIClient, by, reason string) clientEvent {
	return clientEvent{Client: c.ID, Agency: c.Agency, Name: c.Name, Credential: c.Credential, CertFingerprint: c.CertFingerprint,
		By: by, Reason: reason}
}

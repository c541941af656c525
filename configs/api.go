package configs

import (
	"fmt"
	"net"
)

// APIConfig is the HTTPS API for case systems (/v1/...): request limits, the per-client rate limit,
// the failed-authentication limit and how long idempotency keys are remembered. Clients are registered
// with `cafgate client add` (docs/api.md).
type APIConfig struct {
	Listen               string   `toml:"listen" default:"" doc:"Listen address of a separate HTTPS listener for the API, where client certificates are requested (mutual TLS clients). Empty serves the API on https.listen, which then requests client certificates too (a browser holding certificates may offer a chooser on the pickup page). When set, https.listen no longer serves /v1/ nor requests client certificates."`
	MaxUploadSize        Size     `toml:"max_upload_size" default:"25MiB" doc:"Largest package upload (the request body, either form); 413 above it."`
	MaxJSONSize          Size     `toml:"max_json_size" default:"64KiB" doc:"Largest JSON request body (episodes, consent); 413 above it."`
	MaxRecipients        int      `toml:"max_recipients" default:"100" doc:"Most recipients of one uploaded package; 422 above it."`
	MaxBufferedBytes     Size     `toml:"max_buffered_bytes" default:"256MiB" doc:"Most memory all uploads may hold together while they are checked and stored (an upload is received into an encrypted spool file in data_dir and holds memory only after that: 3 times its size for a package sent as it is, 8 times the documents' size for a form, plus 1 MiB); an upload that would pass it is answered 503 with Retry-After. At least 8 times max_upload_size plus 1 MiB."`
	RequestTimeout       Duration `toml:"request_timeout" default:"2m" doc:"Time allowed for one request, from its first byte to its answer (the upload included)."`
	RateLimit            int      `toml:"rate_limit" default:"120" doc:"Requests per minute one client may make, on average; past it (and the burst) the answer is 429 with Retry-After."`
	RateBurst            int      `toml:"rate_burst" default:"30" doc:"Requests one client may make at once above rate_limit before it is slowed down."`
	AuthFailuresPerIP    int      `toml:"auth_failures_per_ip" default:"20" doc:"Failed client authentications from one address, within auth_failure_window, after which every request from it is answered 429 until the window passes."`
	AuthFailureWindow    Duration `toml:"auth_failure_window" default:"15m" doc:"How long a failed client authentication counts against its address."`
	IdempotencyKeyExpiry Duration `toml:"idempotency_key_expiry" default:"24h" doc:"How long the answer to an upload with an Idempotency-Key is remembered; a retry within it gets the first answer and is never accepted twice."`
}

// Memory an API upload holds while it is checked and stored, per byte of its size (a package sent as
// it is, or the documents of a form), plus a fixed allowance; gateway/api takes it from the
// max_buffered_bytes budget and its tests check the figures against what an upload allocates.
const (
	APIRawMemFactor  = 3
	APIFormMemFactor = 8
	APIMemOverhead   = 1 << 20
)

// MinAPIBufferedBytes is the least max_buffered_bytes that lets an upload of maxUpload bytes through.
func MinAPIBufferedBytes(maxUpload int64) int64 { return APIFormMemFactor*maxUpload + APIMemOverhead }

// validateAPI checks [api]. The lead calls it from Config.validate.
func (c *Config) validateAPI(file string) Problems {
	var ps Problems
	a := c.API
	positive := map[string]int64{
		"api.max_upload_size": int64(a.MaxUploadSize), "api.max_json_size": int64(a.MaxJSONSize),
		"api.max_recipients": int64(a.MaxRecipients), "api.max_buffered_bytes": int64(a.MaxBufferedBytes),
		"api.request_timeout": int64(a.RequestTimeout), "api.rate_limit": int64(a.RateLimit),
		"api.rate_burst": int64(a.RateBurst), "api.auth_failures_per_ip": int64(a.AuthFailuresPerIP),
		"api.auth_failure_window": int64(a.AuthFailureWindow), "api.idempotency_key_expiry": int64(a.IdempotencyKeyExpiry),
	}
	for _, k := range sortedKeys(positive) {
		if positive[k] <= 0 {
			ps = append(ps, Problem{File: file, Setting: k, Message: "must be greater than zero (an unlimited setting is not allowed)"})
		}
	}
	if minBuf := MinAPIBufferedBytes(int64(a.MaxUploadSize)); a.MaxBufferedBytes > 0 && int64(a.MaxBufferedBytes) < minBuf {
		ps = append(ps, Problem{File: file, Setting: "api.max_buffered_bytes",
			Message: fmt.Sprintf("must be at least %d bytes (%d times max_upload_size plus 1 MiB: what the largest upload holds while it is checked and stored), or no upload of the largest size could ever be taken",
				minBuf, APIFormMemFactor)})
	}
	if a.IdempotencyKeyExpiry > 0 && a.IdempotencyKeyExpiry < 2*a.RequestTimeout {
		ps = append(ps, Problem{File: file, Setting: "api.idempotency_key_expiry",
			Message: "must be at least twice request_timeout: a key must outlive every retry of the upload it guards"})
	}
	if a.Listen != "" {
		if _, port, err := net.SplitHostPort(a.Listen); err != nil || port == "" {
			ps = append(ps, Problem{File: file, Setting: "api.listen", Message: fmt.Sprintf("%q is not a listen address such as :8443 or 127.0.0.1:8443", a.Listen)})
		} else if a.Listen == c.HTTPS.Listen {
			ps = append(ps, Problem{File: file, Setting: "api.listen",
				Message: "must differ from https.listen (leave it empty to serve the API on the HTTPS listener)"})
		}
	}
	return ps
}

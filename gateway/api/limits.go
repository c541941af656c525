// Limits: request sizes and times, the per-client rate limit (a token bucket), and the memory budget
// all uploads under way share.

package api

import (
	"math"
	"sync"
	"time"

	"cafgate/configs"
)

// Limits bound what the API takes. Every field must be positive.
type Limits struct {
	MaxUploadBytes       int64         // a package upload's body
	MaxJSONBytes         int64         // a JSON request body
	MaxRecipients        int           // recipients of one package
	MaxBufferedBytes     int64         // memory all uploads under way may hold
	RequestTimeout       time.Duration // one request, first byte to answer
	RatePerMinute        int           // requests per client per minute, on average
	RateBurst            int           // requests a client may make at once
	AuthFailuresPerIP    int           // failed authentications from one address before it is blocked
	AuthFailureWindow    time.Duration // how long a failed authentication counts
	IdempotencyKeyExpiry time.Duration // how long an upload's answer is kept for retries
}

// LimitsFromConfig takes the limits from the [api] table.
func LimitsFromConfig(c configs.APIConfig) Limits {
	return Limits{
		MaxUploadBytes: int64(c.MaxUploadSize), MaxJSONBytes: int64(c.MaxJSONSize), MaxRecipients: c.MaxRecipients,
		MaxBufferedBytes: int64(c.MaxBufferedBytes), RequestTimeout: c.RequestTimeout.D(), RatePerMinute: c.RateLimit,
		RateBurst: c.RateBurst, AuthFailuresPerIP: c.AuthFailuresPerIP, AuthFailureWindow: c.AuthFailureWindow.D(),
		IdempotencyKeyExpiry: c.IdempotencyKeyExpiry.D(),
	}
}

// DefaultLimits are the limits of the default configuration.
func DefaultLimits() Limits { return LimitsFromConfig(configs.Default().API) }

// leaseOf is how long a pending idempotency key of this process counts as in progress: past twice the
// request time limit the request holding it has certainly ended.
func (l Limits) leaseOf() time.Duration { return 2*l.RequestTimeout + 10*time.Second }

// buckets is a token bucket per client: RateBurst tokens, refilled at RatePerMinute.
type buckets struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	now    func() time.Time
	tokens map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxBuckets bounds the map; clients are few (one per agency system), so this is only a backstop.
const maxBuckets = 100000

func newBuckets(perMinute, burst int, now func() time.Time) *buckets {
	return &buckets{rate: float64(perMinute) / 60, burst: float64(max(burst, 1)), now: now, tokens: map[string]*bucket{}}
}

// take spends a token of key's bucket, or returns how long until one is there.
func (b *buckets) take(key string) (ok bool, retryAfter time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	bk := b.tokens[key]
	if bk == nil {
		if len(b.tokens) >= maxBuckets {
			b.tokens = map[string]*bucket{} // forgetting is generous, never wrong
		}
		bk = &bucket{tokens: b.burst, at: now}
		b.tokens[key] = bk
	}
	if d := now.Sub(bk.at); d > 0 {
		bk.tokens = math.Min(b.burst, bk.tokens+d.Seconds()*b.rate)
		bk.at = now
	}
	if bk.tokens >= 1 {
		bk.tokens--
		return true, 0
	}
	wait := time.Duration((1 - bk.tokens) / b.rate * float64(time.Second))
	return false, max(wait, time.Second)
}

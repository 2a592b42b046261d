package httpapi

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/diffute/diffute"
)

// RateLimit is a token bucket: Rate requests per second on average, Burst at
// once. A zero Rate means no limit.
type RateLimit struct {
	Rate  float64 `json:"rate_per_second"`
	Burst int     `json:"burst"`
}

// TenantPolicy is what one organization may do: a request rate per API key and
// quotas per project.
type TenantPolicy struct {
	RateLimit RateLimit
	Quota     diffute.Quota
}

// retryAfterError asks writeError to add a Retry-After header.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// setRetryAfter sets Retry-After when err carries one, in whole seconds rounded
// up (RFC 9110 allows no fractions), at least 1.
func setRetryAfter(w http.ResponseWriter, err error) {
	var ra *retryAfterError
	if errors.As(err, &ra) {
		secs := int64(math.Ceil(ra.after.Seconds()))
		w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	}
}

// rateLimiter keeps one token bucket per K (an API key, a client address), in
// memory: limits are per process, which in scale-out mode means per API node
// (documented).
type rateLimiter[K comparable] struct {
	mu      sync.Mutex
	buckets map[K]*bucket
	now     func() time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
	limit  RateLimit
}

// maxIdleBuckets bounds the map: past it, buckets that have refilled completely
// (equivalent to absent ones) are dropped.
const maxIdleBuckets = 10000

// allow takes a token from key's bucket under limit. When none is left it
// returns how long until one will be.
func (l *rateLimiter[K]) allow(key K, limit RateLimit) (bool, time.Duration) {
	return l.take(key, limit, 1)
}

// peek reports whether key's bucket has a token, taking none. A key without a
// bucket (the common case: a client that never failed) has a full one, and
// none is made for it.
func (l *rateLimiter[K]) peek(key K, limit RateLimit) (bool, time.Duration) {
	l.mu.Lock()
	_, ok := l.buckets[key]
	l.mu.Unlock()
	if !ok {
		return true, 0
	}
	return l.take(key, limit, 0)
}

func (l *rateLimiter[K]) take(key K, limit RateLimit, n float64) (bool, time.Duration) {
	if limit.Rate <= 0 {
		return true, 0
	}
	burst := float64(max(limit.Burst, 1))
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.buckets == nil {
		l.buckets = make(map[K]*bucket)
	}
	b, ok := l.buckets[key]
	if !ok || b.limit != limit {
		if len(l.buckets) >= maxIdleBuckets {
			l.sweep(now)
		}
		b = &bucket{tokens: burst, last: now, limit: limit}
		l.buckets[key] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*limit.Rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens -= n
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / limit.Rate * float64(time.Second))
	return false, wait
}

func (l *rateLimiter[K]) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*b.limit.Rate >= float64(max(b.limit.Burst, 1)) {
			delete(l.buckets, k)
		}
	}
}

// policy returns org's policy; without a Policy function, no limits.
func (s *Server) policy(org string) TenantPolicy {
	if s.Policy == nil {
		return TenantPolicy{}
	}
	return s.Policy(org)
}

// DefaultAuthFailureLimit is Server.AuthFailureLimit's default: 20 failed key
// checks at once from one address, then one every 2 seconds — plenty for a
// mistyped key, far too few to guess one.
var DefaultAuthFailureLimit = RateLimit{Rate: 0.5, Burst: 20}

func (s *Server) authFailureLimit() RateLimit {
	if s.AuthFailureLimit == (RateLimit{}) {
		return DefaultAuthFailureLimit
	}
	return s.AuthFailureLimit
}

func (s *Server) initLimiters() {
	s.limiter = &rateLimiter[int64]{now: time.Now}
	s.authFailures = &rateLimiter[string]{now: time.Now}
}

// rateLimit spends a token of key's bucket, or refuses with 429 and Retry-After.
func (s *Server) rateLimit(key *diffute.APIKey) error {
	s.limiterOnce.Do(s.initLimiters)
	ok, wait := s.limiter.allow(key.ID, s.policy(key.Org).RateLimit)
	if ok {
		return nil
	}
	return &retryAfterError{after: wait, err: diffute.Errorf(diffute.ERATELIMIT,
		"too many requests for this API key; retry after %d s", int64(math.Ceil(wait.Seconds())))}
}

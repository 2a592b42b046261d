package webhook

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"
)

// DefaultTimeout bounds one attempt: connect, send, and read the answer.
const DefaultTimeout = 15 * time.Second

// DefaultMaxRetryAfter caps a receiver's Retry-After: longer than the longest
// scheduled delay, short enough that a wrong header cannot park a message for days.
const DefaultMaxRetryAfter = 12 * time.Hour

// DefaultRetrySchedule is the delay before each attempt: the first at once, then
// backing off to a last try about 28 hours after the job finished.
var DefaultRetrySchedule = []time.Duration{
	0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// Config configures deliveries.
type Config struct {
	// AllowPrivate lets webhooks reach loopback and private addresses (RFC 1918,
	// IPv6 unique local; --webhook-allow-private), for development and closed
	// networks. It never opens link-local or cloud metadata addresses.
	AllowPrivate bool
	// AllowCIDRs are internal ranges allowed even when AllowPrivate is false.
	AllowCIDRs []netip.Prefix
	// Timeout bounds one attempt; default DefaultTimeout.
	Timeout time.Duration
	// MaxRetryAfter caps how far a receiver's Retry-After (on 429 or 503) may
	// push the next attempt back; default DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
	// RetrySchedule holds the delay before attempt i+1 after attempt i failed
	// (entry 0, the delay of the first attempt, is normally 0). Its length is the
	// number of attempts. Default DefaultRetrySchedule.
	RetrySchedule []time.Duration
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if len(c.RetrySchedule) == 0 {
		c.RetrySchedule = DefaultRetrySchedule
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Timeout < 0 || c.MaxRetryAfter < 0 {
		errs = append(errs, fmt.Errorf("webhook: timeout %v or Retry-After cap %v is negative", c.Timeout, c.MaxRetryAfter))
	}
	for i, d := range c.RetrySchedule {
		if d < 0 {
			errs = append(errs, fmt.Errorf("webhook: retry schedule entry %d (%v) is negative", i, d))
		}
	}
	for _, p := range c.AllowCIDRs {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("webhook: invalid allowed CIDR %v", p))
		}
	}
	return errors.Join(errs...)
}

// MaxAttempts is the number of attempts the schedule allows.
func (c Config) MaxAttempts() int { return len(c.WithDefaults().RetrySchedule) }

// NextRetry returns the delay before the attempt that follows failed attempt
// (1-based), with ±10% jitter so that many deliveries failing together do not
// retry in lockstep. ok is false when the schedule is spent.
func (c Config) NextRetry(attempt int) (delay time.Duration, ok bool) {
	s := c.WithDefaults().RetrySchedule
	if attempt < 1 || attempt >= len(s) {
		return 0, false
	}
	return jitter(s[attempt]), true
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	spread := int64(d) / 10
	if spread == 0 {
		return d
	}
	return d + time.Duration(rand.Int64N(2*spread+1)-spread)
}

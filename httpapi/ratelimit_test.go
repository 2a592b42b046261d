package httpapi

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/diffute/diffute"
)

func TestTokenBucket(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	l := &rateLimiter[int64]{now: func() time.Time { return now }}
	lim := RateLimit{Rate: 2, Burst: 3}
	for i := range 3 {
		if ok, _ := l.allow(1, lim); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, wait := l.allow(1, lim)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("over the burst: ok=%v wait=%v, want refused for 500ms", ok, wait)
	}
	if ok, _ := l.allow(2, lim); !ok {
		t.Fatal("another key shares the bucket")
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := l.allow(1, lim); !ok {
		t.Fatal("refused after the wait it announced")
	}
	if ok, _ := l.allow(1, lim); ok {
		t.Fatal("a token appeared from nowhere")
	}
	now = now.Add(time.Hour)
	for i := range 3 {
		if ok, _ := l.allow(1, lim); !ok {
			t.Fatalf("after an hour, request %d refused: the bucket must refill to its burst, not beyond", i)
		}
	}
	if ok, _ := l.allow(1, lim); ok {
		t.Fatal("the bucket refilled beyond its burst")
	}
	if ok, _ := l.allow(1, RateLimit{}); !ok {
		t.Fatal("a zero rate must mean no limit")
	}
}

func TestBucketSweep(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	l := &rateLimiter[int64]{now: func() time.Time { return now }}
	lim := RateLimit{Rate: 1, Burst: 1}
	for k := range int64(maxIdleBuckets) {
		l.allow(k, lim)
	}
	now = now.Add(time.Minute) // every bucket has refilled
	l.allow(-1, lim)
	if n := len(l.buckets); n != 1 {
		t.Fatalf("%d buckets after the sweep, want 1", n)
	}
}

func TestRetryAfterHeader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{{1500 * time.Millisecond, "2"}, {time.Millisecond, "1"}, {17 * time.Minute, "1020"}} {
		w := httptest.NewRecorder()
		setRetryAfter(w, &retryAfterError{after: tc.d, err: diffute.Errorf(diffute.ERATELIMIT, "x")})
		if got := w.Header().Get("Retry-After"); got != tc.want {
			t.Errorf("Retry-After for %v = %q, want %q", tc.d, got, tc.want)
		}
	}
}

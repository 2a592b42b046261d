package httpapi_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/httpapi"
)

// openStream opens the events stream of job id with key; the caller closes it.
func openStream(t *testing.T, b *testBundle, key string, id int64) *http.Response {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		b.srv.URL+"/"+org+"/"+project+"/media/inference/"+strconv.FormatInt(id, 10)+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-api-key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestEventsStreamEndsWhenKeyRevoked is the regression test of an events stream
// outliving the revocation of the key that opened it.
func TestEventsStreamEndsWhenKeyRevoked(t *testing.T) {
	t.Parallel()
	b := setup(t)
	job := runningJob(t, b)
	resp := openStream(t, b, b.key, job.ID)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %s", resp.Status)
	}
	first, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		t.Fatalf("first line: %q, %v", first, err)
	}
	b.mem.revokeAll()
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, resp.Body)
		ended <- err
	}()
	select {
	case <-ended:
	case <-time.After(10 * time.Second): // a give-up bound; the stream checks its key every second
		t.Fatal("the stream of a revoked key was still open after 10 s")
	}
}

// TestEventsStreamsCappedPerKey is the regression test of uncapped streams per
// key (each polls the database four times a second): beyond the cap, 429.
func TestEventsStreamsCappedPerKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.api.MaxStreamsPerKey = 2 // before the first stream; nothing reads it yet
	job := runningJob(t, b)
	for i := range 2 {
		if resp := openStream(t, b, b.key, job.ID); resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: %s", i+1, resp.Status)
		}
	}
	resp := openStream(t, b, b.key, job.ID)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third stream: %s (Retry-After %q), want 429 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
	}
	other := b.mem.addKey(diffute.APIKey{ID: 2, Org: org, Name: "other"})
	if resp := openStream(t, b, other, job.ID); resp.StatusCode != http.StatusOK {
		t.Errorf("another key's stream: %s, want 200", resp.Status)
	}
}

// TestFailedKeyChecksLimitedPerAddress is the regression test of failed API
// key checks never being rate limited: past the burst, a client address that
// keeps failing is answered 429 before any lookup.
func TestFailedKeyChecksLimitedPerAddress(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.api.AuthFailureLimit = httpapi.RateLimit{Rate: 0.01, Burst: 3}
	path := b.srv.URL + "/" + org + "/" + project + "/media/inference/1"
	status := func(key string) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, path, nil)
		req.Header.Set("x-api-key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	for i := range 3 {
		if code, _ := status("dfk_guess" + strconv.Itoa(i)); code != http.StatusUnauthorized {
			t.Fatalf("failed check %d: %d, want 401", i+1, code)
		}
	}
	if code, ra := status("dfk_guess-more"); code != http.StatusTooManyRequests || ra == "" {
		t.Fatalf("failed check past the burst: %d (Retry-After %q), want 429", code, ra)
	}
}

// TestEventsStreamOutlivesReadTimeout checks that the server's read timeout,
// which bounds how long a request may take to arrive, does not cut an events
// stream that has been open longer.
func TestEventsStreamOutlivesReadTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.api.EventsPollInterval = 50 * time.Millisecond
	srv := httptest.NewUnstartedServer(b.api.Handler())
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	b.srv = srv
	job := runningJob(t, b)
	resp := openStream(t, b, b.key, job.ID)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %s", resp.Status)
	}
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	time.Sleep(time.Second) // past the read timeout, on purpose
	done := *job
	done.Status = diffute.StatusSucceeded
	done.FinishedAt = time.Now()
	b.mem.putJob(&done)
	for line := range lines {
		if line == "event: done" {
			return
		}
	}
	t.Fatal("the stream ended before its job's done event: cut by the read timeout")
}

// TestCheckNamesMissingDependencies: every store dependency is required and
// checked once, at start; Handler refuses a Server that lacks one.
func TestCheckNamesMissingDependencies(t *testing.T) {
	t.Parallel()
	s := &httpapi.Server{Store: &fakeStore{}}
	err := s.Check()
	if err == nil || !strings.Contains(err.Error(), "Keys, Media, Tenancy, Webhooks") {
		t.Fatalf("Check = %v, want the four missing dependencies named", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Handler served a Server without its dependencies")
		}
	}()
	s.Handler()
}

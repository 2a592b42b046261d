package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordedInstruments is an httpapi.Instruments that keeps what it was told.
type recordedInstruments struct {
	mu        sync.Mutex
	requests  map[string]int // "route code"
	submitted int
	rejected  map[string]int
}

func (r *recordedInstruments) ObserveRequest(route string, status int, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d <= 0 {
		panic("non-positive request duration")
	}
	r.requests[route+" "+http.StatusText(status)]++
}

func (r *recordedInstruments) JobSubmitted() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.submitted++
}

func (r *recordedInstruments) JobRejected(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejected[reason]++
}

// setupInstrumented is setup with the API's instruments recorded.
func setupInstrumented(t *testing.T) (*testBundle, *recordedInstruments) {
	t.Helper()
	b := setup(t)
	rec := &recordedInstruments{requests: map[string]int{}, rejected: map[string]int{}}
	b.api.Instruments = rec
	srv := httptest.NewServer(b.api.Handler())
	t.Cleanup(srv.Close)
	b.srv = srv
	b.signer.BaseURL = srv.URL // before the first request, as setup does
	return b, rec
}

// Requests are counted by the route pattern that matched, never the raw path;
// submissions by whether they were accepted and why not.
func TestInstrumentCountsRoutesAndSubmissions(t *testing.T) {
	t.Parallel()
	b, rec := setupInstrumented(t)
	resp, body := b.put(t, mustJSON(t, exampleRequest()))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	var acc struct {
		JobID int64 `json:"job_id"`
	}
	if err := json.Unmarshal(body, &acc); err != nil {
		t.Fatal(err)
	}
	b.put(t, `{"prompts": [`) // malformed: validation
	b.do(t, http.MethodPut, "/"+org+"/"+project+"/media/inference", map[string]string{"Content-Type": "application/json"},
		mustJSON(t, exampleRequest())) // no key: auth
	b.get(t, "/"+org+"/"+project+"/media/inference/"+strconv.FormatInt(acc.JobID, 10))
	b.get(t, "/"+org+"/"+project+"/media/inference/12345")
	b.get(t, "/no/such/route/at/all")
	u, _ := b.disk.URL(t.Context(), "acme/web-app/1/p/0.png", time.Hour)
	b.do(t, http.MethodGet, strings.TrimPrefix(u, b.srv.URL), nil, nil)

	want := map[string]int{
		"PUT /{org}/{project}/media/inference Accepted":           1,
		"PUT /{org}/{project}/media/inference Bad Request":        1,
		"PUT /{org}/{project}/media/inference Unauthorized":       1,
		"GET /{org}/{project}/media/inference/{job_id} OK":        1,
		"GET /{org}/{project}/media/inference/{job_id} Not Found": 1,
		"unmatched Not Found":                                     1,
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for k, n := range want {
		if rec.requests[k] != n {
			t.Errorf("requests[%q] = %d, want %d (all: %v)", k, rec.requests[k], n, rec.requests)
		}
	}
	var media int
	for k, n := range rec.requests {
		if strings.HasPrefix(k, "GET /media/{key...} ") {
			media += n
		}
		if strings.Contains(k, "12345") || strings.Contains(k, "acme") {
			t.Errorf("a raw path became a label: %q", k)
		}
	}
	if media != 1 {
		t.Errorf("media route counted %d times, want 1: %v", media, rec.requests)
	}
	if rec.submitted != 1 || rec.rejected["validation"] != 1 || rec.rejected["auth"] != 1 || len(rec.rejected) != 2 {
		t.Errorf("submitted %d, rejected %v; want 1 and validation 1, auth 1", rec.submitted, rec.rejected)
	}
}

// Every response carries X-Request-Id: a sane incoming one is kept, anything
// else replaced; every log line of the request carries it, and durations are
// in milliseconds.
func TestRequestIDInResponsesAndLogs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	generated := regexp.MustCompile(`^[0-9a-f]{24}$`)
	for _, c := range []struct {
		in   string
		keep bool
	}{
		{"", false},
		{"req-42.a_b:c", true},
		{"has space", false},
		{"bad\"quote", false},
		{strings.Repeat("x", 129), false},
		{strings.Repeat("y", 128), true},
	} {
		h := map[string]string{"x-api-key": b.key}
		if c.in != "" {
			h["X-Request-Id"] = c.in
		}
		resp, _ := b.do(t, http.MethodGet, "/"+org+"/"+project+"/media/inference/777", h, nil)
		id := resp.Header.Get("X-Request-Id")
		switch {
		case c.keep && id != c.in:
			t.Errorf("incoming %q: answered %q, want it kept", c.in, id)
		case !c.keep && !generated.MatchString(id):
			t.Errorf("incoming %q: answered %q, want a generated id", c.in, id)
		}
		var found bool
		for line := range strings.Lines(b.logs.String()) {
			var l map[string]any
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatalf("log line %q: %v", line, err)
			}
			if l["msg"] != "request" || l["request_id"] != id {
				continue
			}
			found = true
			if _, ok := l["duration_ms"].(float64); !ok {
				t.Errorf("request line without a numeric duration_ms: %s", line)
			}
			if _, ok := l["duration"]; ok {
				t.Errorf("request line with a duration in another unit: %s", line)
			}
			if l["route"] != "GET /{org}/{project}/media/inference/{job_id}" || l["status"] != 404.0 {
				t.Errorf("request line: %s", line)
			}
		}
		if !found {
			t.Errorf("no request log line with request_id %q:\n%s", id, b.logs.String())
		}
	}
	// Two requests never share a generated id.
	r1, _ := b.do(t, http.MethodGet, "/healthz", nil, nil)
	r2, _ := b.do(t, http.MethodGet, "/healthz", nil, nil)
	if r1.Header.Get("X-Request-Id") == r2.Header.Get("X-Request-Id") {
		t.Error("two requests got the same id")
	}
}

package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/httpapi"
)

func (b *testBundle) putWith(t *testing.T, header map[string]string, body any) (*http.Response, []byte) {
	t.Helper()
	h := map[string]string{"Content-Type": "application/json", "x-api-key": b.key + "/default"}
	for k, v := range header {
		h[k] = v
	}
	return b.do(t, http.MethodPut, "/"+org+"/"+project+"/media/inference", h, body)
}

// onlyJob waits (with a deadline) for the one job a test submitted and returns
// its ID, or 0 after reporting that none came. It may run in another goroutine.
func (b *testBundle) onlyJob(t *testing.T) int64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b.mem.mu.Lock()
		for id := range b.mem.jobs {
			b.mem.mu.Unlock()
			return id
		}
		b.mem.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	t.Error("no job submitted")
	return 0
}

func TestPreferWaitBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct {
		name, header, value string
	}{
		{"wait=0", "Prefer", "wait=0"},
		{"wait=999", "Prefer", "wait=999"},
		{"wait=61", "Prefer", "wait=61"},
		{"wait junk", "Prefer", "wait=soon"},
		{"wait fraction", "Prefer", "wait=1.5"},
		{"wait negative", "Prefer", "wait=-3"},
		{"wait without value", "Prefer", "wait"},
		{"wait twice", "Prefer", "wait=5, wait=6"},
		{"cancel-after junk", "Cancel-After", "later"},
		{"cancel-after zero", "Cancel-After", "0"},
		{"cancel-after negative", "Cancel-After", "-5s"},
		{"cancel-after too long", "Cancel-After", "48h"},
		{"cancel-after empty", "Cancel-After", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, body := b.putWith(t, map[string]string{tc.header: tc.value}, mustJSON(t, exampleRequest()))
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, body %s", resp.StatusCode, body)
			}
			if p := decodeProblem(t, resp, body); p.Field != tc.header {
				t.Errorf("problem %+v does not name %s", p, tc.header)
			}
		})
	}
	if n := b.mem.createCount(); n != 0 {
		t.Errorf("%d jobs created from bad headers", n)
	}
}

func TestPreferWaitFinished(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// The "worker": finish the job once it is stored and tell the waiters.
	go func() {
		id := b.onlyJob(t)
		if id == 0 {
			return
		}
		b.mem.mu.Lock()
		j := b.mem.jobs[id]
		j.Status, j.StartedAt, j.FinishedAt = diffute.StatusFailed, time.Now(), time.Now()
		j.Error = "the engine gave up"
		b.mem.mu.Unlock()
		b.api.JobEnds.Ended(id)
	}()
	start := time.Now()
	resp, body := b.putWith(t, map[string]string{"Prefer": "respond-async, wait=30"}, mustJSON(t, exampleRequest()))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("answered after %s: the wake-up was missed", time.Since(start))
	}
	if got := resp.Header.Get("Preference-Applied"); got != "wait=30" {
		t.Errorf("Preference-Applied = %q", got)
	}
	var st httpapi.JobStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if st.Status != diffute.StatusFailed || st.Manifest == nil || st.Manifest.Status != diffute.StatusFailed || st.Error == "" {
		t.Errorf("status %s manifest %+v error %q", st.Status, st.Manifest, st.Error)
	}
}

func TestPreferWaitTimesOut(t *testing.T) {
	t.Parallel()
	b := setup(t)
	resp, body := b.putWith(t, map[string]string{"Prefer": "wait=1"}, mustJSON(t, exampleRequest()))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Preference-Applied"); got != "wait=1" {
		t.Errorf("Preference-Applied = %q", got)
	}
	if resp.Header.Get("Location") == "" {
		t.Error("no Location")
	}
}

func TestCancelAfter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, d := range []string{"100ms", "0.1"} {
		t.Run(d, func(t *testing.T) {
			// Nothing runs the job: Cancel-After ends it, and the waiting PUT sees that.
			resp, body := b.putWith(t, map[string]string{"Prefer": "wait=20", "Cancel-After": d}, mustJSON(t, exampleRequest()))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, body %s", resp.StatusCode, body)
			}
			var st httpapi.JobStatus
			if err := json.Unmarshal(body, &st); err != nil {
				t.Fatal(err)
			}
			if st.Status != diffute.StatusCanceled || st.Manifest == nil {
				t.Errorf("status %s manifest %+v", st.Status, st.Manifest)
			}
		})
	}
}

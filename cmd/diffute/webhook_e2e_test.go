package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/webhookverify"
)

// scriptedReceiver is a real receiver on loopback whose answer to the n-th
// request (1-based) is chosen by answer; it records every request.
type scriptedReceiver struct {
	srv    *http.Server
	ln     net.Listener
	url    string
	answer func(n int, w http.ResponseWriter, r *http.Request)
	mu     sync.Mutex
	got    []received
	times  []time.Time
	notify chan struct{}
}

func newScriptedReceiver(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *scriptedReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &scriptedReceiver{ln: ln, url: "http://" + ln.Addr().String(), answer: answer, notify: make(chan struct{}, 64)}
	r.serve(t)
	return r
}

func (r *scriptedReceiver) serve(t *testing.T) {
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body bytes.Buffer
		body.ReadFrom(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{header: req.Header.Clone(), body: body.Bytes()})
		r.times = append(r.times, time.Now())
		n := len(r.got)
		r.mu.Unlock()
		if r.answer != nil {
			r.answer(n, w, req)
		}
		select {
		case r.notify <- struct{}{}:
		default:
		}
	})}
	srv, ln := r.srv, r.ln
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// waitCount polls until at least n requests arrived.
func (r *scriptedReceiver) waitCount(t *testing.T, n int, within time.Duration) []received {
	t.Helper()
	deadline := time.After(within)
	for {
		r.mu.Lock()
		got := append([]received(nil), r.got...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.notify:
		case <-deadline:
			t.Fatalf("%d requests within %v, want %d", len(got), within, n)
		}
	}
}

func (r *scriptedReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// tinyJob is a request that the tiny model finishes in well under a second.
func tinyJob(webhook string, events ...string) map[string]any {
	req := map[string]any{
		"name": "hooks",
		"prompts": []map[string]any{
			{"name": "a", "prompt": "a lighthouse", "num_images": 1, "height": 64, "width": 64, "steps": 1, "seed": 1},
			{"name": "b", "prompt": "a harbour", "num_images": 1, "height": 64, "width": 64, "steps": 1, "seed": 2},
		},
		"webhook": webhook, "secret": "bearer-s3cret", "pretrained_model_name": "diffute/tiny-sd",
	}
	if len(events) > 0 {
		req["webhook_events"] = events
	}
	return req
}

func submit(t *testing.T, srv *testServer, key string, req map[string]any) int64 {
	t.Helper()
	resp, body := doJSON(t, http.MethodPut, srv.url+"/acme/default/media/inference", key, req)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PUT: %s %s", resp.Status, body)
	}
	var a struct {
		JobID int64 `json:"job_id"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatal(err)
	}
	return a.JobID
}

type deliveryLog struct {
	Deliveries []struct {
		MessageID  string  `json:"webhook_id"`
		Attempt    int     `json:"attempt"`
		StatusCode int     `json:"status_code"`
		Error      string  `json:"error"`
		Excerpt    string  `json:"response_excerpt"`
		LatencyMS  float64 `json:"latency_ms"`
	} `json:"deliveries"`
	Messages []diffute.WebhookMessage `json:"messages"`
}

func getDeliveries(t *testing.T, srv *testServer, key string, id int64) deliveryLog {
	t.Helper()
	resp, body := doJSON(t, http.MethodGet, fmt.Sprintf("%s/acme/default/media/inference/%d/deliveries", srv.url, id), key, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("deliveries: %s %s", resp.Status, body)
	}
	var l deliveryLog
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatal(err)
	}
	return l
}

// waitDeliveries polls the delivery log until cond holds, failing after a
// deadline. The server writes the log asynchronously (an attempt is recorded
// after the receiver has answered), so an end-to-end test that reads it waits
// on the condition it wants instead of reading once.
func waitDeliveries(t *testing.T, srv *testServer, key string, id int64, what string, cond func(deliveryLog) bool) deliveryLog {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l := getDeliveries(t, srv, key, id)
		if cond(l) {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("the delivery log never showed %s: %+v", what, l)
		}
		time.Sleep(20 * time.Millisecond) // polling a real server's state, not waiting on time
	}
}

// waitMessageState polls the delivery log until the terminal message is in state.
func waitMessageState(t *testing.T, srv *testServer, key string, id int64, state diffute.DeliveryState) deliveryLog {
	t.Helper()
	return waitDeliveries(t, srv, key, id, "the terminal message "+string(state), func(l deliveryLog) bool {
		for _, m := range l.Messages {
			if m.Event == diffute.EventCompleted && m.State == state {
				return true
			}
		}
		return false
	})
}

func webhookSecretCLI(t *testing.T, srv *testServer, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	all := append([]string{"webhooks", "secret", "--data-dir", srv.dataDir, "--org", "acme", "--project", "default"}, args...)
	if err := run(context.Background(), all, srv.getenv, &out, &errOut); err != nil {
		t.Fatalf("webhooks secret: %v\n%s", err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	return lines[len(lines)-1]
}

// TestWebhooksSignedEventsAndRedelivery follows one job through every event,
// verifies each message as a receiver would (bearer and signature, with package
// webhookverify), then rotates the secret and redelivers.
func TestWebhooksSignedEventsAndRedelivery(t *testing.T) {
	t.Parallel()
	srv := startServe(t)
	key := createKey(t, srv.getenv, srv.dataDir, "acme", "default")
	secret := webhookSecretCLI(t, srv)
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("CLI last line %q is not a secret", secret)
	}
	resp, body := doJSON(t, http.MethodGet, srv.url+"/acme/default/webhook-secret", key, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"secret":"`+secret+`"`) {
		t.Fatalf("GET webhook-secret: %s %s", resp.Status, body)
	}
	other := createKey(t, srv.getenv, srv.dataDir, "acme", "other")
	if resp, _ := doJSON(t, http.MethodGet, srv.url+"/acme/default/webhook-secret", other, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("another project's key: %s, want 403", resp.Status)
	}
	if strings.Contains(srv.stderr.String(), secret) {
		t.Error("the signing secret appears in the server log")
	}
	// Encrypted at rest: neither the database nor its WAL holds the secret.
	for _, f := range []string{"diffute.db", "diffute.db-wal"} {
		b, _ := os.ReadFile(filepath.Join(srv.dataDir, f))
		if bytes.Contains(b, []byte(strings.TrimPrefix(secret, "whsec_"))) {
			t.Errorf("%s holds the signing secret in the clear", f)
		}
	}
	// Nor does the data directory hold a key that opens it: the one secret key
	// lives outside (XDG_CONFIG_HOME here).
	if _, err := os.Stat(filepath.Join(srv.dataDir, "webhook-secrets.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("webhook-secrets.key in the data directory: %v", err)
	}

	recv := newScriptedReceiver(t, nil)
	id := submit(t, srv, key, tinyJob(recv.url+"/hook", "started", "prompt.completed", "completed"))
	got := recv.waitCount(t, 4, 60*time.Second)
	ver := webhookverify.Verifier{SigningSecrets: []string{secret}, Bearer: "bearer-s3cret"}
	events := map[string]int{}
	var terminal received
	for _, h := range got {
		if err := ver.Verify(h.body, h.header); err != nil {
			t.Errorf("message %s: %v", h.body, err)
		}
		var m diffute.Manifest
		if err := json.Unmarshal(h.body, &m); err != nil || m.JobID != id {
			t.Fatalf("body %s: %v", h.body, err)
		}
		events[m.Event]++
		if m.Event == diffute.EventCompleted {
			terminal = h
			if m.Status != diffute.StatusSucceeded || len(m.Images["a"]) != 1 || len(m.Images["b"]) != 1 {
				t.Errorf("terminal message %s", h.body)
			}
		}
		if m.Event == diffute.EventPromptCompleted && (len(m.Images) != 1 || len(m.Images[m.Prompt]) != 1) {
			t.Errorf("prompt.completed %s", h.body)
		}
	}
	if events["started"] != 1 || events["prompt.completed"] != 2 || events["completed"] != 1 {
		t.Fatalf("events %v", events)
	}
	waitMessageState(t, srv, key, id, "delivered")
	// The other messages' attempts are recorded independently.
	l := waitDeliveries(t, srv, key, id, "4 attempts", func(l deliveryLog) bool { return len(l.Deliveries) >= 4 })
	if len(l.Messages) != 4 || len(l.Deliveries) != 4 {
		t.Errorf("delivery log: %d messages, %d attempts; want 4 and 4", len(l.Messages), len(l.Deliveries))
	}
	// The job status carries the same log, and its state is the terminal message's.
	resp, body = doJSON(t, http.MethodGet, fmt.Sprintf("%s/acme/default/media/inference/%d", srv.url, id), key, nil)
	var st struct {
		Webhook struct {
			State string      `json:"state"`
			Log   deliveryLog `json:"log"`
		} `json:"webhook"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &st) != nil || st.Webhook.State != "delivered" ||
		len(st.Webhook.Log.Messages) != 4 || len(st.Webhook.Log.Deliveries) != 4 {
		t.Errorf("status webhook: %s %s", resp.Status, body)
	}

	// Rotate: the redelivered terminal message carries the same webhook-id and
	// two signatures, one per secret.
	resp, body = doJSON(t, http.MethodPost, srv.url+"/acme/default/webhook-secret/rotate", key, nil)
	var rotated struct {
		Secret  string                  `json:"secret"`
		Secrets []diffute.WebhookSecret `json:"secrets"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &rotated) != nil || rotated.Secret == secret || len(rotated.Secrets) != 2 {
		t.Fatalf("rotate: %s %s", resp.Status, body)
	}
	if cli := webhookSecretCLI(t, srv); cli != rotated.Secret {
		t.Errorf("CLI after rotation prints %q, want the new secret", cli)
	}
	resp, body = doJSON(t, http.MethodPost, fmt.Sprintf("%s/acme/default/media/inference/%d/redeliver", srv.url, id), key, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("redeliver: %s %s", resp.Status, body)
	}
	again := recv.waitCount(t, 5, 30*time.Second)[4]
	// The same message: webhook-id, and the manifest shaped again with fresh
	// URLs to the same images.
	if again.header.Get("webhook-id") != terminal.header.Get("webhook-id") || !sameManifest(t, again.body, terminal.body) {
		t.Errorf("redelivery webhook-id %q body %s; want %q and the manifest of %s", again.header.Get("webhook-id"), again.body, terminal.header.Get("webhook-id"), terminal.body)
	}
	if n := len(strings.Fields(again.header.Get("webhook-signature"))); n != 2 {
		t.Errorf("%d signatures during the rotation overlap, want 2", n)
	}
	for _, s := range []string{secret, rotated.Secret} {
		if err := (&webhookverify.Verifier{SigningSecrets: []string{s}}).Verify(again.body, again.header); err != nil {
			t.Errorf("redelivery with one of the two secrets: %v", err)
		}
	}
	// The receiver has the redelivery; its attempt is recorded after it
	// answered (the flake this waits out: "4 attempts, last numbered 1").
	l = waitDeliveries(t, srv, key, id, "the redelivery's attempt", func(l deliveryLog) bool { return len(l.Deliveries) >= 5 })
	waitMessageState(t, srv, key, id, "delivered")
	if n := len(l.Deliveries); n != 5 || l.Deliveries[4].Attempt != 2 {
		t.Errorf("after redelivery: %d attempts, last numbered %d; want 5 and 2", n, l.Deliveries[n-1].Attempt)
	}

	// A cancelled job sends its terminal message with status canceled.
	slow := tinyJob(recv.url + "/hook")
	slow["prompts"] = []map[string]any{{"name": "big", "prompt": "x", "num_images": 8, "height": 512, "width": 512, "steps": 150}}
	cid := submit(t, srv, key, slow)
	if resp, body := doJSON(t, http.MethodDelete, fmt.Sprintf("%s/acme/default/media/inference/%d", srv.url, cid), key, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("cancel: %s %s", resp.Status, body)
	}
	last := recv.waitCount(t, 6, 30*time.Second)[5]
	var m diffute.Manifest
	if err := json.Unmarshal(last.body, &m); err != nil || m.JobID != cid || m.Status != diffute.StatusCanceled || m.Event != "completed" {
		t.Errorf("cancel message %s (%v)", last.body, err)
	}
}

// TestWebhookFaults runs one job per receiver fault against a real server.
func TestWebhookFaults(t *testing.T) {
	t.Parallel()
	// 2s, not less: on a loaded machine an answered attempt can take over a second,
	// and a timed-out one adds an attempt the faults below do not expect.
	srv := startServe(t, "--webhook-timeout", "2s")
	key := createKey(t, srv.getenv, srv.dataDir, "acme", "default")
	target := newScriptedReceiver(t, nil)

	type fault struct {
		name      string
		answer    func(n int, w http.ResponseWriter, r *http.Request)
		attempts  int    // requests the receiver should see
		state     string // final state of the terminal message
		minGapMS  int    // least time between the first and second attempt
		wantError string // in the first attempt's log entry
	}
	faults := []fault{
		{name: "fails twice then succeeds", answer: func(n int, w http.ResponseWriter, _ *http.Request) {
			if n <= 2 {
				w.WriteHeader(http.StatusInternalServerError)
				w.Write([]byte("try later"))
			}
		}, attempts: 3, state: "delivered", wantError: "HTTP 500"},
		{name: "hangs past the timeout", answer: func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			}
		}, attempts: 2, state: "delivered", wantError: "timeout|deadline exceeded"},
		{name: "resets the connection", answer: func(n int, w http.ResponseWriter, _ *http.Request) {
			if n == 1 {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.(*net.TCPConn).SetLinger(0)
					conn.Close()
				}
			}
		}, attempts: 2, state: "delivered", wantError: "webhook"},
		{name: "answers 410", answer: func(_ int, w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusGone)
		}, attempts: 1, state: "failed", wantError: "HTTP 410"},
		{name: "answers 429 with Retry-After", answer: func(n int, w http.ResponseWriter, _ *http.Request) {
			if n == 1 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
			}
		}, attempts: 2, state: "delivered", minGapMS: 900, wantError: "HTTP 429"},
		{name: "answers 301", answer: func(_ int, w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.url, http.StatusMovedPermanently)
		}, attempts: 4, state: "failed", wantError: "redirects are not followed"},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			recv := newScriptedReceiver(t, f.answer)
			id := submit(t, srv, key, tinyJob(recv.url))
			l := waitMessageState(t, srv, key, id, diffute.DeliveryState(f.state))
			if n := recv.count(); n != f.attempts {
				t.Errorf("receiver saw %d attempts, want %d", n, f.attempts)
			}
			if len(l.Deliveries) != f.attempts {
				t.Errorf("log has %d attempts, want %d: %+v", len(l.Deliveries), f.attempts, l.Deliveries)
			}
			if len(l.Deliveries) > 0 && !containsAny(l.Deliveries[0].Error, strings.Split(f.wantError, "|")) {
				t.Errorf("first attempt error %q, want it to mention %q", l.Deliveries[0].Error, f.wantError)
			}
			recv.mu.Lock()
			defer recv.mu.Unlock()
			for _, h := range recv.got {
				if h.header.Get("webhook-id") != recv.got[0].header.Get("webhook-id") {
					t.Error("webhook-id changed between attempts")
				}
			}
			if f.minGapMS > 0 && len(recv.times) > 1 {
				if gap := recv.times[1].Sub(recv.times[0]); gap < time.Duration(f.minGapMS)*time.Millisecond {
					t.Errorf("retry %v after a Retry-After: 1, want at least %dms", gap, f.minGapMS)
				}
			}
		})
	}
	t.Cleanup(func() {
		if n := target.count(); n != 0 {
			t.Errorf("the redirect target was reached %d times", n)
		}
	})
}

// TestWebhookReceiverDownAcrossRestart: the receiver is down when the job
// finishes and while the server restarts; once it is back, the message arrives
// with the webhook-id of the failed attempts.
func TestWebhookReceiverDownAcrossRestart(t *testing.T) {
	t.Parallel()
	lib := ortLib(t)
	dataDir := t.TempDir()
	getenv := testEnv(t, lib, nil)
	start := func() (*testServer, func()) {
		ts := &testServer{dataDir: dataDir, stderr: &syncBuffer{}, getenv: getenv}
		ctx, cancel := context.WithCancel(context.Background())
		stdout := newLineWriter()
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir, "--webhook-allow-private",
				"--webhook-retry-schedule", "0s,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms"}, getenv, stdout, ts.stderr)
		}()
		select {
		case line := <-stdout.lines:
			ts.url = strings.TrimPrefix(line, "diffute listening on ")
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, ts.stderr.String())
		}
		var once sync.Once
		stop := func() {
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("serve: %v", err)
				}
			})
		}
		t.Cleanup(stop)
		return ts, stop
	}
	// Reserve an address, then close it: connections are refused until the
	// receiver comes back on it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	srv, stop := start()
	key := createKey(t, srv.getenv, dataDir, "acme", "default")
	id := submit(t, srv, key, tinyJob("http://"+addr+"/hook"))
	l := waitDeliveries(t, srv, key, id, "a failed attempt", func(l deliveryLog) bool { return len(l.Deliveries) > 0 })
	failedID := l.Deliveries[0].MessageID
	if l.Deliveries[0].StatusCode != 0 || l.Deliveries[0].Error == "" {
		t.Errorf("attempt to a closed port: %+v", l.Deliveries[0])
	}
	stop()

	srv, _ = start()
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the reserved port was taken meanwhile: %v", err)
		}
		t.Skipf("the reserved port was taken meanwhile: %v", err)
	}
	recv := &scriptedReceiver{ln: ln, url: "http://" + addr, notify: make(chan struct{}, 64)}
	recv.serve(t)
	h := recv.waitCount(t, 1, 30*time.Second)[0]
	if h.header.Get("webhook-id") != failedID {
		t.Errorf("webhook-id after restart %q, want %q", h.header.Get("webhook-id"), failedID)
	}
	var m diffute.Manifest
	if err := json.Unmarshal(h.body, &m); err != nil || m.JobID != id || m.Status != diffute.StatusSucceeded {
		t.Errorf("body %s (%v)", h.body, err)
	}
	waitMessageState(t, srv, key, id, "delivered")
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// sameManifest reports whether two webhook bodies are the same manifest,
// URLs compared without their query (signatures and expiry differ between
// shapings).
func sameManifest(t *testing.T, a, b []byte) bool {
	t.Helper()
	norm := func(body []byte) diffute.Manifest {
		var m diffute.Manifest
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("manifest %s: %v", body, err)
		}
		for name, urls := range m.Images {
			for i, u := range urls {
				urls[i], _, _ = strings.Cut(u, "?")
			}
			m.Images[name] = urls
		}
		return m
	}
	ma, mb := norm(a), norm(b)
	ja, _ := json.Marshal(ma)
	jb, _ := json.Marshal(mb)
	return bytes.Equal(ja, jb)
}

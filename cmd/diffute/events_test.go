package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestShutdownEndsEventStreams checks that an open events stream of a job that
// will not end (no workers) does not hold up shutdown: serve must return without
// waiting out its shutdown timeout, which would make it return an error.
func TestShutdownEndsEventStreams(t *testing.T) {
	t.Parallel()
	lib := ortLib(t)
	dataDir := t.TempDir()
	getenv := testEnv(t, lib, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := newLineWriter(), &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir, "--workers", "0",
			"--shutdown-timeout", "60s"}, getenv, stdout, stderr)
	}()
	var url string
	select {
	case line := <-stdout.lines:
		url = strings.TrimPrefix(line, "diffute listening on ")
	case err := <-done:
		t.Fatalf("serve exited: %v\n%s", err, stderr.String())
	}
	key := createKey(t, getenv, dataDir, "acme", "default")
	resp, body := doJSON(t, http.MethodPut, url+"/acme/default/media/inference", key, smallRequest("", "diffute/tiny-sd"))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PUT: %s %s", resp.Status, body)
	}
	var id int64
	fmt.Sscanf(string(body), `{"job_id":%d`, &id)
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/acme/default/media/inference/%d/events", url, id), nil)
	req.Header.Set("x-api-key", key)
	sresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	events := make(chan sseEvent, 16)
	streamErr := make(chan error, 1)
	go func() { streamErr <- readEvents(sresp.Body, events) }()
	if ev := <-events; ev.name != "progress" || !strings.Contains(string(ev.data), `"queued"`) {
		t.Fatalf("first event = %s %s", ev.name, ev.data)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v; the open stream held up shutdown", err)
		}
	case <-time.After(50 * time.Second):
		t.Fatal("serve did not return while an events stream was open")
	}
	for range events { // the stream ended without a done event
	}
	if err := <-streamErr; err != nil && !errors.Is(err, context.Canceled) {
		t.Logf("stream ended with %v", err)
	}
}

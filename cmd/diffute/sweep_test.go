package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeSweepsCrashLeftovers is the regression test of ".tmp-*" files from
// a crash mid-write, and empty job folders, never being removed: a server
// started on such a data directory removes them (the retention job runs at
// start), and keeps the images.
func TestServeSweepsCrashLeftovers(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	old := time.Now().Add(-3 * time.Hour)
	media := filepath.Join(dataDir, "media")
	tmp := filepath.Join(media, "acme", "default", "1", "a", ".tmp-0123456789abcdef")
	img := filepath.Join(media, "acme", "default", "1", "a", "0.png")
	empty := filepath.Join(media, "acme", "default", "2")
	for _, dir := range []string{filepath.Dir(tmp), filepath.Join(empty, "a")} {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{tmp, img} {
		if err := os.WriteFile(f, []byte("x"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{tmp, filepath.Join(empty, "a"), empty} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	startServe(t, "--data-dir", dataDir)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, errTmp := os.Stat(tmp)
		_, errEmpty := os.Stat(empty)
		if os.IsNotExist(errTmp) && os.IsNotExist(errEmpty) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s: temporary file %v, empty job folder %v; want both removed", errTmp, errEmpty)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not a wait for an outcome
	}
	if _, err := os.Stat(img); err != nil {
		t.Errorf("the image was swept: %v", err)
	}
}

// TestSecondServeOnOneSQLiteDirRefused is the regression test of two serve
// processes on one SQLite data directory both running the same job (each
// requeued the other's running jobs at start: 64 images billed for 32). The
// second is refused with a message that says why; keys and webhooks commands
// still run beside the first.
func TestSecondServeOnOneSQLiteDirRefused(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	srv := startServe(t, "--data-dir", dataDir)
	var out, errOut bytes.Buffer
	// A second serve that starts runs until its context ends, then returns nil.
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	err := run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir}, srv.getenv, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "another diffute process is already working") {
		t.Fatalf("second serve on %s: %v; want a refusal naming the other process", dataDir, err)
	}
	createKey(t, srv.getenv, dataDir, "acme", "default")
}

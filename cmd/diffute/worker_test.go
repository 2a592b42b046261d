package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestWorkerFlagErrors checks that a worker misconfigured in the ways an operator
// is likely to gets one line naming the fix, and never echoes a secret.
func TestWorkerFlagErrors(t *testing.T) {
	t.Parallel()
	pg := "postgres://u:hunter2@127.0.0.1:1/db"
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no database", []string{"worker"}, nil, "--database-url postgres://… is required"},
		{"sqlite database", []string{"worker", "--database-url", "sqlite:/tmp/x.db"}, nil, "--database-url postgres://… is required"},
		{"disk media without public URL", []string{"worker", "--database-url", pg}, nil, "--public-url is required"},
		{"zero concurrency", []string{"worker", "--database-url", pg, "--concurrency", "0"}, nil, "--concurrency must be 1 or more"},
		{"unknown rng", []string{"worker", "--database-url", pg, "--rng", "mt"}, nil, `--rng "mt": want one of torch, cuda`},
		{"bad signing key", []string{"worker", "--database-url", pg, "--public-url", "http://api.test"},
			map[string]string{"DIFFUTE_URL_SIGNING_KEY": "short-secret"}, "openssl rand -base64 32"},
		{"bad media URL", []string{"worker", "--database-url", pg, "--media-url", "s3://b/p?endpoint=127.0.0.1:1&secure=nope"},
			nil, "--media-url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			getenv := func(k string) string { return tc.env[k] }
			err := run(context.Background(), append(tc.args, "--data-dir", t.TempDir()), getenv, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if msg := err.Error() + stderr.String(); strings.Contains(msg, "hunter2") || strings.Contains(msg, "short-secret") {
				t.Errorf("error leaks a secret: %s", msg)
			}
		})
	}
}

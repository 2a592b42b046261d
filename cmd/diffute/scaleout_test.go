package main

import (
	"strings"
	"testing"

	"github.com/diffute/diffute/pgtest"
	"github.com/diffute/diffute/s3/s3test"
)

// contractCase is one way to run the end-to-end contract test: a model on a
// database and a media store.
type contractCase struct {
	name  string
	model string
	start func(t *testing.T) *testServer
}

// contractCases runs the contract on the embedded default (SQLite, disk) for each
// tiny model, and on the scale-out backends: PostgreSQL with disk media, and
// PostgreSQL with S3 media on a real versitygw.
func contractCases() []contractCase {
	return []contractCase{
		{"sqlite-disk/tiny-sd", "diffute/tiny-sd", func(t *testing.T) *testServer { return startServe(t) }},
		{"sqlite-disk/tiny-sdxl", "diffute/tiny-sdxl", func(t *testing.T) *testServer { return startServe(t) }},
		{"postgres-disk/tiny-sd", "diffute/tiny-sd", func(t *testing.T) *testServer {
			return startServeEnv(t, map[string]string{"DIFFUTE_DATABASE_URL": pgtest.URL(t)})
		}},
		{"postgres-s3/tiny-sdxl", "diffute/tiny-sdxl", func(t *testing.T) *testServer {
			return startServeEnv(t, scaleOutEnv(t))
		}},
	}
}

// scaleOutEnv returns the variables that put a server on a fresh PostgreSQL schema
// and a fresh bucket of a real S3 server.
func scaleOutEnv(t testing.TB) map[string]string {
	t.Helper()
	env := map[string]string{"DIFFUTE_DATABASE_URL": pgtest.URL(t)}
	s3srv := s3test.Start(t)
	env["DIFFUTE_MEDIA_URL"] = s3srv.URL("media", "diffute")
	for _, kv := range s3srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// tamper returns media URL u with its signature changed: Diffute's own (sig=) or
// an S3 presigned one (X-Amz-Signature=).
func tamper(t *testing.T, u string) string {
	t.Helper()
	for _, p := range []string{"sig=", "X-Amz-Signature="} {
		if strings.Contains(u, p) {
			return strings.Replace(u, p, p+"0", 1)
		}
	}
	t.Fatalf("media URL %s carries no signature", u)
	return ""
}

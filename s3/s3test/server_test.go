package s3test_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/diffute/diffute/s3"
	"github.com/diffute/diffute/s3/s3test"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStartStop checks that Start gives a server that answers signed requests with
// its credentials, keeps buckets in Dir, and is gone once the test's cleanup ran.
func TestStartStop(t *testing.T) {
	t.Parallel()
	var endpoint string
	t.Run("server", func(t *testing.T) {
		srv := s3test.Start(t)
		endpoint = srv.Endpoint
		env := map[string]string{}
		for _, kv := range srv.Env() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		for k, v := range env {
			if srv.Getenv(k) != v {
				t.Errorf("Env has %s=%s, Getenv has %q", k, v, srv.Getenv(k))
			}
		}
		getenv := func(k string) string { return env[k] }
		cfg, err := s3.ParseURL(srv.URL("start-stop", "pre"), getenv)
		if err != nil {
			t.Fatal(err)
		}
		st, err := s3.Open(t.Context(), cfg)
		if err != nil {
			t.Fatalf("Open against the test server: %v", err)
		}
		defer st.Close()
		if err := st.Put(t.Context(), "a/b.png", []byte("x"), "image/png"); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(srv.Dir, "start-stop", "pre", "a", "b.png")); err != nil {
			t.Errorf("object not stored under Dir: %v", err)
		}
	})
	if endpoint == "" {
		t.Skip("server did not start")
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := client.Get("http://" + endpoint + "/"); err == nil {
		resp.Body.Close()
		t.Errorf("server on %s still answers after cleanup", endpoint)
	}
}

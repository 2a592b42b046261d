package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/pgtest"
)

// TestWorkerSharesAPIDataDir runs an API node and a worker as separate processes
// on PostgreSQL with disk media in one shared --data-dir: the worker writes the
// images, the API node serves them under URLs both sign with the shared key.
func TestWorkerSharesAPIDataDir(t *testing.T) {
	t.Parallel()
	lib := ortLib(t)
	dbURL := pgtest.URL(t)
	bin := buildBinary(t)
	dataDir := t.TempDir()
	env := append(os.Environ(), "DIFFUTE_ORT_LIB="+lib, "DIFFUTE_TINY_DIR="+sharedTinyDir,
		"HF_HUB_CACHE="+filepath.Join(t.TempDir(), "hf"), "HF_HUB_OFFLINE=1",
		"DIFFUTE_DATABASE_URL="+dbURL, "DIFFUTE_URL_SIGNING_KEY=c2hhcmVkLWtleS1vZi10aGUtZGVwbG95bWVudC0zMmI=")
	api := startProc(t, bin, env, "serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir, "--workers", "0")
	startProc(t, bin, env, "worker", "--addr", "127.0.0.1:0", "--data-dir", dataDir, "--public-url", api.url,
		"--models", "diffute/tiny-sd", "--webhook-allow-private")
	key := createKey(t, testEnv(t, lib, map[string]string{"DIFFUTE_DATABASE_URL": dbURL}), t.TempDir(), "acme", "default")
	recv := newReceiver(t)

	resp, body := doJSON(t, http.MethodPut, api.url+"/acme/default/media/inference", key, smallRequest(recv.URL, "diffute/tiny-sd"))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PUT: %s %s", resp.Status, body)
	}
	var m diffute.Manifest
	if err := json.Unmarshal(recv.wait(t, 60*time.Second).body, &m); err != nil {
		t.Fatal(err)
	}
	if m.Status != diffute.StatusSucceeded || len(m.Images["Ansel_Adams"]) != 2 {
		t.Fatalf("manifest = %+v", m)
	}
	for _, u := range m.Images["Ansel_Adams"] {
		if !strings.HasPrefix(u, api.url+"/media/") {
			t.Errorf("URL %s is not under the API node %s", u, api.url)
		}
		if body := getText(t, u); !strings.HasPrefix(body, "\x89PNG") {
			t.Errorf("GET %s from the API node: not a PNG", u)
		}
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/diffute/diffute"
)

// startProcess runs the real diffute binary as `serve` and returns its URL.
func startProcess(t *testing.T, bin string, env []string, dataDir string) (*exec.Cmd, string) {
	t.Helper()
	p := startProc(t, bin, env, "serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir,
		"--webhook-allow-private", "--webhook-retry-schedule", "0s,50ms,100ms")
	return p.cmd, p.url
}

// TestKillMidJobLosesNothing kills the server process with SIGKILL while a job runs,
// restarts it on the same data directory and expects the job to finish, with each
// image exactly once, and its webhook to arrive.
func TestKillMidJobLosesNothing(t *testing.T) {
	t.Parallel()
	lib := ortLib(t)
	bin := buildBinary(t)
	dataDir := t.TempDir()
	env := append(os.Environ(), "DIFFUTE_ORT_LIB="+lib, "DIFFUTE_TINY_DIR="+sharedTinyDir,
		"HF_HUB_CACHE="+filepath.Join(t.TempDir(), "hf"), "HF_HUB_OFFLINE=1",
		"XDG_CONFIG_HOME="+filepath.Join(t.TempDir(), "config")) // the secret key file, kept across the restart
	proc, url := startProcess(t, bin, env, dataDir)
	key := createKey(t, testEnv(t, lib, nil), dataDir, "acme", "default")
	recv := newReceiver(t)

	prompts := []map[string]any{}
	for i := range 4 {
		prompts = append(prompts, map[string]any{"name": fmt.Sprintf("p%d", i), "prompt": "a lighthouse in a storm",
			"num_images": 4, "height": 512, "width": 512, "steps": 150, "seed": i})
	}
	req := map[string]any{"name": "crash", "prompts": prompts, "webhook": recv.URL, "secret": "s3cret", "pretrained_model_name": "diffute/tiny-sd"}
	resp, body := doJSON(t, http.MethodPut, url+"/acme/default/media/inference", key, req)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PUT: %s %s", resp.Status, body)
	}
	var accepted struct {
		JobID int64 `json:"job_id"`
	}
	json.Unmarshal(body, &accepted)
	statusURL := fmt.Sprintf("%s/acme/default/media/inference/%d", url, accepted.JobID)

	// Wait until the job is running, then kill the process without warning.
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, body := doJSON(t, http.MethodGet, statusURL, key, nil)
		if strings.Contains(string(body), `"status":"running"`) {
			break
		}
		if strings.Contains(string(body), `"status":"succeeded"`) {
			t.Fatal("job finished before it could be interrupted; make it bigger")
		}
		if time.Now().After(deadline) {
			t.Fatalf("job never ran: %s", body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	proc.Wait()

	startProcess(t, bin, env, dataDir)
	hook := recv.wait(t, 120*time.Second)
	var m diffute.Manifest
	if err := json.Unmarshal(hook.body, &m); err != nil {
		t.Fatal(err)
	}
	if m.JobID != accepted.JobID || m.Status != diffute.StatusSucceeded {
		t.Fatalf("manifest after restart: %+v", m)
	}
	seen := map[string]bool{}
	for _, p := range prompts {
		urls := m.Images[p["name"].(string)]
		if len(urls) != 4 {
			t.Errorf("prompt %s has %d images, want 4", p["name"], len(urls))
		}
		for _, u := range urls {
			path := u[:strings.Index(u, "?")]
			if seen[path] {
				t.Errorf("image %s listed twice", path)
			}
			seen[path] = true
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s after restart: %s", path, resp.Status)
			}
		}
	}
}

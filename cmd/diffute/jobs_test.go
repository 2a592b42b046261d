package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/httpapi"
)

// cli runs the real program in-process and returns its stdout, stderr and error.
func cli(t *testing.T, getenv func(string) string, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, getenv, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func writeRequest(t *testing.T) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "request.json")
	b, _ := json.Marshal(smallRequest("", "diffute/tiny-sd"))
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestJobsEndToEnd submits a job with flags after the file, then follows it with
// jobs watch, lists it, gets it and downloads its images.
func TestJobsEndToEnd(t *testing.T) {
	t.Parallel()
	srv := startServe(t)
	key := createKey(t, srv.getenv, srv.dataDir, "acme", "default")
	file := writeRequest(t)
	base := srv.url + "/acme/default"

	// --url after the file is kept: were it dropped, the default :8080 would refuse.
	out, errOut, err := cli(t, srv.getenv, "submit", "--key", key, file, "--url", base)
	if err != nil {
		t.Fatalf("submit: %v\n%s", err, errOut)
	}
	id := strings.TrimSpace(out)
	if _, err := strconv.ParseInt(id, 10, 64); err != nil {
		t.Fatalf("submit printed %q, want a job ID", out)
	}

	dir := filepath.Join(t.TempDir(), "watched")
	out, errOut, err = cli(t, srv.getenv, "jobs", "watch", id, "--url", base, "--key", key, "--download", dir)
	if err != nil {
		t.Fatalf("jobs watch: %v\n%s", err, errOut)
	}
	var m diffute.Manifest
	if err := json.Unmarshal([]byte(out), &m); err != nil || m.Status != diffute.StatusSucceeded || len(m.Images["Ansel_Adams"]) != 2 {
		t.Fatalf("jobs watch printed no manifest: %v\n%s", err, out)
	}
	if strings.Contains(out, `\u0026`) || !strings.Contains(out, "&") {
		t.Errorf("manifest URLs escape &:\n%s", out)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.png")); len(files) != 3 {
		t.Errorf("jobs watch --download saved %v, want 3 PNGs", files)
	}

	out, errOut, err = cli(t, srv.getenv, "jobs", "list", "--url", base, "--key", key)
	if err != nil {
		t.Fatalf("jobs list: %v\n%s", err, errOut)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "ID") ||
		!strings.HasPrefix(lines[1], id+" ") || !strings.Contains(lines[1], "succeeded") || !strings.Contains(lines[1], "100%") {
		t.Errorf("jobs list:\n%s", out)
	}
	fromEnv := func(name string) string { // the flags as the quick start sets them
		switch name {
		case "DIFFUTE_URL":
			return srv.url
		case "DIFFUTE_ORG":
			return "acme"
		case "DIFFUTE_KEY":
			return key
		}
		return srv.getenv(name)
	}
	out, _, err = cli(t, fromEnv, "jobs", "list", "--json", "--limit", "1")
	var list httpapi.JobList
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list.Jobs) != 1 || strconv.FormatInt(list.Jobs[0].JobID, 10) != id {
		t.Errorf("jobs list --json: %v\n%s", err, out)
	}

	out, _, err = cli(t, srv.getenv, "jobs", "get", "--url", base, id, "--key", key)
	var st httpapi.JobStatus
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Status != diffute.StatusSucceeded || st.Manifest == nil {
		t.Errorf("jobs get: %v\n%s", err, out)
	}

	dir2 := filepath.Join(t.TempDir(), "downloaded")
	out, errOut, err = cli(t, srv.getenv, "jobs", "download", id, "--out", dir2, "--url", base, "--key", key)
	if err != nil || !strings.Contains(out, "saved 3 images") {
		t.Fatalf("jobs download: %v %q\n%s", err, out, errOut)
	}
	if files, _ := filepath.Glob(filepath.Join(dir2, "*.png")); len(files) != 3 {
		t.Errorf("jobs download saved %v, want 3 PNGs", files)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"jobs", "get", "--url", base, "--key", key}, "name one job ID"},
		{[]string{"jobs", "get", "abc", "--url", base, "--key", key}, `job ID "abc": want a number`},
		{[]string{"jobs", "get", "12345", "--url", base, "--key", key}, "404"},
		{[]string{"jobs", "list", "--url", base}, "--key is required"},
		{[]string{"submit", file, "extra.json", "--url", base, "--key", key}, "one request file"},
	} {
		_, _, err := cli(t, srv.getenv, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("diffute %s: %v, want one line containing %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}

// TestJobsCancel cancels a queued job on a server with no workers: download says it
// has no images yet, cancel reports it canceled, and watch then ends with an error.
func TestJobsCancel(t *testing.T) {
	t.Parallel()
	srv := startServe(t, "--workers", "0")
	key := createKey(t, srv.getenv, srv.dataDir, "acme", "default")
	base := srv.url + "/acme/default"
	out, errOut, err := cli(t, srv.getenv, "submit", writeRequest(t), "--url", base, "--key", key)
	if err != nil {
		t.Fatalf("submit: %v\n%s", err, errOut)
	}
	id := strings.TrimSpace(out)
	_, _, err = cli(t, srv.getenv, "jobs", "download", id, "--url", base, "--key", key)
	if err == nil || !strings.Contains(err.Error(), "is queued and has no images yet") || !strings.Contains(err.Error(), "diffute jobs watch "+id) {
		t.Errorf("download of a queued job: %v", err)
	}
	out, _, err = cli(t, srv.getenv, "jobs", "cancel", id, "--url", base, "--key", key)
	if err != nil || strings.TrimSpace(out) != "job "+id+" canceled" {
		t.Errorf("jobs cancel: %v %q", err, out)
	}
	_, _, err = cli(t, srv.getenv, "jobs", "watch", id, "--url", base, "--key", key)
	if err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Errorf("watch of a canceled job: %v", err)
	}
}

// TestJobsStdinAndRefused runs the built program: `submit -` reads the request from
// stdin, and a server that is not there is named with a hint.
func TestJobsStdinAndRefused(t *testing.T) {
	t.Parallel()
	srv := startServe(t, "--workers", "0")
	key := createKey(t, srv.getenv, srv.dataDir, "acme", "default")
	bin := buildBinary(t)
	body, _ := json.Marshal(smallRequest("", "diffute/tiny-sd"))
	cmd := exec.Command(bin, "submit", "-", "--url", srv.url+"/acme/default", "--key", key)
	cmd.Stdin = bytes.NewReader(body)
	cmd.Env = []string{"HOME=" + t.TempDir()}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("submit -: %v %s", err, out)
	}
	if _, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err != nil {
		t.Errorf("submit - printed %q, want a job ID", out)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	_, _, err = cli(t, srv.getenv, "jobs", "list", "--url", closed+"/acme/default", "--key", key)
	if err == nil || !strings.Contains(err.Error(), "is `diffute serve` running at "+closed+"/acme/default?") {
		t.Errorf("refused: %v", err)
	}
}

// TestJobsInterrupt sends SIGINT to `submit --wait` and `jobs watch` following a
// job that does not end: each says how to re-attach and exits 130.
func TestJobsInterrupt(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	following := make(chan struct{}, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /acme/default/media/inference", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"job_id":7,"status":"queued"}`))
	})
	mux.HandleFunc("GET /acme/default/media/inference/7/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		following <- struct{}{}
		<-r.Context().Done()
	})
	fake := httptest.NewServer(mux)
	defer fake.Close()
	file := writeRequest(t)
	for _, args := range [][]string{
		{"submit", file, "--wait", "--url", fake.URL + "/acme/default", "--key", "k"},
		{"jobs", "watch", "7", "--url", fake.URL + "/acme/default", "--key", "k"},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"HOME=" + t.TempDir()}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-following:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("diffute %s never followed the job", strings.Join(args, " "))
		}
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 130 {
			t.Errorf("diffute %s on SIGINT: %v, want exit 130", args[0], err)
		}
		if want := "diffute jobs watch 7 --url " + fake.URL + "/acme/default"; !strings.Contains(stderr.String(), want) {
			t.Errorf("diffute %s on SIGINT said %q, want %q", args[0], stderr.String(), want)
		}
	}
}

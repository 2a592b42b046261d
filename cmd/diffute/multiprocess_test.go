package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/secretbox"
	"github.com/diffute/diffute/webhookverify"
)

// proc is a diffute process under test.
type proc struct {
	cmd    *exec.Cmd
	url    string // what it printed after "listening on "
	stderr *syncBuffer
}

// startProc runs bin with args and env and waits for its "listening on" line.
func startProc(t testing.TB, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), stderr: &syncBuffer{}}
	p.cmd.Env = env
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	select {
	case line := <-lines:
		_, p.url, _ = strings.Cut(line, "listening on ")
		return p
	case <-time.After(90 * time.Second):
		t.Fatalf("%s did not start:\n%s", args[0], p.stderr.String())
		return nil
	}
}

// buildBinary builds the diffute binary once for the package's tests (linking it
// costs seconds on a loaded machine) into sharedBinDir, which TestMain removes.
func buildBinary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		built.bin = filepath.Join(sharedBinDir, "diffute")
		if out, err := exec.Command("go", "build", "-o", built.bin, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

var built struct {
	once sync.Once
	bin  string
	err  error
}

// TestScaleOutMultiProcess is the scale-out deployment in miniature: two API
// nodes (serve --workers 0) and two GPU-less workers, as separate processes on one
// PostgreSQL and one S3 server. One worker is killed with SIGKILL while it runs a
// job; every one of 50 jobs must still succeed, each image listed once, and every
// webhook arrive.
func TestScaleOutMultiProcess(t *testing.T) {
	t.Parallel()
	lib := ortLib(t)
	extra := scaleOutEnv(t)
	var keyBytes [32]byte
	rand.Read(keyBytes[:])
	extra["DIFFUTE_URL_SIGNING_KEY"] = base64.StdEncoding.EncodeToString(keyBytes[:])
	// Every node shares the secret key too: the API node seals the project's
	// signing secret, the workers open it to sign (checked below).
	rand.Read(keyBytes[:])
	extra["DIFFUTE_SECRET_KEY"] = base64.StdEncoding.EncodeToString(keyBytes[:])
	bin := buildBinary(t)
	env := append(os.Environ(), "DIFFUTE_ORT_LIB="+lib, "DIFFUTE_TINY_DIR="+sharedTinyDir,
		"HF_HUB_CACHE="+filepath.Join(t.TempDir(), "hf"), "HF_HUB_OFFLINE=1",
		"XDG_CONFIG_HOME="+filepath.Join(t.TempDir(), "config")) // no key file in the real home
	for k, v := range extra {
		env = append(env, k+"="+v)
	}

	apis := []*proc{
		startProc(t, bin, env, "serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--workers", "0"),
		startProc(t, bin, env, "serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--workers", "0"),
	}
	workerArgs := func() []string {
		return []string{"worker", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--concurrency", "2",
			"--models", "diffute/tiny-sd", "--lease-ttl", "2s", "--shutdown-timeout", "5s",
			"--webhook-allow-private", "--webhook-retry-schedule", "0s,50ms,100ms,200ms,400ms"}
	}
	victim := startProc(t, bin, env, workerArgs()...)
	survivor := startProc(t, bin, env, workerArgs()...)

	testEnvWithDB := testEnv(t, lib, extra)
	key := createKey(t, testEnvWithDB, t.TempDir(), "acme", "default")
	// The project's signing secret, made and sealed by one API node; the
	// workers must sign with it, so they open what that node sealed.
	resp, body := doJSON(t, http.MethodGet, apis[1].url+"/acme/default/webhook-secret", key, nil)
	var signing struct {
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(body, &signing); resp.StatusCode != http.StatusOK || err != nil || signing.Secret == "" {
		t.Fatalf("GET webhook-secret: %s %s", resp.Status, body)
	}
	assertSealedInPostgres(t, extra["DIFFUTE_DATABASE_URL"], signing.Secret)
	// The CLI, given the same database and key, opens the same secret.
	var out, errOut bytes.Buffer
	if err := run(t.Context(), []string{"webhooks", "secret", "--org", "acme", "--project", "default", "--data-dir", t.TempDir()},
		testEnvWithDB, &out, &errOut); err != nil {
		t.Fatalf("webhooks secret: %v\n%s", err, errOut.String())
	}
	if !strings.HasSuffix(strings.TrimSpace(out.String()), signing.Secret) {
		t.Fatalf("webhooks secret printed %q, want the API's %q", out.String(), signing.Secret)
	}
	ver := webhookverify.Verifier{SigningSecrets: []string{signing.Secret}, Bearer: "s3cret"}

	// A receiver that never blocks a sender: webhooks are counted by job.
	var (
		mu    sync.Mutex
		hooks = map[int64]diffute.Manifest{}
		dups  int
		all   = make(chan struct{})
	)
	const jobs = 50
	recv := newReceiverFunc(t, func(body []byte, h http.Header) {
		if err := ver.Verify(body, h); err != nil {
			t.Errorf("webhook %s: %v", body, err)
		}
		var m diffute.Manifest
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("webhook body %s: %v", body, err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if _, ok := hooks[m.JobID]; ok {
			dups++ // a redelivery after a kill is allowed: receivers dedupe by webhook-id
			return
		}
		hooks[m.JobID] = m
		if len(hooks) == jobs {
			close(all)
		}
	})

	ids := map[int64]bool{}
	for i := range jobs {
		req := map[string]any{
			"name": fmt.Sprintf("job-%d", i),
			"prompts": []map[string]any{{"name": "p", "prompt": "a lighthouse in a storm", "num_images": 2,
				"height": 64, "width": 64, "steps": 20, "seed": i}},
			"webhook": recv.URL, "secret": "s3cret", "pretrained_model_name": "diffute/tiny-sd",
		}
		resp, body := doJSON(t, http.MethodPut, apis[i%2].url+"/acme/default/media/inference", key, req)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("PUT #%d: %s %s", i, resp.Status, body)
		}
		var accepted struct {
			JobID int64 `json:"job_id"`
		}
		if err := json.Unmarshal(body, &accepted); err != nil {
			t.Fatal(err)
		}
		ids[accepted.JobID] = true
	}

	// Kill the victim while it is running a job: its metrics say when.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(getText(t, victim.url+"/metrics"), "diffute_jobs_running 1") &&
		!strings.Contains(getText(t, victim.url+"/metrics"), "diffute_jobs_running 2") {
		if time.Now().After(deadline) {
			t.Fatalf("the victim worker never ran a job:\n%s", victim.stderr.String())
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	victim.cmd.Wait()

	select {
	case <-all:
	case <-time.After(180 * time.Second):
		mu.Lock()
		n := len(hooks)
		mu.Unlock()
		t.Fatalf("%d of %d webhooks arrived", n, jobs)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, m := range hooks {
		if !ids[id] || m.Status != diffute.StatusSucceeded {
			t.Errorf("webhook for job %d: %+v", id, m)
			continue
		}
		urls := m.Images["p"]
		if len(urls) != 2 || urls[0] == urls[1] {
			t.Errorf("job %d: images %v, want 2 distinct", id, urls)
		}
	}
	// SIGTERM drains the survivor: it stops and exits cleanly.
	if err := survivor.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := survivor.cmd.Wait(); err != nil {
		t.Errorf("worker after SIGTERM: %v\n%s", err, survivor.stderr.String())
	}
	// Every image opens from the object store through its presigned URL.
	for _, m := range hooks {
		for _, u := range m.Images["p"] {
			if body := getText(t, u); !strings.HasPrefix(body, "\x89PNG") {
				t.Fatalf("GET %s: not a PNG", u)
			}
		}
	}
	t.Logf("%d jobs, %d redelivered webhooks, survivor rescued the victim's jobs: %v", len(hooks), dups,
		strings.Contains(survivor.stderr.String(), "rescued jobs"))
}

// newReceiverFunc is a loopback webhook receiver that hands each message to fn.
func newReceiverFunc(t testing.TB, fn func(body []byte, h http.Header)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		fn(body, req.Header)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// assertSealedInPostgres checks that the database at url holds the project's
// signing secret only encrypted.
func assertSealedInPostgres(t testing.TB, url, secret string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var stored string
	if err := conn.QueryRow(t.Context(), `SELECT secret FROM webhook_secrets`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	// Sealed by the one secret box (secretbox's enc:v1: values), as on SQLite.
	if strings.Contains(stored, strings.TrimPrefix(secret, "whsec_")) || !secretbox.IsSealed(stored) {
		t.Fatalf("webhook_secrets holds %q, want it sealed by the secret box", stored)
	}
}

func getText(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String()
}

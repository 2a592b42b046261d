package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/httpapi"
	"github.com/diffute/diffute/pgtest"
)

// TestCrashLoop kills `diffute serve` with SIGKILL at random moments while
// clients submit jobs, DIFFUTE_CRASH_ITERATIONS times on SQLite and on
// PostgreSQL (3 when unset, about 30 s for both; the measurement in
// docs/benchmarks.md ran 30 per database). Then one last process must finish every accepted job: each
// succeeds with all its images, each image listed once and metered once, and
// each job's terminal webhook arrives.
func TestCrashLoop(t *testing.T) {
	iterations, _ := strconv.Atoi(os.Getenv("DIFFUTE_CRASH_ITERATIONS"))
	if iterations <= 0 {
		iterations = 3
	}
	for _, database := range []string{"sqlite", "postgres"} {
		t.Run(database, func(t *testing.T) {
			var dbURL string
			if database == "postgres" {
				dbURL = pgtest.URL(t)
			}
			crashLoop(t, iterations, dbURL)
		})
	}
}

func crashLoop(t *testing.T, iterations int, dbURL string) {
	lib := ortLib(t)
	bin := buildBinary(t)
	dataDir := t.TempDir()
	env := append(os.Environ(), "DIFFUTE_ORT_LIB="+lib, "DIFFUTE_TINY_DIR="+sharedTinyDir,
		"HF_HUB_CACHE="+filepath.Join(t.TempDir(), "hf"), "HF_HUB_OFFLINE=1",
		"XDG_CONFIG_HOME="+filepath.Join(t.TempDir(), "config"), "DIFFUTE_RATE_LIMIT=0", "DIFFUTE_MAX_ACTIVE_JOBS=0")
	extra := map[string]string{}
	if dbURL != "" {
		env = append(env, "DIFFUTE_DATABASE_URL="+dbURL)
		extra["DIFFUTE_DATABASE_URL"] = dbURL
	}
	var (
		mu        sync.Mutex
		terminal  = map[int64]int{}              // completed webhooks per job
		manifests = map[int64]diffute.Manifest{} // the last one per job
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m diffute.Manifest
		if json.Unmarshal(body, &m) == nil && m.Event == diffute.EventCompleted {
			mu.Lock()
			terminal[m.JobID]++
			manifests[m.JobID] = m
			mu.Unlock()
		}
	}))
	t.Cleanup(recv.Close)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
	accepted := map[int64]int{} // job → images asked
	var key string
	for i := range iterations {
		p := startProc(t, bin, env, "serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir,
			"--webhook-allow-private", "--webhook-retry-schedule", "0s,50ms,100ms,200ms,500ms,1s,2s")
		if key == "" {
			key = createKey(t, testEnv(t, lib, extra), dataDir, "acme", "default")
		}
		// Clients submit until the process dies under them; a 202 is an
		// accepted job, anything else (a connection cut by the kill) is not.
		stop := make(chan struct{})
		done := make(chan map[int64]int)
		go func() {
			got := map[int64]int{}
			defer func() { done <- got }()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				images := 1 + n%3
				req := map[string]any{"name": fmt.Sprintf("crash-%d-%d", i, n), "webhook": recv.URL, "secret": "s3cret",
					"pretrained_model_name": "diffute/tiny-sd",
					"prompts": []map[string]any{{"name": "a", "prompt": "a lighthouse", "num_images": images,
						"height": 64 * (1 + n%4), "width": 64, "steps": 5 + n%20, "seed": n}}}
				b, _ := json.Marshal(req)
				hreq, _ := http.NewRequest(http.MethodPut, p.url+"/acme/default/media/inference", strings.NewReader(string(b)))
				hreq.Header.Set("x-api-key", key)
				hreq.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(hreq)
				if err != nil {
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					var a struct {
						JobID int64 `json:"job_id"`
					}
					if json.Unmarshal(body, &a) == nil {
						got[a.JobID] = images
					}
				}
				time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond) // client think time
			}
		}()
		time.Sleep(time.Duration(50+rng.IntN(700)) * time.Millisecond) // a random moment
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		p.cmd.Wait()
		close(stop)
		for id, n := range <-done {
			accepted[id] = n
		}
	}
	if len(accepted) == 0 {
		t.Fatal("no job was accepted")
	}
	last := startProc(t, bin, env, "serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir,
		"--webhook-allow-private", "--webhook-retry-schedule", "0s,50ms,100ms,200ms,500ms,1s,2s")
	deadline := time.Now().Add(5 * time.Minute)
	for {
		mu.Lock()
		missing := 0
		for id := range accepted {
			if terminal[id] == 0 {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the last restart, %d of %d accepted jobs sent no terminal webhook", missing, len(accepted))
		}
		time.Sleep(100 * time.Millisecond) // polling what the receiver has
	}
	mu.Lock()
	defer mu.Unlock()
	duplicates := 0
	for id, images := range accepted {
		m := manifests[id]
		if m.Status != diffute.StatusSucceeded || len(m.Images["a"]) != images {
			t.Errorf("job %d: %s with %d images, want succeeded with %d", id, m.Status, len(m.Images["a"]), images)
		}
		seen := map[string]bool{}
		for _, u := range m.Images["a"] {
			path, _, _ := strings.Cut(u, "?")
			if seen[path] {
				t.Errorf("job %d lists %s twice", id, path)
			}
			seen[path] = true
		}
		_, body := doJSON(t, http.MethodGet, fmt.Sprintf("%s/acme/default/media/inference/%d", last.url, id), key, nil)
		var st httpapi.JobStatus
		if err := json.Unmarshal(body, &st); err != nil || st.Usage.Images != int64(images) {
			t.Errorf("job %d metered %d images (%v), want %d", id, st.Usage.Images, err, images)
		}
		if terminal[id] > 1 {
			duplicates++
		}
	}
	t.Logf("%d SIGKILLs, %d accepted jobs, all finished, each image listed and metered once; %d terminal webhooks arrived more than once (at-least-once delivery)",
		iterations, len(accepted), duplicates)
}

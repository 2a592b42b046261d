package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	_ "modernc.org/sqlite"
)

// BenchmarkAcceptedRequests measures the product page's example request accepted
// through the real server on SQLite (HTTP, auth, validation, job + River job in one
// transaction) by 8 concurrent clients, and in the same run the raw River insert
// rate (one trivial job per transaction) on a fresh SQLite file with the same
// settings. Report: accepted/s, p50/p99 latency, raw inserts/s and the ratio.
func BenchmarkAcceptedRequests(b *testing.B) {
	// Limits off: this measures the submission path, and a benchmark's thousands of
	// requests from one key would hit the default rate limit and quotas.
	srv := startServe(b, "--workers", "0", "--rate-limit", "0", "--max-active-jobs", "0", "--max-images-per-day", "0")
	key := createKey(b, srv.getenv, srv.dataDir, "acme", "default")
	body := []byte(fmt.Sprintf(demoRequest, "https://app.example/hook", "diffute/tiny-sdxl"))

	const clients = 8
	var (
		mu        sync.Mutex
		latencies []time.Duration
	)
	b.SetParallelism(clients) // GOMAXPROCS × clients goroutines
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var local []time.Duration
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPut, srv.url+"/acme/default/media/inference", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("x-api-key", key+"/default")
			t0 := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("PUT: %s", resp.Status)
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		latencies = append(latencies, local...)
		mu.Unlock()
	})
	accepted := float64(len(latencies)) / time.Since(start).Seconds()
	b.StopTimer()
	if len(latencies) == 0 {
		b.Fatal("no request was accepted")
	}
	raw := rawRiverInsertRate(b, len(latencies))
	slices.Sort(latencies)
	b.ReportMetric(accepted, "accepted/s")
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(raw, "raw-inserts/s")
	b.ReportMetric(100*accepted/raw, "%-of-raw")
}

type benchArgs struct{}

func (benchArgs) Kind() string { return "bench.raw" }

// rawRiverInsertRate inserts n trivial jobs, one transaction each, with River on a
// fresh SQLite file opened like Diffute's (WAL, busy timeout, one writer connection).
func rawRiverInsertRate(b *testing.B, n int) float64 {
	b.Helper()
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "raw.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	driver := riversqlite.New(db)
	migrator, err := rivermigrate.New(driver, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		b.Fatal(err)
	}
	client, err := river.NewClient(driver, &river.Config{})
	if err != nil {
		b.Fatal(err)
	}
	n = max(n, 500)
	start := time.Now()
	for range n {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := client.InsertTx(ctx, tx, benchArgs{}, nil); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkPutToWebhook measures the service's own overhead from PUT to webhook
// received for 1 prompt × 1 image, 64×64, 1 step on tiny-sd, one job at a time:
// p50/p99 of the whole, and p50/p99 of the whole less the job's engine time (the
// engine_seconds the job adds to the project's usage, read after each job). The
// timed PUT and the receiver are plain HTTP: the end-to-end tests' checks
// against openapi.json cost milliseconds a real client does not spend.
func BenchmarkPutToWebhook(b *testing.B) {
	srv := startServe(b)
	key := createKey(b, srv.getenv, srv.dataDir, "acme", "default")
	hooks := make(chan struct{}, 16)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
		hooks <- struct{}{}
	}))
	b.Cleanup(recv.Close)
	body, err := json.Marshal(map[string]any{
		"name": "bench", "webhook": recv.URL, "secret": "s", "pretrained_model_name": "diffute/tiny-sd",
		"prompts": []map[string]any{{"name": "p", "prompt": "a fox", "num_images": 1, "width": 64, "height": 64, "steps": 1}},
	})
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}
	put := func() {
		req, err := http.NewRequest(http.MethodPut, srv.url+"/acme/default/media/inference", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-api-key", key)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("PUT: %s %s", resp.Status, answer)
		}
		select {
		case <-hooks:
		case <-time.After(time.Minute):
			b.Fatal("no webhook within a minute")
		}
	}
	engineSeconds := func() float64 {
		resp, body := doJSON(b, http.MethodGet, srv.url+"/acme/default/usage", key, nil)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("usage: %s %s", resp.Status, body)
		}
		var u struct {
			Total struct {
				EngineSeconds float64 `json:"engine_seconds"`
			} `json:"total"`
		}
		if err := json.Unmarshal(body, &u); err != nil {
			b.Fatal(err)
		}
		return u.Total.EngineSeconds
	}
	put() // warm up: load the model once
	var latencies, overheads []time.Duration
	engine := engineSeconds()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		put()
		total := time.Since(t0)
		now := engineSeconds()
		latencies = append(latencies, total)
		overheads = append(overheads, total-time.Duration((now-engine)*float64(time.Second)))
		engine = now
	}
	report := func(d []time.Duration, name string) {
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, name+"p50-ms")
		b.ReportMetric(float64(d[len(d)*99/100].Microseconds())/1000, name+"p99-ms")
	}
	report(latencies, "")
	report(overheads, "overhead-")
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/diffute/diffute/pgtest"
)

// BenchmarkAcceptedRequestsByDatabase measures accepted inference requests per second
// through a real `serve --workers 0` over loopback HTTP, 16 clients at once, on
// SQLite and on PostgreSQL in the same run:
//
//	go test ./cmd/diffute -run '^$' -bench AcceptedRequestsByDatabase -benchtime 3s
func BenchmarkAcceptedRequestsByDatabase(b *testing.B) {
	for _, tc := range []struct {
		name  string
		extra func(b *testing.B) map[string]string
	}{
		{"sqlite", func(*testing.B) map[string]string { return nil }},
		{"postgres", func(b *testing.B) map[string]string {
			return map[string]string{"DIFFUTE_DATABASE_URL": pgtest.URL(b)}
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv := startServeEnv(b, tc.extra(b), "--workers", "0", "--log-format", "text",
				"--rate-limit", "0", "--max-active-jobs", "0", "--max-images-per-day", "0")
			key := createKey(b, srv.getenv, srv.dataDir, "acme", "default")
			body, err := json.Marshal(smallRequest("https://hooks.example.com/diffute", "diffute/tiny-sd"))
			if err != nil {
				b.Fatal(err)
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			defer client.CloseIdleConnections()
			url := srv.url + "/acme/default/media/inference"
			b.SetParallelism(8) // × GOMAXPROCS clients
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("x-api-key", key)
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusAccepted {
						b.Errorf("PUT: %s", resp.Status)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// BenchmarkWorkersJobsPerSecond measures jobs completed per second (request
// accepted to webhook received) by one and by two `diffute worker` processes on
// PostgreSQL, each with --concurrency 1, on tiny-sd at 64×64 and 1 step. Run it
// with a fixed count, since each run starts its processes:
//
//	go test ./cmd/diffute -run '^$' -bench WorkersJobsPerSecond -benchtime 200x
func BenchmarkWorkersJobsPerSecond(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run("workers="+strconv.Itoa(workers), func(b *testing.B) {
			lib := ortLib(b)
			extra := map[string]string{"DIFFUTE_DATABASE_URL": pgtest.URL(b)}
			bin := buildBinary(b)
			env := append(os.Environ(), "DIFFUTE_ORT_LIB="+lib, "DIFFUTE_TINY_DIR="+sharedTinyDir,
				"HF_HUB_CACHE="+filepath.Join(b.TempDir(), "hf"), "HF_HUB_OFFLINE=1",
				"DIFFUTE_DATABASE_URL="+extra["DIFFUTE_DATABASE_URL"], "DIFFUTE_URL_SIGNING_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
				"DIFFUTE_SECRET_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "XDG_CONFIG_HOME="+filepath.Join(b.TempDir(), "config"))
			api := startProc(b, bin, env, "serve", "--addr", "127.0.0.1:0", "--data-dir", b.TempDir(), "--workers", "0",
				"--rate-limit", "0", "--max-active-jobs", "0", "--max-images-per-day", "0")
			dataDir := b.TempDir()
			for range workers {
				startProc(b, bin, env, "worker", "--addr", "127.0.0.1:0", "--data-dir", dataDir, "--public-url", api.url,
					"--concurrency", "1", "--intra-op-threads", "1", "--inter-op-threads", "1",
					"--models", "diffute/tiny-sd", "--webhook-allow-private")
			}
			key := createKey(b, testEnv(b, lib, extra), b.TempDir(), "acme", "default")
			var done atomic.Int64
			finished := make(chan struct{})
			n := int64(b.N)
			recv := newReceiverFunc(b, func([]byte, http.Header) {
				if done.Add(1) == n {
					close(finished)
				}
			})
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
			defer client.CloseIdleConnections()
			b.ResetTimer()
			for i := range b.N {
				req := map[string]any{
					"name": fmt.Sprintf("bench-%d", i),
					"prompts": []map[string]any{{"name": "p", "prompt": "a lighthouse", "num_images": 1,
						"height": 64, "width": 64, "steps": 1, "seed": i}},
					"webhook": recv.URL, "secret": "s3cret", "pretrained_model_name": "diffute/tiny-sd",
				}
				body, _ := json.Marshal(req)
				hreq, _ := http.NewRequest(http.MethodPut, api.url+"/acme/default/media/inference", bytes.NewReader(body))
				hreq.Header.Set("Content-Type", "application/json")
				hreq.Header.Set("x-api-key", key)
				resp, err := client.Do(hreq)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					b.Fatalf("PUT: %s", resp.Status)
				}
			}
			select {
			case <-finished:
			case <-time.After(5 * time.Minute):
				b.Fatalf("%d of %d jobs done", done.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}

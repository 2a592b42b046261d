package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/httpapi"
)

// TestBatchRequestsEndToEnd submits two jobs at once to a server with two
// workers that batches across jobs and to one that does not: on the first
// the two jobs' prompts share one UNet batch (its /metrics says so), and every
// image is the one the second server makes, within one level of the float
// rounding a batch size can change.
func TestBatchRequestsEndToEnd(t *testing.T) {
	t.Parallel()
	jobs := []map[string]any{
		{"name": "fox", "pretrained_model_name": "diffute/tiny-sd", "prompts": []any{map[string]any{
			"name": "fox", "prompt": "a red fox in the snow", "num_images": 2, "width": 64, "height": 64, "steps": 3, "seed": 5}}},
		{"name": "house", "pretrained_model_name": "diffute/tiny-sd", "prompts": []any{map[string]any{
			"name": "house", "prompt": "a lighthouse at dusk", "num_images": 1, "width": 64, "height": 64, "steps": 3, "seed": 9}}},
	}
	run := func(args ...string) (*testServer, [][]byte) {
		srv := startServe(t, append([]string{"--workers", "2"}, args...)...)
		key := createKey(t, srv.getenv, srv.dataDir, "acme", "default")
		urls := make([][]string, len(jobs))
		var wg sync.WaitGroup
		for i, job := range jobs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, _ := json.Marshal(job)
				req, _ := http.NewRequest(http.MethodPut, srv.url+"/acme/default/media/inference", bytes.NewReader(b))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("x-api-key", key+"/default")
				req.Header.Set("Prefer", "wait=60")
				resp, err := apiClient(t).Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var st httpapi.JobStatus
				if err := json.Unmarshal(body, &st); err != nil || st.Status != diffute.StatusSucceeded || st.Manifest == nil {
					t.Errorf("job %d: %s %s", i, resp.Status, body)
					return
				}
				urls[i] = st.Manifest.Images[job["name"].(string)]
			}()
		}
		wg.Wait()
		var images [][]byte
		for _, us := range urls {
			for _, u := range us {
				resp, err := http.Get(u)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				images = append(images, b)
			}
		}
		return srv, images
	}
	batched, got := run("--batch-requests", "--batch-wait", "2s")
	_, want := run()
	if len(got) != 3 || len(want) != 3 {
		t.Fatalf("%d and %d images, want 3 each", len(got), len(want))
	}
	for i := range want {
		if d, sameSize := pngDiff(t, got[i], want[i]); !sameSize || d > 1 {
			t.Errorf("image %d: batched and alone differ by up to %d levels", i, d)
		}
	}
	m := scrape(t, batched.url)
	if value(m, "diffute_engine_unet_batches_total") != 1 || value(m, "diffute_engine_unet_batches_shared_total") != 1 {
		t.Errorf("metrics:\n%s", grepLines(m, "unet_batches"))
	}
}

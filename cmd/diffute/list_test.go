package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/diffute/diffute/httpapi"
)

// TestListAtTheMaximumLimitPages is the regression test of ?limit=100 never
// returning next_before (the store clamped the API's limit+1 to 100): with 101
// jobs, the first page of 100 must point at the second.
func TestListAtTheMaximumLimitPages(t *testing.T) {
	t.Parallel()
	srv := startServe(t, "--workers", "0", "--max-active-jobs", "0", "--rate-limit", "0")
	key := createKey(t, srv.getenv, srv.dataDir, "acme", "default")
	for range 101 {
		submit(t, srv, key, tinyJob("https://example.com/hook"))
	}
	seen := map[int64]bool{}
	url := srv.url + "/acme/default/media/inference?limit=100"
	for page := 1; ; page++ {
		resp, body := doJSON(t, http.MethodGet, url, key, nil)
		var list httpapi.JobList
		if err := json.Unmarshal(body, &list); resp.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("page %d: %s %s (%v)", page, resp.Status, body, err)
		}
		for _, j := range list.Jobs {
			if seen[j.JobID] {
				t.Fatalf("job %d listed twice", j.JobID)
			}
			seen[j.JobID] = true
		}
		if list.NextBefore == nil {
			if page != 2 || len(seen) != 101 {
				t.Fatalf("%d pages, %d jobs reached; want 2 pages and all 101", page, len(seen))
			}
			return
		}
		if page == 1 && len(list.Jobs) != 100 {
			t.Fatalf("first page holds %d jobs, want 100", len(list.Jobs))
		}
		url = fmt.Sprintf("%s/acme/default/media/inference?limit=100&before=%d", srv.url, *list.NextBefore)
	}
}

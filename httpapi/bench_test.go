package httpapi_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/httpapi"
)

// BenchmarkCreateInference measures the API's own cost of accepting the product page's
// example request (key check, decoding, validation, job building) with a store that
// does nothing, in process: the ceiling the database-backed rate is compared against.
func BenchmarkCreateInference(b *testing.B) {
	mem := newMemory()
	key := mem.addKey(diffute.APIKey{ID: 1, Org: org})
	store := &fakeStore{CreateJobFn: func(context.Context, *diffute.Job) error { return nil }}
	api := &httpapi.Server{
		Store:    store,
		Keys:     mem.keyStore(),
		Media:    &struct{ diffute.MediaStore }{},
		Tenancy:  mem.tenancy(store),
		Webhooks: &fakeWebhooks{},
		Models:   servedModels,
	}
	h := api.Handler()
	body := mustJSON(b, exampleRequest())
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPut, "/"+org+"/"+project+"/media/inference", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-api-key", key)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}

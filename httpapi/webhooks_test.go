package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/diffute/diffute"
)

// fakeWebhooks is a diffute.WebhookStore for the handlers' tests.
type fakeWebhooks struct {
	mu       sync.Mutex
	secrets  map[string][]diffute.WebhookSecret
	messages map[int64][]diffute.WebhookMessage
	redeliv  func(org, project string, id int64) (*diffute.WebhookMessage, error)
}

var _ diffute.WebhookStore = (*fakeWebhooks)(nil)

func (f *fakeWebhooks) WebhookSecrets(_ context.Context, org, project string) ([]diffute.WebhookSecret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := org + "/" + project
	if len(f.secrets[k]) == 0 {
		f.secrets[k] = []diffute.WebhookSecret{{Secret: "whsec_" + k, CreatedAt: time.Now()}}
	}
	return f.secrets[k], nil
}

func (f *fakeWebhooks) RotateWebhookSecret(_ context.Context, org, project string, overlap time.Duration) ([]diffute.WebhookSecret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := org + "/" + project
	exp := time.Now().Add(overlap)
	old := f.secrets[k][0]
	old.ExpiresAt = &exp
	f.secrets[k] = []diffute.WebhookSecret{{Secret: "whsec_new", CreatedAt: time.Now()}, old}
	return f.secrets[k], nil
}

func (f *fakeWebhooks) WebhookMessages(_ context.Context, _, _ string, id int64) ([]diffute.WebhookMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.messages[id], nil
}

func (f *fakeWebhooks) Redeliver(_ context.Context, org, project string, id int64) (*diffute.WebhookMessage, error) {
	return f.redeliv(org, project, id)
}

func TestWebhookRoutes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	base := "/" + org + "/" + project
	wh := &fakeWebhooks{secrets: map[string][]diffute.WebhookSecret{}, messages: map[int64][]diffute.WebhookMessage{
		77: {{DeliveryID: 1, MessageID: "msg_x", Event: "completed", State: "pending"}},
	}}
	wh.redeliv = func(o, p string, id int64) (*diffute.WebhookMessage, error) {
		if o != org || p != project {
			return nil, diffute.Errorf(diffute.ENOTFOUND, "job %d not found", id)
		}
		return nil, diffute.Errorf(diffute.ECONFLICT, "the terminal message of job %d is still being delivered", id)
	}
	// Set before any request reaches a handler that reads it.
	b.api.Webhooks = wh

	resp, body := b.get(t, base+"/webhook-secret")
	var got struct {
		Secret  string                  `json:"secret"`
		Secrets []diffute.WebhookSecret `json:"secrets"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &got) != nil || got.Secret != "whsec_"+org+"/"+project ||
		resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET webhook-secret: %s %s", resp.Status, body)
	}
	resp, body = b.do(t, http.MethodPost, base+"/webhook-secret/rotate", map[string]string{"x-api-key": b.key}, nil)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &got) != nil || got.Secret != "whsec_new" || len(got.Secrets) != 2 {
		t.Errorf("rotate: %s %s", resp.Status, body)
	}
	// No key: 401 naming the header, and no secret in the answer.
	resp, body = b.do(t, http.MethodGet, base+"/webhook-secret", nil, nil)
	if resp.StatusCode != http.StatusUnauthorized || strings.Contains(string(body), "whsec_") {
		t.Errorf("without a key: %s %s", resp.Status, body)
	}
	// Another organization's key: 403.
	other := b.mem.addKey(diffute.APIKey{ID: 9, Org: "globex"})
	resp, _ = b.do(t, http.MethodGet, base+"/webhook-secret", map[string]string{"x-api-key": other}, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("other org's key: %s", resp.Status)
	}

	resp, body = b.do(t, http.MethodPost, base+"/media/inference/77/redeliver", map[string]string{"x-api-key": b.key}, nil)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "still being delivered") {
		t.Errorf("redeliver while pending: %s %s", resp.Status, body)
	}
	if resp, _ := b.do(t, http.MethodPost, base+"/media/inference/abc/redeliver", map[string]string{"x-api-key": b.key}, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("redeliver of a malformed job ID: %s", resp.Status)
	}
}

package httpapi

import (
	"fmt"
	"net/http"
	"time"

	"github.com/diffute/diffute"
)

// secretOverlap is how long a rotated-out signing secret keeps signing.
const secretOverlap = 24 * time.Hour

// webhookSecretResponse is the body of GET /{org}/{project}/webhook-secret: the
// current secret, and every secret still signing (two during a rotation), which a
// receiver should all accept.
type webhookSecretResponse struct {
	Secret  string                  `json:"secret"`
	Secrets []diffute.WebhookSecret `json:"secrets"`
}

// getWebhookSecret handles GET /{org}/{project}/webhook-secret.
func (s *Server) getWebhookSecret(w http.ResponseWriter, r *http.Request) error {
	ws := s.Webhooks
	secrets, err := ws.WebhookSecrets(r.Context(), r.PathValue("org"), r.PathValue("project"))
	if err != nil {
		return fmt.Errorf("webhook secret: %w", err)
	}
	return s.writeSecrets(w, r, secrets)
}

// rotateWebhookSecret handles POST /{org}/{project}/webhook-secret/rotate.
func (s *Server) rotateWebhookSecret(w http.ResponseWriter, r *http.Request) error {
	ws := s.Webhooks
	secrets, err := ws.RotateWebhookSecret(r.Context(), r.PathValue("org"), r.PathValue("project"), secretOverlap)
	if err != nil {
		return fmt.Errorf("rotate webhook secret: %w", err)
	}
	return s.writeSecrets(w, r, secrets)
}

func (s *Server) writeSecrets(w http.ResponseWriter, r *http.Request, secrets []diffute.WebhookSecret) error {
	if len(secrets) == 0 || secrets[0].ExpiresAt != nil {
		return fmt.Errorf("webhook secret: the store returned no current secret")
	}
	// A secret in a response must not sit in a shared cache.
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusOK, webhookSecretResponse{Secret: secrets[0].Secret, Secrets: secrets})
	return nil
}

// redeliver handles POST /{org}/{project}/media/inference/{job_id}/redeliver: the
// job's terminal message is queued again with the same webhook-id.
func (s *Server) redeliver(w http.ResponseWriter, r *http.Request) error {
	ws := s.Webhooks
	id, err := jobID(r)
	if err != nil {
		return err
	}
	m, err := ws.Redeliver(r.Context(), r.PathValue("org"), r.PathValue("project"), id)
	if err != nil {
		return fmt.Errorf("redeliver: %w", err)
	}
	s.writeJSON(w, r, http.StatusAccepted, m)
	return nil
}

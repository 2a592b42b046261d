package httpapi

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/diffute/diffute"
)

// maxIdempotencyKey bounds the Idempotency-Key header (Stripe allows 255).
const maxIdempotencyKey = 255

// idempotencyKey reads and checks the Idempotency-Key header; "" when absent.
func idempotencyKey(r *http.Request) (string, error) {
	vals := r.Header.Values("Idempotency-Key")
	if len(vals) == 0 {
		return "", nil
	}
	k := vals[0]
	if len(vals) > 1 || len(k) == 0 || len(k) > maxIdempotencyKey {
		return "", diffute.FieldErrorf(diffute.EINVALID, "Idempotency-Key",
			"send one Idempotency-Key of 1 to %d printable ASCII characters (a UUID is a good choice)", maxIdempotencyKey)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return "", diffute.FieldErrorf(diffute.EINVALID, "Idempotency-Key",
				"Idempotency-Key must be printable ASCII without spaces (a UUID is a good choice)")
		}
	}
	return k, nil
}

// requestHash identifies a request for the idempotency check: the SHA-256 of the
// decoded request re-encoded, so that whitespace and key order do not make two
// equal requests differ, while any change of a value does.
func requestHash(req *diffute.InferenceRequest) ([]byte, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("hash request: %w", err)
	}
	sum := sha256.Sum256(b)
	return sum[:], nil
}

// submit stores job, through the tenancy store when there is one (idempotency
// and quotas), and returns the ID and status to answer with.
func (s *Server) submit(r *http.Request, job *diffute.Job, req *diffute.InferenceRequest) (int64, diffute.JobStatus, bool, error) {
	key, err := idempotencyKey(r)
	if err != nil {
		return 0, "", false, err
	}
	sub := diffute.Submission{IdempotencyKey: key, Quota: s.policy(job.Org).Quota}
	if key != "" {
		if sub.RequestHash, err = requestHash(req); err != nil {
			return 0, "", false, err
		}
	}
	id, replayed, err := s.Tenancy.SubmitJob(r.Context(), job, sub)
	if qe, ok := errors.AsType[*diffute.QuotaError](err); ok && qe.RetryAfter > 0 {
		return 0, "", false, &retryAfterError{after: qe.RetryAfter, err: err}
	}
	if err != nil {
		return 0, "", false, &jobError{jobID: job.ID, err: fmt.Errorf("submit job: %w", err)}
	}
	noteSubmitted(r, replayed)
	if !replayed {
		return id, job.Status, false, nil
	}
	orig, err := s.Store.Job(r.Context(), job.Org, job.Project, id)
	if err != nil {
		return 0, "", false, &jobError{jobID: id, err: fmt.Errorf("replayed job: %w", err)}
	}
	return id, orig.Status, true, nil
}

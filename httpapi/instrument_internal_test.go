package httpapi

import (
	"errors"
	"net/http"
	"testing"

	"github.com/diffute/diffute"
)

func TestInstrumentRejectReasons(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err    error
		status int
		want   string
	}{
		{&diffute.QuotaError{Err: diffute.Errorf(diffute.ERATELIMIT, "quota")}, 429, "quota"},
		{diffute.Errorf(diffute.ERATELIMIT, "slow down"), 429, "rate_limited"},
		{diffute.FieldErrorf(diffute.EUNPROCESSABLE, "width", "bad"), 422, "validation"},
		{diffute.Errorf(diffute.EINVALID, "bad json"), 400, "validation"},
		{diffute.Errorf(diffute.ETOOLARGE, "big"), 413, "validation"},
		{diffute.Errorf(diffute.EUNAUTHORIZED, "no key"), 401, "auth"},
		{diffute.Errorf(diffute.EFORBIDDEN, "other project"), 403, "auth"},
		{diffute.Errorf(diffute.ENOTFOUND, "no such project"), 404, "not_found"},
		{diffute.Errorf(diffute.ECONFLICT, "idempotency key reused"), 409, "conflict"},
		{diffute.Errorf(diffute.EUNAVAILABLE, "db"), 503, "unavailable"},
		{errors.New("bug"), 500, "internal"},
		// No error noted (a handler that wrote its own error): from the status.
		{nil, http.StatusTooManyRequests, "rate_limited"},
		{nil, http.StatusUnauthorized, "auth"},
		{nil, http.StatusBadRequest, "validation"},
		{nil, http.StatusBadGateway, "internal"},
	} {
		if got := rejectReason(c.err, c.status); got != c.want {
			t.Errorf("rejectReason(%v, %d) = %q, want %q", c.err, c.status, got, c.want)
		}
	}
}

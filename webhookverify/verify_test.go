package webhookverify_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/diffute/diffute/webhookverify"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// signed builds a request as Diffute sends it, signing by hand.
func signed(t *testing.T, ts time.Time, body string) *http.Request {
	t.Helper()
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("msg_1." + strconv.FormatInt(ts.Unix(), 10) + "." + body))
	r := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(body))
	r.Header.Set("webhook-id", "msg_1")
	r.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	r.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	r.Header.Set("Authorization", "Bearer s3cret")
	return r
}

func TestRequest(t *testing.T) {
	t.Parallel()
	now := time.Now()
	v := webhookverify.Verifier{SigningSecrets: []string{secret}, Bearer: "s3cret"}
	body, err := v.Request(signed(t, now, `{"job_id":1}`))
	if err != nil || string(body) != `{"job_id":1}` {
		t.Fatalf("Request = %s, %v", body, err)
	}
	// Authentication, the product page's header name, is accepted too.
	r := signed(t, now, "{}")
	r.Header.Del("Authorization")
	r.Header.Set("Authentication", "Bearer s3cret")
	if _, err := v.Request(r); err != nil {
		t.Errorf("Authentication header: %v", err)
	}

	cases := map[string]struct {
		req  *http.Request
		v    webhookverify.Verifier
		want error
	}{
		"wrong bearer": {signed(t, now, "{}"), webhookverify.Verifier{SigningSecrets: []string{secret}, Bearer: "other"}, webhookverify.ErrBearer},
		"stale":        {signed(t, now.Add(-10*time.Minute), "{}"), v, webhookverify.ErrStaleTimestamp},
		"future":       {signed(t, now.Add(10*time.Minute), "{}"), v, webhookverify.ErrStaleTimestamp},
		"other secret": {signed(t, now, "{}"), webhookverify.Verifier{SigningSecrets: []string{"whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}, webhookverify.ErrNoMatch},
		"no secret":    {signed(t, now, "{}"), webhookverify.Verifier{}, webhookverify.ErrNoMatch},
	}
	unsigned := signed(t, now, "{}")
	unsigned.Header.Del("webhook-signature")
	cases["unsigned"] = struct {
		req  *http.Request
		v    webhookverify.Verifier
		want error
	}{unsigned, v, webhookverify.ErrMissingHeaders}
	if err := v.CheckBearer(signed(t, now, "{}").Header); err != nil {
		t.Errorf("CheckBearer: %v", err)
	}
	for name, c := range cases {
		if _, err := c.v.Request(c.req); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", name, err, c.want)
		}
	}
}

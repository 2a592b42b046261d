package webhook

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/diffute/diffute/webhookverify"
)

type signatureVector struct {
	Secret    string `json:"secret"`
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"`
	Body      string `json:"body"`
	Signature string `json:"signature"`
}

// loadVectors reads the language-neutral vectors, computed with Node.js's crypto
// (the first is the Standard Webhooks specification's own example).
func loadVectors(t *testing.T) []signatureVector {
	t.Helper()
	b, err := os.ReadFile("testdata/signature-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Vectors []signatureVector }
	if err := json.Unmarshal(b, &f); err != nil || len(f.Vectors) < 4 {
		t.Fatalf("vectors: %v (%d)", err, len(f.Vectors))
	}
	return f.Vectors
}

func TestSignMatchesVectors(t *testing.T) {
	t.Parallel()
	for _, v := range loadVectors(t) {
		key, err := ParseSigningSecret(v.Secret)
		if err != nil {
			t.Fatal(err)
		}
		if got := Sign(key, v.ID, time.Unix(v.Timestamp, 0), []byte(v.Body)); got != v.Signature {
			t.Errorf("%s: Sign = %s, want %s", v.ID, got, v.Signature)
		}
		// The reference library agrees with the vectors too.
		wh, err := standardwebhooks.NewWebhook(v.Secret)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := wh.Sign(v.ID, time.Unix(v.Timestamp, 0), []byte(v.Body)); err != nil || got != v.Signature {
			t.Errorf("%s: reference library signs %s, %v", v.ID, got, err)
		}
		h := http.Header{}
		h.Set("webhook-id", v.ID)
		h.Set("webhook-timestamp", strconv.FormatInt(v.Timestamp, 10))
		h.Set("webhook-signature", "v1,bm90IGl0 "+v.Signature)
		ver := webhookverify.Verifier{SigningSecrets: []string{v.Secret}, Now: func() time.Time { return time.Unix(v.Timestamp+60, 0) }}
		if err := ver.Verify([]byte(v.Body), h); err != nil {
			t.Errorf("%s: webhookverify: %v", v.ID, err)
		}
		if err := ver.Verify([]byte(v.Body+" "), h); err == nil {
			t.Errorf("%s: webhookverify accepted a changed body", v.ID)
		}
	}
}

func TestParseSigningSecret(t *testing.T) {
	t.Parallel()
	s := NewSigningSecret()
	if k, err := ParseSigningSecret(s); err != nil || len(k) != secretBytes || !strings.HasPrefix(s, "whsec_") {
		t.Fatalf("NewSigningSecret %q: %v", s, err)
	}
	if s == NewSigningSecret() {
		t.Error("two secrets are equal")
	}
	for _, bad := range []string{"", "whsec_", "abc", "whsec_!!!"} {
		if _, err := ParseSigningSecret(bad); err == nil {
			t.Errorf("ParseSigningSecret(%q) accepted", bad)
		}
	}
}

// TestSentSignatureVerifiesIndependently sends a real request with two signing
// secrets (a rotation) and verifies what the receiver got with the Standard
// Webhooks reference library, with package webhookverify, and with Node.js.
func TestSentSignatureVerifiesIndependently(t *testing.T) {
	t.Parallel()
	oldSecret, newSecret := NewSigningSecret(), NewSigningSecret()
	r := newReceiver(t, func(http.ResponseWriter, *http.Request) {})
	body := []byte(`{"name":"n","images":{"a":["http://x/y?a=1&b=2"]},"job_id":1234567890123,"status":"succeeded"}`)
	s := newTestSender(t, Config{AllowPrivate: true, Timeout: 5 * time.Second})
	res := s.Send(t.Context(), Message{ID: "msg_sig", URL: r.srv.URL, Secret: "tok", Body: body, SigningSecrets: []string{newSecret, oldSecret}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	h, got := r.req.Load().Header, *r.body.Load()
	if sigs := strings.Fields(h.Get("webhook-signature")); len(sigs) != 2 {
		t.Fatalf("webhook-signature %q: want two signatures", h.Get("webhook-signature"))
	}
	if ts, err := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64); err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
		t.Errorf("webhook-timestamp %q", h.Get("webhook-timestamp"))
	}
	for _, secret := range []string{oldSecret, newSecret} {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(got, h); err != nil {
			t.Errorf("reference library: %v", err)
		}
		ver := webhookverify.Verifier{SigningSecrets: []string{secret}, Bearer: "tok"}
		if err := ver.Verify(got, h); err != nil {
			t.Errorf("webhookverify: %v", err)
		}
	}
	wrong, _ := standardwebhooks.NewWebhook(NewSigningSecret())
	if err := wrong.Verify(got, h); err == nil {
		t.Error("reference library accepted an unrelated secret")
	}
	verifyWithNode(t, newSecret, h, got)
}

// verifyWithNode recomputes the signature with Node.js's crypto module, a third
// implementation, from the recorded request.
func verifyWithNode(t *testing.T, secret string, h http.Header, body []byte) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is required in CI for the independent signature check")
		}
		t.Skip("node not found; install Node.js to run the independent signature check")
	}
	const script = `
const c = require("crypto");
const [secret, id, ts, sigs, body] = process.argv.slice(1);
const key = Buffer.from(secret.slice("whsec_".length), "base64");
const want = c.createHmac("sha256", key).update(id + "." + ts + "." + body).digest("base64");
if (!sigs.split(" ").some(s => s === "v1," + want)) { console.error("no signature matches"); process.exit(1); }
console.log("ok");`
	cmd := exec.CommandContext(t.Context(), node, "-e", script, secret, h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature"), string(body))
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Errorf("node verification: %v: %s", err, out)
	}
}

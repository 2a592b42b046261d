package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/webhookverify"
)

// demoRequest is the product page's example request, verbatim except for the model
// (a tiny test model) and the webhook URL, which the demo fills in.
const demoRequest = `{
  "prompts": [
    {
      "name": "Ansel_Adams",
      "prompt": "A series of black and white photographs capturing the beauty and grandeur of Yosemite National Park",
      "num_images": 3,
      "height": 1024,
      "width": 768,
      "style": "photography in the style of Ansel Adams"
    },
    {
      "name": "Henri_Rousseau",
      "prompt": "A painting of a lush jungle scene with a variety of exotic plants and animals",
      "num_images": 3,
      "height": 1024,
      "width": 768,
      "style": "painting in the style of Henri Rousseau"
    },
    {
      "name": "Rachel_Ruysch",
      "prompt": "Still life painting featuring a variety of flowers and plants found in a garden",
      "num_images": 3,
      "height": 1024,
      "width": 768,
      "style": "painting in the style of Rachel Ruysch"
    }
  ],
  "webhook" : "%s",
  "secret" : "` + demoSecret + `",
  "pretrained_model_name" : "%s",
  "name" : "Houston"
}`

// demoSecret is the product page's example webhook secret.
const demoSecret = "4f986e48-0129-480e-996a-728ea57c020c"

// received is one webhook request as the demo's receiver saw it.
type received struct {
	header http.Header
	body   []byte
}

func runDemo(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "demo", "demo [--model NAME] [--out-dir DIR]")
	var ef engineFlags
	ef.register(fs)
	model := fs.String("model", "diffute/tiny-sdxl", "model to run the example on")
	outDir := fs.String("out-dir", "diffute-demo", "where to save the images")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up waiting for the webhook after this long")
	if err := parseFlagsNoArgs(fs, env, args); err != nil {
		return err
	}
	dataDir, err := os.MkdirTemp("", "diffute-demo-data-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	logFile, err := os.Create(filepath.Join(dataDir, "server.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()

	fmt.Fprintf(env.stdout, "Diffute demo: the product page's example request, end to end, offline.\n")
	fmt.Fprintf(env.stdout, "Model %s is a tiny random-weight test model: it makes noise, not pictures.\n\n", *model)

	// The receiver: the application's webhook endpoint.
	hooks := make(chan received, 4)
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	receiver := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		select {
		case hooks <- received{header: r.Header.Clone(), body: body}:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = receiver.Serve(rl) }() // ends with ErrServerClosed at Close
	defer receiver.Close()
	webhookURL := "http://" + rl.Addr().String() + "/webhooks/diffute"

	cfg, err := parseServeFlags(&environment{getenv: func(string) string { return "" }, stdout: io.Discard, stderr: io.Discard},
		[]string{"--addr", "127.0.0.1:0", "--data-dir", dataDir, "--workers", "1", "--webhook-allow-private", "--models", *model,
			// The demo's data is thrown away, so a fresh key that lives only in memory suits it.
			"--secret-key", demoSecretKey()})
	if err != nil {
		return err
	}
	cfg.engine = ef
	srvCtx, stopServer := context.WithCancel(ctx)
	defer stopServer()
	srv, err := startServer(srvCtx, &environment{getenv: env.getenv, stdout: io.Discard, stderr: logFile}, cfg)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- srv.wait(srvCtx) }()
	defer func() {
		stopServer()
		if err := <-done; err != nil {
			fmt.Fprintln(env.stderr, "demo: server:", err)
		}
	}()
	fmt.Fprintf(env.stdout, "server   %s (data in a temporary directory)\nreceiver %s\n", srv.url, webhookURL)

	secret, hash := diffute.NewAPIKeySecret()
	if err := srv.db.Store().CreateAPIKey(ctx, &diffute.APIKey{Org: "acme", Project: "default", Name: "demo", CreatedAt: time.Now().UTC()}, hash); err != nil {
		return err
	}

	body := fmt.Sprintf(demoRequest, webhookURL, *model)
	target := srv.url + "/acme/default/media/inference"
	shown := strings.Replace(body, demoSecret, maskSecret(demoSecret), 1)
	fmt.Fprintf(env.stdout, "\n> PUT %s\n> x-api-key: %s/default\n%s\n", target, maskSecret(secret), shown)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, target, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", secret+"/default")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Fprintf(env.stdout, "\n< %s\n< Location: %s\n%s\n", resp.Status, resp.Header.Get("Location"), bytes.TrimSpace(answer))
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("demo: the server refused the request: %s", resp.Status)
	}

	start := time.Now()
	var hook received
	select {
	case hook = <-hooks:
	case <-time.After(*timeout):
		return fmt.Errorf("demo: no webhook within %s; the server log is in %s", *timeout, logFile.Name())
	case <-ctx.Done():
		return ctx.Err()
	}
	fmt.Fprintf(env.stdout, "\nWebhook received after %s:\n", time.Since(start).Round(time.Millisecond))
	names := make([]string, 0, len(hook.header))
	for name := range hook.header {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, v := range hook.header.Values(name) {
			if name == "Authorization" || name == "Authentication" {
				v = "Bearer " + maskSecret(strings.TrimPrefix(v, "Bearer "))
			}
			fmt.Fprintf(env.stdout, "< %s: %s\n", name, v)
		}
	}
	var manifest diffute.Manifest
	if err := json.Unmarshal(hook.body, &manifest); err != nil {
		return fmt.Errorf("demo: webhook body is not a manifest: %w", err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, hook.body, "", "  "); err != nil {
		pretty.Write(hook.body)
	}
	fmt.Fprintf(env.stdout, "%s\n", pretty.Bytes())
	if err := verifyDemoWebhook(ctx, srv, hook); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "Verified as a receiver would: bearer secret and webhook-signature (docs/webhooks.md)\n")
	if manifest.Status != diffute.StatusSucceeded {
		return fmt.Errorf("demo: job ended %s: %s", manifest.Status, manifest.Error)
	}

	n, err := downloadManifest(ctx, &manifest, *outDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "\nSaved %d images into %s/\n", n, *outDir)
	return nil
}

// downloadManifest saves every image of m as DIR/<prompt>_<n>.<ext> and returns how
// many it saved.
func downloadManifest(ctx context.Context, m *diffute.Manifest, dir string) (int, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	n := 0
	for prompt, urls := range m.Images {
		for i, u := range urls {
			parsed, err := url.Parse(u)
			if err != nil {
				return n, err
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return n, err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return n, err
			}
			data, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return n, err
			}
			if resp.StatusCode != http.StatusOK {
				return n, fmt.Errorf("GET %s: %s", parsed.Path, resp.Status)
			}
			name := fmt.Sprintf("%s_%d%s", prompt, i+1, path.Ext(parsed.Path))
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				return n, err
			}
			n++
		}
	}
	if n == 0 {
		return 0, errors.New("demo: the manifest lists no images")
	}
	return n, nil
}

// maskSecret keeps the first and last four characters of a secret.
func maskSecret(s string) string {
	if len(s) <= 12 {
		return strings.Repeat("*", len(s))
	}
	return s[:4] + strings.Repeat("*", 8) + s[len(s)-4:]
}

// verifyDemoWebhook checks the demo's webhook with package webhookverify, as an
// application would: the request's secret and the project's signing secret.
func verifyDemoWebhook(ctx context.Context, srv *server, hook received) error {
	secrets, err := srv.db.Store().WebhookSecrets(ctx, "acme", "default")
	if err != nil {
		return fmt.Errorf("demo: webhook secret: %w", err)
	}
	v := &webhookverify.Verifier{Bearer: demoSecret}
	for _, s := range secrets {
		v.SigningSecrets = append(v.SigningSecrets, s.Secret)
	}
	if err := errors.Join(v.CheckBearer(hook.header), v.Verify(hook.body, hook.header)); err != nil {
		return fmt.Errorf("demo: the webhook does not verify: %w", err)
	}
	return nil
}

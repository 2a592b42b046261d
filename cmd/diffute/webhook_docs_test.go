package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// codeBlock returns the first fenced block of lang in markdown.
func codeBlock(t *testing.T, markdown, lang string) string {
	t.Helper()
	_, rest, ok := strings.Cut(markdown, "```"+lang+"\n")
	if !ok {
		t.Fatalf("docs/webhooks.md has no %s block", lang)
	}
	block, _, _ := strings.Cut(rest, "```")
	return block
}

// lookTool finds an interpreter; missing, it skips locally and fails in CI.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI to check the documented snippets", name)
		}
		t.Skipf("%s not found; install it to check the documented snippets", name)
	}
	return p
}

// TestWebhookDocsSnippetsVerifyRealMessages runs the Node.js and Python
// verification code of docs/webhooks.md on a message a real server sent, and on
// the same message with its body changed.
func TestWebhookDocsSnippetsVerifyRealMessages(t *testing.T) {
	t.Parallel()
	node, python := lookTool(t, "node"), lookTool(t, "python3")
	doc, err := os.ReadFile("../../docs/webhooks.md")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "verify.js"), []byte(codeBlock(t, string(doc), "js")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "verify.py"), []byte(codeBlock(t, string(doc), "python")), 0o600); err != nil {
		t.Fatal(err)
	}

	srv := startServe(t)
	key := createKey(t, srv.getenv, srv.dataDir, "acme", "default")
	secret := webhookSecretCLI(t, srv)
	recv := newScriptedReceiver(t, nil)
	submit(t, srv, key, tinyJob(recv.url))
	h := recv.waitCount(t, 1, 60*time.Second)[0]
	headers := map[string]string{}
	for k := range h.header {
		headers[strings.ToLower(k)] = h.header.Get(k)
	}
	for _, tamper := range []bool{false, true} {
		body := string(h.body)
		if tamper {
			body = strings.Replace(body, `"hooks"`, `"hookz"`, 1)
		}
		in, _ := json.Marshal(map[string]any{"body": body, "headers": headers, "secret": secret, "bearer": "bearer-s3cret"})
		for _, c := range []*exec.Cmd{
			exec.CommandContext(t.Context(), node, "-e", `
const {verifyDiffuteWebhook} = require(process.argv[1]);
const d = JSON.parse(require("fs").readFileSync(0, "utf8"));
try { const m = verifyDiffuteWebhook(d.body, d.headers, [d.secret], d.bearer); console.log("ok " + m.job_id); }
catch (e) { console.log("rejected: " + e.message); }`, filepath.Join(dir, "verify.js")),
			exec.CommandContext(t.Context(), python, "-c", `
import json, sys
sys.path.insert(0, sys.argv[1])
from verify import verify_diffute_webhook
d = json.load(sys.stdin)
try:
    m = verify_diffute_webhook(d["body"].encode(), d["headers"], [d["secret"]], d["bearer"])
    print("ok", m["job_id"])
except ValueError as e:
    print("rejected:", e)`, dir),
		} {
			c.Stdin = strings.NewReader(string(in))
			out, err := c.CombinedOutput()
			got := strings.TrimSpace(string(out))
			if err != nil {
				t.Fatalf("%s: %v\n%s", c.Path, err, out)
			}
			if tamper != strings.HasPrefix(got, "rejected") || (!tamper && !strings.HasPrefix(got, "ok ")) {
				t.Errorf("%s (tampered=%v): %s", filepath.Base(c.Path), tamper, got)
			}
		}
	}
}

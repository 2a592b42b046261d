package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath returns Debian's Chromium. The test installs nothing: scripts/test.sh
// does (apt-get install chromium). Locally a missing browser skips; under CI=true it
// fails.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("Chromium is required in CI: apt-get install -y chromium (scripts/test.sh does)")
	}
	t.Skip("skipping: no chromium on PATH (apt-get install -y chromium to enable)")
	return ""
}

// browser starts headless Chromium with a fresh profile and returns its context.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 1600),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 120*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// TestConsoleInBrowser drives the web console in headless Chromium against the real
// server: sign in, submit a two-prompt job from the playground, watch it finish, and
// check that every gallery image decoded and that a screenshot of one shows a
// generated (non-uniform) image; then find the job in the list and the webhook in
// the delivery log.
func TestConsoleInBrowser(t *testing.T) {
	t.Parallel()
	srv := startServe(t)
	ctx := browser(t)
	key := createKey(t, srv.getenv, srv.dataDir, "acme", "default")
	recv := newReceiver(t)

	fail := func(what string, err error) {
		t.Helper()
		html, _ := chromedp.Run(context.WithoutCancel(ctx), chromedp.OuterHTML(chromedp.CSS("main")))
		t.Fatalf("%s: %v\npage: %.3000s\nserver log: %.2000s", what, err, html, srv.stderr.String())
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			fail(what, err)
		}
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	do("sign in",
		chromedp.Navigate(srv.url+"/"),
		chromedp.WaitVisible(css("#login-form")),
		chromedp.SetValue(css("#key"), key),
		chromedp.SetValue(css("#org"), "acme"),
		chromedp.SetValue(css("#project"), "default"),
		chromedp.Click(css("#login-submit")),
		chromedp.WaitVisible(css("#jobs-table")),
	)
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[string](`sessionStorage.getItem("diffute.key")`))
	if err != nil || stored != key {
		t.Errorf("sessionStorage key = %q (%v)", stored, err)
	}

	first, second := "#f-prompts fieldset:nth-child(1) ", "#f-prompts fieldset:nth-child(2) "
	do("fill the playground",
		chromedp.Click(css("#nav-new")),
		chromedp.WaitVisible(css("#new-form")),
		chromedp.SetValue(css("#f-name"), "browser test"),
		chromedp.SetValue(css("#f-model"), "diffute/tiny-sd"),
		chromedp.SetValue(css(first+".p-name"), "lake"),
		chromedp.SetValue(css(first+".p-prompt"), "a mountain lake"),
		chromedp.SetValue(css(first+".p-n"), "2"),
		chromedp.SetValue(css(first+".p-w"), "64"),
		chromedp.SetValue(css(first+".p-h"), "64"),
		chromedp.SetValue(css(first+".p-steps"), "3"),
		chromedp.SetValue(css(first+".p-seed"), "42"),
		chromedp.Click(css("#add-prompt")),
		chromedp.WaitVisible(css(second+".p-prompt")),
		chromedp.SetValue(css(second+".p-name"), "forest"),
		chromedp.SetValue(css(second+".p-prompt"), "a dark forest"),
		chromedp.SetValue(css(second+".p-style"), "oil painting"),
		chromedp.SetValue(css(second+".p-w"), "96"),
		chromedp.SetValue(css(second+".p-h"), "64"),
		chromedp.SetValue(css(second+".p-steps"), "2"),
		chromedp.SetValue(css("#f-webhook"), recv.URL+"/hook"),
		chromedp.SetValue(css("#f-secret"), "browser-secret"),
		chromedp.Click(css("#submit")),
	)

	// The job page follows the events stream; wait until all three images decoded.
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`(() => {
			const imgs = [...document.querySelectorAll("#prompts .gallery img")];
			return document.getElementById("job-status").textContent === "succeeded" &&
				imgs.length === 3 && imgs.every(i => i.complete && i.naturalWidth > 0);
		})()`, chromedp.WithPollingTimeout(90*time.Second))); err != nil {
		fail("gallery renders", err)
	}
	hash, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash`))
	if err != nil || !strings.HasPrefix(hash, "#/job/") {
		t.Fatalf("after submit, hash = %q (%v)", hash, err)
	}
	jobID := strings.TrimPrefix(hash, "#/job/")
	text, err := chromedp.Run(ctx, chromedp.Text(css("#job")))
	if err != nil {
		fail("job text", err)
	}
	for _, want := range []string{"browser test", "seed 42…43", "3 steps", "a dark forest, oil painting", "2/2 done"} {
		if !strings.Contains(text, want) {
			t.Errorf("job page lacks %q:\n%s", want, text)
		}
	}
	widths, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`[...document.querySelectorAll("#prompts .gallery img")].map(i => i.naturalWidth)`))
	if err != nil || fmt.Sprint(widths) != "[64 64 96]" {
		t.Errorf("image widths = %v (%v), want [64 64 96]", widths, err)
	}

	shot, err := chromedp.Run(ctx, chromedp.Screenshot(css("#prompts .gallery img"), chromedp.NodeVisible))
	if err != nil {
		fail("screenshot", err)
	}
	if n := distinctColors(t, shot); n < 50 {
		t.Errorf("screenshot of a generated image has %d distinct colours; want a rendered image, not a blank box", n)
	}

	// The webhook arrives, and the page's delivery log shows the attempt.
	recv.wait(t, 60*time.Second)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll("#deliveries tbody tr").length > 0`,
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		fail("delivery log", err)
	}
	logText, err := chromedp.Run(ctx, chromedp.Text(css("#deliveries")))
	if err != nil || !strings.Contains(logText, "200") {
		t.Errorf("delivery log lacks the 200 answer: %q (%v)", logText, err)
	}

	do("job list links back",
		chromedp.Click(css("#nav-jobs")),
		chromedp.WaitVisible(css(`tr[data-job="`+jobID+`"]`)),
		chromedp.Click(css(`tr[data-job="`+jobID+`"] td:nth-child(2)`)),
		chromedp.WaitVisible(css(`#prompts .gallery img`)),
	)
	listed, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash`))
	if err != nil || listed != hash {
		t.Errorf("clicking the list row opened %q (%v), want %q", listed, err, hash)
	}

	do("sign out", chromedp.Click(css("#signout")), chromedp.WaitVisible(css("#login-form")))
	if left, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`sessionStorage.getItem("diffute.key") === null`)); err != nil || !left {
		t.Errorf("the key is still in sessionStorage after signing out (%v)", err)
	}
}

// distinctColors counts the distinct colours of a PNG screenshot.
func distinctColors(t *testing.T, b []byte) int {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	seen := map[[4]uint32]bool{}
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c := img.At(x, y)
			r, g, b, a := c.RGBA()
			seen[[4]uint32{r, g, b, a}] = true
		}
	}
	return len(seen)
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/httpapi"
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

// consoleSession is a browser tab on the console of srv.
type consoleSession struct {
	t   *testing.T
	ctx context.Context
	srv *testServer
}

func newConsole(t *testing.T, srv *testServer) *consoleSession {
	return &consoleSession{t: t, ctx: browser(t), srv: srv}
}

func (c *consoleSession) fail(what string, err error) {
	c.t.Helper()
	text, _ := chromedp.Run(context.WithoutCancel(c.ctx), chromedp.Text(chromedp.CSS("body")))
	c.t.Fatalf("%s: %v\npage text: %.4000s\nserver log: %.3000s", what, err, text, c.srv.stderr.String())
}

func (c *consoleSession) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	if err := chromedp.Do(c.ctx, steps...); err != nil {
		c.fail(what, err)
	}
}

// poll waits until the JavaScript expression is true.
func (c *consoleSession) poll(what, expr string, d time.Duration) {
	c.t.Helper()
	if _, err := chromedp.Run(c.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(d))); err != nil {
		c.fail(what, err)
	}
}

func (c *consoleSession) eval(expr string) string {
	c.t.Helper()
	v, err := chromedp.Run(c.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		c.fail("evaluate "+expr, err)
	}
	return v
}

func (c *consoleSession) signIn(key string) {
	c.t.Helper()
	c.do("sign in",
		chromedp.Navigate(c.srv.url+"/"),
		chromedp.WaitVisible(css("#login-form")),
		chromedp.SetValue(css("#key"), key),
		chromedp.SetValue(css("#org"), "acme"),
		chromedp.SetValue(css("#project"), "default"),
		chromedp.Click(css("#login-submit")),
		chromedp.WaitVisible(css("#jobs-table")),
	)
}

// choose picks value in a select as a user would, firing its change event.
func choose(sel, value string) chromedp.Action[chromedp.Void] {
	eval := chromedp.Evaluate[bool](fmt.Sprintf(`(() => {
		const s = document.querySelector(%q);
		if (!s || ![...s.options].some(o => o.value === %q)) return false;
		s.value = %q; s.dispatchEvent(new Event("change", { bubbles: true })); return true;
	})()`, sel, value, value))
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		ok, err := eval(ctx, t)
		if err == nil && !ok {
			err = fmt.Errorf("%s has no option %q", sel, value)
		}
		return chromedp.Void{}, err
	}
}

func css(s string) chromedp.CSS { return chromedp.CSS(s) }

// narrowLayout is what checkNarrow measures of the page at 400 px wide.
type narrowLayout struct {
	ScrollWidth    int  `json:"scrollWidth"`
	InnerWidth     int  `json:"innerWidth"`
	SignOutVisible bool `json:"signOutVisible"`
	SignedIn       bool `json:"signedIn"`
}

// checkNarrow asserts that the view on screen has no horizontal overflow and,
// when signed in, a visible Sign out.
func (c *consoleSession) checkNarrow(view string) {
	c.t.Helper()
	l, err := chromedp.Run(c.ctx, chromedp.Evaluate[narrowLayout](`(() => {
		const so = document.getElementById("signout"), r = so.getBoundingClientRect();
		return { scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
			signedIn: !!sessionStorage.getItem("diffute.key"),
			signOutVisible: !so.hidden && r.width > 0 && r.left >= 0 && r.right <= window.innerWidth && r.top >= 0 };
	})()`))
	if err != nil {
		c.fail("layout of "+view, err)
	}
	if l.InnerWidth != 400 {
		c.t.Errorf("%s: innerWidth %d, want the emulated 400", view, l.InnerWidth)
	}
	if l.ScrollWidth > l.InnerWidth {
		wide := c.eval(`[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > window.innerWidth &&
				(!(e.parentElement && e.parentElement.closest(".scroll")) || getComputedStyle(e).position === "absolute"))
			.slice(0, 8).map(e => e.tagName + (e.id ? "#" + e.id : "") + "." + e.className + " " + Math.round(e.getBoundingClientRect().right)).join(", ")`)
		c.t.Errorf("%s at 400 px: document scrollWidth %d > innerWidth %d (horizontal overflow); past the edge: %s", view, l.ScrollWidth, l.InnerWidth, wide)
	}
	if l.SignedIn && !l.SignOutVisible {
		c.t.Errorf("%s at 400 px: Sign out is not visible inside the window", view)
	}
}

// TestConsoleInBrowser drives the web console in headless Chromium against the real
// server: sign in, submit a two-prompt job from the playground (model, defaults and
// schedulers from GET …/models), watch it finish with its step count, and check
// that every gallery image decoded and that a screenshot of one shows a generated
// (non-uniform) image; find the webhook in the delivery log and redeliver it; open
// a job that does not exist; then check every view at 400 px wide.
func TestConsoleInBrowser(t *testing.T) {
	t.Parallel()
	srv := startServe(t)
	c := newConsole(t, srv)
	ctx := c.ctx
	key := createKey(t, srv.getenv, srv.dataDir, "acme", "default")
	recv := newReceiver(t)
	// The receiver asks the redelivered message to come back later once (503,
	// Retry-After), so that the delivery log shows a next attempt.
	var hooks atomic.Int32
	next := recv.Config.Handler
	recv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hooks.Add(1) == 2 {
			w.Header().Set("Retry-After", "3")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})

	c.signIn(key)
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[string](`sessionStorage.getItem("diffute.key")`))
	if err != nil || stored != key {
		t.Errorf("sessionStorage key = %q (%v)", stored, err)
	}
	if title := c.eval(`document.title`); title != "Jobs · Diffute" {
		t.Errorf("jobs list title = %q", title)
	}
	if icon := c.eval(`document.querySelector('link[rel="icon"]').href`); !strings.HasPrefix(icon, "data:image/svg+xml,") {
		t.Errorf("favicon = %.60q, want an embedded SVG", icon)
	}

	// The model picker offers what GET …/models lists, and a prompt starts with
	// the chosen model's defaults.
	resp, body := doJSON(t, "GET", srv.url+"/acme/default/models", key, nil)
	var served httpapi.ModelList
	if err := json.Unmarshal(body, &served); resp.StatusCode != 200 || err != nil || len(served.Models) == 0 {
		t.Fatalf("GET models: %d %v %s", resp.StatusCode, err, body)
	}
	var names []string
	var tiny *diffute.ModelInfo
	for i, m := range served.Models {
		names = append(names, m.Name)
		if m.Name == "diffute/tiny-sd" {
			tiny = &served.Models[i]
		}
	}
	if tiny == nil {
		t.Fatalf("the server does not list diffute/tiny-sd: %v", names)
	}
	first, second := "#f-prompts fieldset:nth-child(1) ", "#f-prompts fieldset:nth-child(2) "
	c.do("open the playground",
		chromedp.Click(css("#nav-new")),
		chromedp.WaitVisible(css(first+".p-prompt")),
		choose("#f-model", "diffute/tiny-sd"),
	)
	if title := c.eval(`document.title`); title != "Playground · Diffute" {
		t.Errorf("playground title = %q", title)
	}
	offered := c.eval(`[...document.querySelectorAll("#f-model option")].map(o => o.value).join(",")`)
	if offered != strings.Join(names, ",") {
		t.Errorf("model picker offers %q, want what /models lists: %q", offered, strings.Join(names, ","))
	}
	defaults := c.eval(`["p-w", "p-h", "p-steps", "p-guidance"].map(c => document.querySelector("` + first + `." + c).value).join(" ")`)
	if want := fmt.Sprintf("%d %d %d %g", tiny.Width, tiny.Height, tiny.DefaultSteps, tiny.DefaultGuidance); defaults != want {
		t.Errorf("prompt defaults (width height steps guidance) = %q, want the model's %q", defaults, want)
	}
	schedulers := c.eval(`[...document.querySelector("` + first + `.p-scheduler").options].map(o => o.value).join(",")`)
	if want := "," + strings.Join(tiny.Schedulers, ","); schedulers != want {
		t.Errorf("scheduler options = %q, want the model's default and %q", schedulers, want)
	}
	if tag := c.eval(`document.querySelector("` + first + `.p-prompt").tagName`); tag != "TEXTAREA" {
		t.Errorf("the prompt field is a %s, want a multi-line TEXTAREA", tag)
	}
	// Every form control has a label.
	if unlabeled := c.eval(`[...document.querySelectorAll("#new-form input, #new-form select, #new-form textarea")]
			.filter(e => !e.labels || e.labels.length === 0).map(e => e.id || e.className).join(",")`); unlabeled != "" {
		t.Errorf("playground controls without a label: %s", unlabeled)
	}

	// Every text the job's summary line shows is recorded, to find a step count
	// among them however fast the job runs.
	c.eval(`(() => { window.summaries = []; window.summaryObserver = new MutationObserver(() => window.summaries.push(document.getElementById("job-summary").textContent))
		.observe(document.getElementById("job-summary"), { childList: true, characterData: true, subtree: true }); return ""; })()`)
	c.do("fill the playground",
		chromedp.SetValue(css("#f-name"), "browser test"),
		chromedp.SetValue(css(first+".p-name"), "lake"),
		chromedp.SetValue(css(first+".p-prompt"), "a mountain lake\nat dawn"),
		chromedp.SetValue(css(first+".p-negative"), "fog"),
		chromedp.SetValue(css(first+".p-n"), "2"),
		chromedp.SetValue(css(first+".p-w"), "384"),
		chromedp.SetValue(css(first+".p-h"), "384"),
		chromedp.SetValue(css(first+".p-steps"), "80"),
		chromedp.SetValue(css(first+".p-seed"), "42"),
		choose(first+".p-scheduler", "euler"),
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
	c.poll("gallery renders", `(() => {
			const imgs = [...document.querySelectorAll("#prompts .gallery img")];
			return document.getElementById("job-status").textContent === "succeeded" &&
				imgs.length === 3 && imgs.every(i => i.complete && i.naturalWidth > 0);
		})()`, 90*time.Second)
	hash := c.eval(`location.hash`)
	if !strings.HasPrefix(hash, "#/job/") {
		t.Fatalf("after submit, hash = %q", hash)
	}
	jobID := strings.TrimPrefix(hash, "#/job/")
	text, err := chromedp.Run(ctx, chromedp.Text(css("#job")))
	if err != nil {
		c.fail("job text", err)
	}
	for _, want := range []string{"browser test", "seed 42…43", "384×384", "80 steps", "euler", "Negative: fog", "a dark forest, oil painting", "2/2 done", "3/3 images · took "} {
		if !strings.Contains(text, want) {
			t.Errorf("job page lacks %q:\n%s", want, text)
		}
	}
	if p := c.eval(`document.querySelector("#prompts [data-prompt=lake] .text").textContent`); p != "a mountain lake\nat dawn" {
		t.Errorf("the multi-line prompt came back as %q", p)
	}
	summaries := c.eval(`window.summaries.join("\n")`)
	if !regexp.MustCompile(`(?m)^[0-3]/3 images · step \d+/(80|2) · \d+:\d\d elapsed$`).MatchString(summaries) {
		t.Errorf("the job page never showed images done, a step count and the elapsed time while running; it showed:\n%s", summaries)
	}
	bar := c.eval(`(() => { const b = document.getElementById("job-progress");
		return [b.getAttribute("role"), b.getAttribute("aria-valuemin"), b.getAttribute("aria-valuemax"), b.getAttribute("aria-valuenow")].join(" "); })()`)
	if bar != "progressbar 0 100 100" {
		t.Errorf("job progress bar (role min max now) = %q, want \"progressbar 0 100 100\"", bar)
	}
	if bars := c.eval(`String(document.querySelectorAll('#prompts [role=progressbar][aria-valuenow="100"]').length)`); bars != "2" {
		t.Errorf("%s prompt progress bars at 100, want 2", bars)
	}
	if title := c.eval(`document.title`); title != "Job "+jobID+" succeeded · Diffute" {
		t.Errorf("job page title = %q", title)
	}
	widths, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`[...document.querySelectorAll("#prompts .gallery img")].map(i => i.naturalWidth)`))
	if err != nil || fmt.Sprint(widths) != "[384 384 96]" {
		t.Errorf("image widths = %v (%v), want [384 384 96]", widths, err)
	}

	shot, err := chromedp.Run(ctx, chromedp.Screenshot(css("#prompts .gallery img"), chromedp.NodeVisible))
	if err != nil {
		c.fail("screenshot", err)
	}
	if n := distinctColors(t, shot); n < 50 {
		t.Errorf("screenshot of a generated image has %d distinct colours; want a rendered image, not a blank box", n)
	}

	// The webhook arrives, and the page's delivery log shows the attempt; the
	// Redeliver button sends it again, and the log shows a second attempt.
	first1 := recv.wait(t, 60*time.Second)
	c.poll("delivery log", `document.querySelectorAll("#deliveries tbody tr").length === 1 &&
		document.querySelector("#messages tbody tr .redeliver:not([disabled])") !== null`, 30*time.Second)
	logText, err := chromedp.Run(ctx, chromedp.Text(css("#deliveries")))
	if err != nil || !strings.Contains(logText, "200") {
		t.Errorf("delivery log lacks the 200 answer: %q (%v)", logText, err)
	}
	if msg, _ := chromedp.Run(ctx, chromedp.Text(css("#messages"))); !strings.Contains(msg, "delivered") {
		t.Errorf("message table lacks the delivered state: %q", msg)
	}
	c.eval(`(() => { window.nexts = []; window.nextObserver = new MutationObserver(() => document.querySelectorAll("#messages td.next").forEach(td => window.nexts.push(td.textContent)))
		.observe(document.querySelector("#messages tbody"), { childList: true, subtree: true }); return ""; })()`)
	c.do("redeliver", chromedp.Click(css("#messages .redeliver")))
	again := recv.wait(t, 30*time.Second)
	if a, b := first1.header.Get("webhook-id"), again.header.Get("webhook-id"); a == "" || a != b {
		t.Errorf("redelivered webhook-id %q, want the first one's %q", b, a)
	}
	c.poll("the 503 and the retry after it in the log", `[...document.querySelectorAll("#deliveries tbody tr td:nth-child(3)")].map(td => td.textContent).join(",") === "1,2,3" &&
		document.querySelector("#messages tbody tr td:nth-child(3)").textContent === "delivered"`, 30*time.Second)
	if nexts := c.eval(`window.nexts.join("\n")`); !regexp.MustCompile(`(?m)^.+ \(in 0:0[1-3]\)$`).MatchString(nexts) {
		t.Errorf("the delivery log never showed when the message would be retried; its next-attempt column showed:\n%s", nexts)
	}
	if log, _ := chromedp.Run(ctx, chromedp.Text(css("#deliveries"))); !strings.Contains(log, "503") {
		t.Errorf("delivery log lacks the 503 answer:\n%s", log)
	}

	// A job that does not exist clears the page: nothing of the last job stays.
	c.eval(`window.sameDocument = "yes"; location.hash = "#/job/987654"; ""`)
	c.poll("missing job message", `document.getElementById("job-error").textContent.includes("no job 987654")`, 10*time.Second)
	missing, err := chromedp.Run(ctx, chromedp.Text(css("#job")))
	if err != nil {
		c.fail("missing job text", err)
	}
	for _, stale := range []string{"browser test", "lake", "forest", "succeeded", "#" + jobID, "Redeliver"} {
		if strings.Contains(missing, stale) {
			t.Errorf("the page of a missing job still shows %q of the last job:\n%s", stale, missing)
		}
	}
	if n := c.eval(`String(document.querySelectorAll("#prompts > *, #deliveries tbody tr, #messages tbody tr").length)`); n != "0" {
		t.Errorf("the page of a missing job keeps %s prompt cards or log rows", n)
	}
	if same := c.eval(`window.sameDocument || "reloaded"`); same != "yes" {
		t.Errorf("opening a missing job reloaded the page; the test is of the view left by the last job")
	}
	if title := c.eval(`document.title`); title != "Job not found · Diffute" {
		t.Errorf("missing job title = %q", title)
	}

	// At 400 px wide no view overflows sideways and Sign out stays on screen.
	c.do("narrow window", chromedp.EmulateViewport(400, 900))
	for _, v := range []struct{ hash, ready string }{
		{"#/jobs", `#jobs-table tbody tr`}, {hash, `#prompts .gallery img`}, {"#/new", `#f-prompts .p-prompt`},
	} {
		c.do("open "+v.hash, chromedp.Navigate(srv.url+"/"+v.hash), chromedp.WaitVisible(css(v.ready)))
		if v.hash == hash {
			c.poll("delivery log at 400 px", `document.querySelectorAll("#deliveries tbody tr").length === 3`, 10*time.Second)
		}
		c.checkNarrow(v.hash)
	}
	c.do("job list links back",
		chromedp.Click(css("#nav-jobs")),
		chromedp.WaitVisible(css(`tr[data-job="`+jobID+`"]`)),
		chromedp.Click(css(`tr[data-job="`+jobID+`"] td:nth-child(2)`)),
		chromedp.WaitVisible(css(`#prompts .gallery img`)),
	)
	if listed := c.eval(`location.hash`); listed != hash {
		t.Errorf("clicking the list row opened %q, want %q", listed, hash)
	}

	c.do("sign out", chromedp.Click(css("#signout")), chromedp.WaitVisible(css("#login-form")))
	c.checkNarrow("sign-in")
	if left, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`sessionStorage.getItem("diffute.key") === null`)); err != nil || !left {
		t.Errorf("the key is still in sessionStorage after signing out (%v)", err)
	}
}

// TestConsoleLiveListAndRevokedKey keeps the jobs list open while jobs are
// submitted and cancelled through the API: they appear, move from queued and
// running to their terminal states, with no reload. Then the key is revoked, and
// the next call ends the session with a message on the sign-in screen.
func TestConsoleLiveListAndRevokedKey(t *testing.T) {
	t.Parallel()
	srv := startServe(t)
	c := newConsole(t, srv)
	key := createKey(t, srv.getenv, srv.dataDir, "acme", "default")
	c.signIn(key)
	c.eval(`(() => { window.sameDocument = "yes"; window.seen = new Set();
		window.listObserver = new MutationObserver(() => document.querySelectorAll("#jobs-table tbody tr").forEach(r => window.seen.add(r.dataset.job + " " + r.dataset.status)))
			.observe(document.getElementById("jobs-table"), { childList: true, subtree: true, characterData: true, attributes: true });
		return ""; })()`)
	if empty := c.eval(`String(document.getElementById("jobs-empty").hidden)`); empty != "false" {
		t.Errorf("a new project's list does not say it has no jobs")
	}

	// The server runs one job at a time: a long job runs (until it is cancelled)
	// while a short one waits behind it.
	submit := func(name string, prompt map[string]any) string {
		t.Helper()
		req := map[string]any{"name": name, "pretrained_model_name": "diffute/tiny-sd", "prompts": []map[string]any{prompt}}
		resp, body := doJSON(t, "PUT", srv.url+"/acme/default/media/inference", key, req)
		var accepted struct {
			JobID int64 `json:"job_id"`
		}
		if err := json.Unmarshal(body, &accepted); resp.StatusCode != 202 || err != nil {
			t.Fatalf("PUT: %d %s", resp.StatusCode, body)
		}
		return fmt.Sprint(accepted.JobID)
	}
	long := submit("long", map[string]any{"name": "long", "prompt": "a long exposure of a river", "num_images": 8, "width": 768, "height": 768, "steps": 150})
	short := submit("short", map[string]any{"name": "short", "prompt": "a pebble", "num_images": 2, "width": 64, "height": 64, "steps": 2})
	state := func(id string) string {
		return `(document.querySelector('tr[data-job="` + id + `"]') || { dataset: {} }).dataset.status`
	}
	c.poll("the new jobs appear, running and queued", state(long)+` === "running" && `+state(short)+` === "queued"`, 20*time.Second)
	// Refreshes update rows in place: the same elements, so nothing flickers
	// and the scroll position stays.
	c.eval(`document.querySelector('tr[data-job="` + short + `"]').kept = "yes"; ""`)
	if resp, body := doJSON(t, "DELETE", srv.url+"/acme/default/media/inference/"+long, key, nil); resp.StatusCode != 200 {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	c.poll("the list shows the cancellation and the other job's success",
		state(long)+` === "canceled" && `+state(short)+` === "succeeded"`, 60*time.Second)
	if same := c.eval(`window.sameDocument || "reloaded"`); same != "yes" {
		t.Errorf("the page reloaded to show the jobs")
	}
	row := `tr[data-job="` + short + `"]`
	if kept := c.eval(`document.querySelector('` + row + `').kept || "replaced"`); kept != "yes" {
		t.Errorf("a refresh of the list replaced the row of job %s instead of updating it", short)
	}
	if got := c.eval(`document.querySelector('` + row + ` td.images').textContent + " " +
		document.querySelector('` + row + ` [role=progressbar]').getAttribute("aria-valuenow") + " " +
		document.querySelector('` + row + ` .badge').textContent`); got != "2 100 succeeded" {
		t.Errorf("list row (images, progress, status) = %q, want \"2 100 succeeded\"", got)
	}
	if order := c.eval(`[...document.querySelectorAll("#jobs-table tbody tr")].map(r => r.dataset.job).join(",")`); order != short+","+long {
		t.Errorf("list order %s, want the newest first: %s,%s", order, short, long)
	}
	seen := c.eval(`[...window.seen].sort().join(", ")`)
	for _, want := range []string{long + " running", long + " canceled", short + " queued", short + " succeeded"} {
		if !strings.Contains(seen, want) {
			t.Errorf("the list never showed %q; it showed %s", want, seen)
		}
	}

	c.do("narrow window", chromedp.EmulateViewport(400, 900))
	c.checkNarrow("#/jobs with a job")

	// Revoke the key (the first one of this data dir) with the CLI, then act.
	var out, errOut bytes.Buffer
	if err := run(t.Context(), []string{"keys", "revoke", "1", "--data-dir", srv.dataDir}, srv.getenv, &out, &errOut); err != nil {
		t.Fatalf("keys revoke: %v %s", err, errOut.String())
	}
	c.do("act with the revoked key", chromedp.Click(css("#nav-new")), chromedp.WaitVisible(css("#login-form")))
	notice, err := chromedp.Run(c.ctx, chromedp.Text(css("#login-notice")))
	if err != nil || !strings.Contains(notice, "revoked") || !strings.Contains(notice, "Sign in again") {
		t.Errorf("sign-in screen after a revoked key says %q (%v), want why the session ended", notice, err)
	}
	if left := c.eval(`String(sessionStorage.getItem("diffute.key"))`); left != "null" {
		t.Errorf("the revoked key stays in sessionStorage")
	}
	if title := c.eval(`document.title`); title != "Sign in · Diffute" {
		t.Errorf("sign-in title = %q", title)
	}
	c.checkNarrow("sign-in after a revoked key")
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

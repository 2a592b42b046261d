package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/httpapi"
)

const submitSummary = "submit FILE.json --url URL --key KEY [--org O --project P] [--wait] [--download DIR]"

// runSubmit sends an inference request to a running server, and with --wait follows
// its events stream with a progress bar per prompt, prints the manifest and
// optionally downloads the images.
func runSubmit(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "submit", submitSummary)
	base := fs.String("url", "http://127.0.0.1:8080", "server URL; may end in /ORG/PROJECT instead of --org and --project")
	key := fs.String("key", "", "API key (x-api-key)")
	org := fs.String("org", "", "organization (default: from --url)")
	project := fs.String("project", "", "project (default: from --url, else \"default\")")
	wait := fs.Bool("wait", false, "wait for the job to end, showing progress, then print the manifest")
	download := fs.String("download", "", "with --wait, save the images in this directory (implies --wait)")
	timeout := fs.Duration("timeout", time.Hour, "with --wait, give up after this long")
	var file string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		file, args = args[0], args[1:]
	}
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if file == "" && fs.NArg() > 0 {
		file = fs.Arg(0)
	}
	if file == "" {
		return errors.New("submit: name a request file (FILE.json, or - for stdin); see docs/api.md for its fields")
	}
	if *key == "" {
		return errors.New("submit: --key is required (make one with: diffute keys create --org ORG)")
	}
	endpoint, err := inferenceEndpoint(*base, *org, *project)
	if err != nil {
		return err
	}
	body, err := readRequestFile(env, file)
	if err != nil {
		return err
	}
	c := &apiCaller{key: *key, client: &http.Client{Timeout: 30 * time.Second}}
	var accepted struct {
		JobID  int64             `json:"job_id"`
		Status diffute.JobStatus `json:"status"`
	}
	if err := c.do(ctx, http.MethodPut, endpoint, body, &accepted); err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	jobURL := fmt.Sprintf("%s/%d", endpoint, accepted.JobID)
	fmt.Fprintf(env.stderr, "job %d %s: %s\n", accepted.JobID, accepted.Status, jobURL)
	if !*wait && *download == "" {
		fmt.Fprintln(env.stdout, accepted.JobID)
		return nil
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	st, err := followJob(ctx, env, *key, jobURL)
	if err != nil {
		return fmt.Errorf("submit: job %d: %w", accepted.JobID, err)
	}
	out, _ := json.MarshalIndent(st.Manifest, "", "  ")
	fmt.Fprintln(env.stdout, string(out))
	if *download != "" && st.Manifest != nil && len(st.Manifest.Images) > 0 {
		n, err := downloadManifest(ctx, st.Manifest, *download)
		if err != nil {
			return fmt.Errorf("submit: download: %w", err)
		}
		fmt.Fprintf(env.stderr, "saved %d images in %s\n", n, *download)
	}
	if st.Status != diffute.StatusSucceeded {
		return fmt.Errorf("submit: job %d %s: %s", accepted.JobID, st.Status, st.Error)
	}
	return nil
}

// inferenceEndpoint builds …/{org}/{project}/media/inference from --url, --org and
// --project.
func inferenceEndpoint(base, org, project string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("submit: --url %q: want http(s)://HOST[:PORT][/ORG/PROJECT]", base)
	}
	parts := strings.FieldsFunc(u.Path, func(r rune) bool { return r == '/' })
	if len(parts) >= 2 {
		if org == "" {
			org = parts[0]
		}
		if project == "" {
			project = parts[1]
		}
	}
	if project == "" {
		project = "default"
	}
	if org == "" {
		return "", errors.New("submit: --org is required (or end --url in /ORG/PROJECT)")
	}
	u.Path, u.RawQuery = "", ""
	return strings.TrimRight(u.String(), "/") + "/" + url.PathEscape(org) + "/" + url.PathEscape(project) + "/media/inference", nil
}

func readRequestFile(env *environment, file string) ([]byte, error) {
	var (
		b   []byte
		err error
	)
	if file == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("submit: %w", err)
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("submit: %s is not valid JSON", file)
	}
	return b, nil
}

// apiCaller calls the API with a key and turns problem documents into one-line
// errors naming the field.
type apiCaller struct {
	key    string
	client *http.Client
}

func (c *apiCaller) do(ctx context.Context, method, u string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("x-api-key", c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return problemError(resp, data)
	}
	return json.Unmarshal(data, out)
}

func problemError(resp *http.Response, data []byte) error {
	var p httpapi.Problem
	if json.Unmarshal(data, &p) == nil && p.Detail != "" {
		if p.Field != "" {
			return fmt.Errorf("%s: %s: %s", resp.Status, p.Field, p.Detail)
		}
		return fmt.Errorf("%s: %s", resp.Status, p.Detail)
	}
	return fmt.Errorf("%s", resp.Status)
}

// followJob reads the job's events until the done event and returns its status,
// drawing progress bars on stderr as events arrive.
func followJob(ctx context.Context, env *environment, key, jobURL string) (*httpapi.JobStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, jobURL+"/events", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("x-api-key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, problemError(resp, data)
	}
	bars := &progressBars{w: env.stderr, tty: isTerminal(env.stderr)}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var name string
	var data []byte
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: ")...)
		case line == "" && name != "":
			switch name {
			case "progress":
				var ev httpapi.ProgressEvent
				if err := json.Unmarshal(data, &ev); err == nil {
					bars.draw(ev)
				}
			case "done":
				var st httpapi.JobStatus
				if err := json.Unmarshal(data, &st); err != nil {
					return nil, fmt.Errorf("done event: %w", err)
				}
				return &st, nil
			}
			name, data = "", data[:0]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return nil, errors.New("the events stream ended before the job did")
}

// progressBars draws one bar per prompt. On a terminal the bars are redrawn in
// place; elsewhere (a log, a pipe) each change is a new block of lines.
type progressBars struct {
	w     io.Writer
	tty   bool
	drawn int // lines drawn last time, to move back over on a terminal
}

const barWidth = 30

func (b *progressBars) draw(ev httpapi.ProgressEvent) {
	var buf bytes.Buffer
	if b.tty && b.drawn > 0 {
		fmt.Fprintf(&buf, "\x1b[%dA", b.drawn)
	}
	width := 0
	for _, p := range ev.Prompts {
		width = max(width, len(p.Name))
	}
	for _, p := range ev.Prompts {
		filled := int(p.Progress*barWidth + 0.5)
		filled = min(max(filled, 0), barWidth)
		step := ""
		if p.StepsTotal > 0 && p.ImagesDone < p.NumImages {
			step = fmt.Sprintf(" step %d/%d", p.StepsDone, p.StepsTotal)
		}
		fmt.Fprintf(&buf, "%-*s [%s%s] %3.0f%% %d/%d images%s\x1b[K\n", width, p.Name,
			strings.Repeat("#", filled), strings.Repeat(".", barWidth-filled), p.Progress*100, p.ImagesDone, p.NumImages, step)
	}
	out := buf.Bytes()
	if !b.tty {
		out = bytes.ReplaceAll(out, []byte("\x1b[K"), nil)
	}
	_, _ = b.w.Write(out) // a progress display; a closed terminal is not an error to report
	b.drawn = len(ev.Prompts)
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
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
	var srv serverFlags
	srv.register(fs)
	wait := fs.Bool("wait", false, "wait for the job to end, showing progress, then print the manifest")
	download := fs.String("download", "", "with --wait, save the images in this directory (implies --wait)")
	timeout := fs.Duration("timeout", time.Hour, "with --wait, give up after this long")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("submit: one request file, not %d (%s)", fs.NArg(), strings.Join(fs.Args(), " "))
	}
	if fs.NArg() == 0 {
		return errors.New("submit: name a request file (FILE.json, or - for stdin); see docs/api.md for its fields")
	}
	file := fs.Arg(0)
	c, endpoint, err := srv.client("submit")
	if err != nil {
		return err
	}
	body, err := readRequestFile(file)
	if err != nil {
		return err
	}
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
	return cmdError("submit", watchJob(ctx, env, c, &srv, accepted.JobID, jobURL, *timeout, *download))
}

// cmdError prefixes err with the command's name, except the sentinels main reads.
func cmdError(cmd string, err error) error {
	if err == nil || errors.Is(err, errInterrupted) || errors.Is(err, errUsage) || errors.Is(err, errHelp) {
		return err
	}
	return fmt.Errorf("%s: %w", cmd, err)
}

// watchJob follows a job until it ends, prints its manifest and, with dir, saves
// its images there. On Ctrl-C (ctx canceled) it says how to re-attach and returns
// errInterrupted; the job goes on.
func watchJob(ctx context.Context, env *environment, c *apiCaller, srv *serverFlags, id int64, jobURL string, timeout time.Duration, dir string) error {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := followJob(tctx, env, c, jobURL)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(env.stderr, "\ninterrupted; job %d goes on. Re-attach with: diffute jobs watch %d %s\n", id, id, srv.reattachFlags())
			return errInterrupted
		}
		return fmt.Errorf("job %d: %w", id, err)
	}
	if st.Manifest != nil {
		if err := printJSON(env.stdout, st.Manifest); err != nil {
			return err
		}
	}
	if dir != "" && st.Manifest != nil && len(st.Manifest.Images) > 0 {
		n, err := downloadManifest(tctx, st.Manifest, dir)
		if err != nil {
			return fmt.Errorf("download: %w", err)
		}
		fmt.Fprintf(env.stderr, "saved %d images in %s\n", n, dir)
	}
	if st.Status != diffute.StatusSucceeded {
		return fmt.Errorf("job %d %s: %s", id, st.Status, st.Error)
	}
	return nil
}

// printJSON writes v indented, with & < > as they are (manifest URLs hold &).
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// serverFlags are the flags of every command that talks to a running server.
type serverFlags struct {
	base, key, org, project string
}

func (s *serverFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.base, "url", "http://127.0.0.1:8080", "server URL; may end in /ORG/PROJECT instead of --org and --project")
	fs.StringVar(&s.key, "key", "", "API key (x-api-key)")
	fs.StringVar(&s.org, "org", "", "organization (default: from --url)")
	fs.StringVar(&s.project, "project", "", "project (default: from --url, else \"default\")")
}

// client checks the flags and returns a caller and the project's
// …/media/inference endpoint; cmd prefixes the errors.
func (s *serverFlags) client(cmd string) (*apiCaller, string, error) {
	if s.key == "" {
		return nil, "", fmt.Errorf("%s: --key is required (make one with: diffute keys create --org ORG)", cmd)
	}
	endpoint, err := inferenceEndpoint(s.base, s.org, s.project)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", cmd, err)
	}
	return &apiCaller{key: s.key, base: s.base, client: &http.Client{Timeout: 30 * time.Second}}, endpoint, nil
}

// reattachFlags are the flags that name the same server and project again (not the
// key, which stays out of terminal scrollback: set DIFFUTE_KEY or add --key).
func (s *serverFlags) reattachFlags() string {
	out := "--url " + s.base
	if s.org != "" {
		out += " --org " + s.org
	}
	if s.project != "" {
		out += " --project " + s.project
	}
	return out + " --key KEY"
}

// inferenceEndpoint builds …/{org}/{project}/media/inference from --url, --org and
// --project.
func inferenceEndpoint(base, org, project string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--url %q: want http(s)://HOST[:PORT][/ORG/PROJECT]", base)
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
		return "", errors.New("--org is required (or end --url in /ORG/PROJECT)")
	}
	u.Path, u.RawQuery = "", ""
	return strings.TrimRight(u.String(), "/") + "/" + url.PathEscape(org) + "/" + url.PathEscape(project) + "/media/inference", nil
}

// readRequestFile reads the request, from stdin when file is "-".
func readRequestFile(file string) ([]byte, error) {
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
	base   string // the --url, for the hint when nothing answers there
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
		return c.unreachable(err)
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

// unreachable adds a hint to a refused connection: the usual cause is a server not
// started, or another --url.
func (c *apiCaller) unreachable(err error) error {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%w; is `diffute serve` running at %s?", err, c.base)
	}
	return err
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
func followJob(ctx context.Context, env *environment, c *apiCaller, jobURL string) (*httpapi.JobStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, jobURL+"/events", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("x-api-key", c.key)
	resp, err := http.DefaultClient.Do(req) // no client timeout: the stream lasts the job
	if err != nil {
		return nil, c.unreachable(err)
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

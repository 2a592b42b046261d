package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

const (
	maxRedirects = 10
	// maxAttempts bounds how often one file's download is resumed after the
	// connection drops mid-body; an attempt that made no progress is not retried.
	maxAttempts = 5
	userAgent   = "diffute-hub/1 (go)"
)

// Pull makes sure the cache holds the pipeline files of repo at
// opts.Revision (a branch, tag or commit; empty means "main") in opts.Format
// and returns the snapshot folder. For the diffusers layout that is
// model_index.json, the scheduler config, the tokenizers and, per component,
// config.json and one weights variant (fp16 when the revision has it, a sharded
// index with its shards included); for the ONNX layout, see NeededFile. A
// snapshot already complete in the cache for a revision that resolves locally
// is returned without network access, whoever downloaded it. Otherwise Pull
// lists the revision, fetches each needed file that is not already linked in
// the snapshot (resuming partial downloads), verifies LFS content against its
// sha256, and records the ref. Offline, only the cache is consulted and a
// missing model fails with ErrOffline.
func (c *Client) Pull(ctx context.Context, repo string, opts PullOptions) (string, error) {
	revision := opts.Revision
	if revision == "" {
		revision = "main"
	}
	if err := validateRepo(repo); err != nil {
		return "", err
	}
	if err := validateRevision(revision); err != nil {
		return "", err
	}
	if _, err := ParseFormat(string(opts.Format)); err != nil {
		return "", err
	}
	dir, err := c.snapshot(repo, revision, opts.Format)
	if err == nil {
		return dir, nil
	}
	if c.Offline {
		return "", fmt.Errorf("%w: HF_HUB_OFFLINE is set and %s@%s cannot be served from the cache (%w); pull it once while online", ErrOffline, repo, revision, err)
	}

	info, err := c.revisionInfo(ctx, repo, revision)
	if err != nil {
		return "", err
	}
	commit := info.Sha
	if !commitRE.MatchString(commit) {
		return "", fmt.Errorf("hub: %s@%s: the Hub answered commit %q, not a 40-digit hash", repo, revision, commit)
	}
	present := map[string]bool{}
	for _, s := range info.Siblings {
		present[s.RFilename] = true
	}
	has := func(f string) bool { return present[f] }
	format := opts.Format
	if format == FormatAuto {
		format = FormatONNX
		if hasDiffusersLayout(has) {
			format = FormatSafetensors
		}
	}
	repoDir := filepath.Join(c.CacheDir, repoFolder(repo))
	fetch := func(files []string) error {
		sort.Strings(files)
		for _, f := range files {
			if err := validateFilePath(f); err != nil {
				return err
			}
			if err := c.fetchFile(ctx, repo, repoDir, commit, f); err != nil {
				return err
			}
		}
		return nil
	}
	dir = filepath.Join(repoDir, "snapshots", commit)
	if format == FormatSafetensors {
		err = c.pullDiffusers(repo, revision, commit, dir, has, fetch)
	} else {
		err = pullONNX(repo, revision, commit, present, fetch)
		if errors.Is(err, ErrNoONNX) && opts.Format == FormatAuto {
			err = fmt.Errorf("%w; nor does it hold the diffusers layout with safetensors weights (model_index.json, unet/ and vae/ with config.json and *.safetensors)", err)
		}
	}
	if err != nil {
		return "", err
	}
	if missing := missingFor(dir, format); len(missing) > 0 {
		// model_index.json named a component the revision does not ship.
		sentinel := ErrNoONNX
		if format == FormatSafetensors {
			sentinel = ErrNoDiffusers
		}
		return "", fmt.Errorf("%w: %s@%s (commit %s) lacks %s", sentinel, repo, revision, commit, strings.Join(missing, ", "))
	}
	// The ref is written last so that it never resolves to a snapshot this
	// process left half-made.
	if err := writeRef(repoDir, revision, commit); err != nil {
		return "", err
	}
	return dir, nil
}

// pullONNX fetches the files of the ONNX layout.
func pullONNX(repo, revision, commit string, present map[string]bool, fetch func([]string) error) error {
	var files, missing []string
	for f := range present {
		if NeededFile(f) {
			files = append(files, f)
		}
	}
	for _, f := range requiredFiles {
		if !present[f] {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s@%s (commit %s) lacks %s; pick a repository or revision that ships a diffusers ONNX export",
			ErrNoONNX, repo, revision, commit, strings.Join(missing, ", "))
	}
	return fetch(files)
}

// pullDiffusers fetches the files of the diffusers layout: model_index.json
// first (it names the components), then the rest, reading each sharded index
// before its shards.
func (c *Client) pullDiffusers(repo, revision, commit, dir string, has func(string) bool, fetch func([]string) error) error {
	if !has("model_index.json") {
		return fmt.Errorf("%w: %s@%s (commit %s) has no model_index.json", ErrNoDiffusers, repo, revision, commit)
	}
	if err := fetch([]string{"model_index.json"}); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(dir, "model_index.json"))
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	plan, err := planDiffusers(has, b)
	if err != nil {
		return fmt.Errorf("hub: %s@%s: %w", repo, revision, err)
	}
	if len(plan.missing) > 0 {
		return fmt.Errorf("%w: %s@%s (commit %s) lacks %s", ErrNoDiffusers, repo, revision, commit, strings.Join(plan.missing, ", "))
	}
	if err := fetch(append(plan.files, plan.indexes...)); err != nil {
		return err
	}
	var shards, missing []string
	for _, idx := range plan.indexes {
		s, err := shardsOf(dir, idx)
		if err != nil {
			return err
		}
		for _, f := range s {
			if !has(f) {
				missing = append(missing, f)
			}
		}
		shards = append(shards, s...)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s@%s (commit %s) lacks the shards %s", ErrNoDiffusers, repo, revision, commit, strings.Join(missing, ", "))
	}
	return fetch(shards)
}

// revisionInfo is the part of the Hub's model-info answer that Pull uses.
type revisionInfo struct {
	Sha      string `json:"sha"`
	Siblings []struct {
		RFilename string `json:"rfilename"`
	} `json:"siblings"`
}

func (c *Client) revisionInfo(ctx context.Context, repo, revision string) (*revisionInfo, error) {
	u := c.endpoint() + "/api/models/" + repo + "/revision/" + url.PathEscape(revision)
	resp, err := c.do(ctx, http.MethodGet, u, repo, 0, true)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, c.responseError(resp, repo)
	}
	var info revisionInfo
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&info); err != nil {
		return nil, fmt.Errorf("hub: reading revision %s@%s: %w", repo, revision, err)
	}
	return &info, nil
}

// fileMeta is what a HEAD on a resolve URL says about one file.
type fileMeta struct {
	repo     string
	commit   string
	etag     string // normalised: no quotes, no W/
	size     int64  // -1 when unknown
	location string // where to GET the content (CDN URL for LFS files)
	lfs      bool
}

func (c *Client) fileMetadata(ctx context.Context, repo, commit, file string) (*fileMeta, error) {
	u := c.endpoint() + "/" + repo + "/resolve/" + commit + "/" + escapePath(file)
	// Relative redirects (a renamed repository) are followed; an absolute one
	// is the CDN location of LFS content, and its headers carry the metadata.
	resp, err := c.do(ctx, http.MethodHead, u, repo, 0, false)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return nil, c.responseError(resp, repo)
	}
	h := resp.Header
	m := &fileMeta{repo: repo, commit: h.Get("X-Repo-Commit"), size: -1, location: resp.Request.URL.String()}
	etag := h.Get("X-Linked-Etag")
	m.lfs = etag != ""
	if etag == "" {
		etag = h.Get("ETag")
	}
	m.etag = strings.Trim(strings.TrimPrefix(etag, "W/"), `"`)
	if !etagRE.MatchString(m.etag) {
		return nil, fmt.Errorf("hub: %s of %s: the Hub sent no usable ETag (%q)", file, repo, etag)
	}
	size := h.Get("X-Linked-Size")
	if size == "" && resp.StatusCode < 300 {
		size = h.Get("Content-Length")
	}
	if size != "" {
		n, err := strconv.ParseInt(size, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("hub: %s of %s: bad size %q", file, repo, size)
		}
		m.size = n
	}
	if resp.StatusCode >= 300 {
		loc, err := resp.Request.URL.Parse(h.Get("Location"))
		if err != nil {
			return nil, fmt.Errorf("hub: %s of %s: bad redirect: %w", file, repo, err)
		}
		m.location = loc.String()
	}
	return m, nil
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// fetchFile links snapshots/{commit}/{file}, downloading its blob if the cache
// lacks it.
func (c *Client) fetchFile(ctx context.Context, repo, repoDir, commit, file string) error {
	snapPath := filepath.Join(repoDir, "snapshots", commit, filepath.FromSlash(file))
	if fi, err := os.Stat(snapPath); err == nil && fi.Mode().IsRegular() {
		return nil
	}
	meta, err := c.fileMetadata(ctx, repo, commit, file)
	if err != nil {
		return err
	}
	if meta.commit != "" && meta.commit != commit {
		return fmt.Errorf("hub: %s of %s: asked for commit %s, the Hub answered %s", file, repo, commit, meta.commit)
	}
	unlock, err := lockFile(ctx, filepath.Join(c.CacheDir, ".locks", repoFolder(repo), meta.etag+".lock"))
	if err != nil {
		return err
	}
	defer unlock()

	blob := filepath.Join(repoDir, "blobs", meta.etag)
	fi, err := os.Stat(blob)
	switch {
	case err == nil && (meta.size < 0 || fi.Size() == meta.size):
		// Same etag, same content: another revision or Python fetched it.
	case err == nil || errors.Is(err, fs.ErrNotExist):
		if err := c.download(ctx, file, meta, blob); err != nil {
			return err
		}
	default:
		return fmt.Errorf("hub: %w", err)
	}
	return linkSnapshotFile(repoDir, commit, file, meta.etag)
}

// download fetches a blob into blob+".incomplete", resuming what is already
// there, verifies it, and renames it into place.
func (c *Client) download(ctx context.Context, file string, meta *fileMeta, blob string) error {
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	inc := blob + ".incomplete"
	f, err := os.OpenFile(inc, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	defer f.Close()

	for attempt := 1; ; attempt++ {
		off, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			return fmt.Errorf("hub: %w", err)
		}
		if meta.size >= 0 && off > meta.size {
			if off, err = restart(f); err != nil {
				return err
			}
		}
		if meta.size >= 0 && off == meta.size {
			break
		}
		progressed, err := c.getFrom(ctx, file, meta, f, off)
		if err == nil {
			break
		}
		if ctx.Err() != nil || !progressed || attempt >= maxAttempts {
			// The partial file stays for the next Pull to resume.
			return err
		}
	}

	if err := verify(f, file, meta); err != nil {
		f.Close()
		_ = os.Remove(inc)
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	if err := os.Rename(inc, blob); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	return nil
}

func restart(f *os.File) (int64, error) {
	if err := f.Truncate(0); err != nil {
		return 0, fmt.Errorf("hub: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("hub: %w", err)
	}
	return 0, nil
}

// verify checks the finished file's size and, for LFS files (whose etag is the
// sha256 of the content), its hash.
func verify(f *os.File, file string, meta *fileMeta) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("hub: verifying %s: %w", file, err)
	}
	if meta.size >= 0 && n != meta.size {
		return fmt.Errorf("%w: %s is %d bytes, the Hub announced %d", ErrCorrupt, file, n, meta.size)
	}
	if meta.lfs && len(meta.etag) == 64 {
		if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(meta.etag) {
			return fmt.Errorf("%w: %s has sha256 %s, the Hub announced %s; the partial download was deleted", ErrCorrupt, file, got, meta.etag)
		}
	}
	return nil
}

// getFrom appends the content from offset off to f. progressed reports whether
// any byte was written, which makes a retry worthwhile.
func (c *Client) getFrom(ctx context.Context, file string, meta *fileMeta, f *os.File, off int64) (progressed bool, err error) {
	resp, err := c.do(ctx, http.MethodGet, meta.location, "", off, true)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
		var start int64 = -1
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-", &start); err != nil {
			start = -1 // unparsable: refused just below
		}
		if start != off {
			return false, fmt.Errorf("hub: %s: asked for bytes from %d, got Content-Range %q", file, off, resp.Header.Get("Content-Range"))
		}
	case http.StatusOK:
		// The server ignored Range: start over.
		if off > 0 {
			if off, err = restart(f); err != nil {
				return false, err
			}
		}
	case http.StatusRequestedRangeNotSatisfiable:
		// The partial file is not a prefix of this content; discard it.
		if _, err := restart(f); err != nil {
			return false, err
		}
		return off > 0, fmt.Errorf("hub: %s: range from %d refused", file, off)
	default:
		return false, c.responseError(resp, meta.repo)
	}

	done := off
	if c.Progress != nil {
		c.Progress(file, done, meta.size)
	}
	buf := make([]byte, 256<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := f.Write(buf[:n]); err != nil {
				return done > off, fmt.Errorf("hub: writing %s: %w", file, err)
			}
			done += int64(n)
			if c.Progress != nil {
				c.Progress(file, done, meta.size)
			}
		}
		if rerr == io.EOF {
			return done > off, nil
		}
		if rerr != nil {
			return done > off, fmt.Errorf("hub: downloading %s: %w", file, rerr)
		}
	}
}

// do sends one request, following redirects itself: relative ones always,
// absolute ones only when followAbsolute. The token goes only to the
// endpoint's scheme and host (with port), never to a CDN. rangeFrom > 0 asks
// for the content from that offset. The caller closes the body.
func (c *Client) do(ctx context.Context, method, rawURL, repo string, rangeFrom int64, followAbsolute bool) (*http.Response, error) {
	hc := c.httpClient()
	ep, err := url.Parse(c.endpoint())
	if err != nil {
		return nil, fmt.Errorf("hub: endpoint: %w", err)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	for hop := 0; ; hop++ {
		req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("hub: %w", err)
		}
		req.Header.Set("User-Agent", userAgent)
		// Identity keeps the body byte-for-byte what the etag and size describe.
		req.Header.Set("Accept-Encoding", "identity")
		if rangeFrom > 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", rangeFrom))
		}
		if c.Token != "" && u.Scheme == ep.Scheme && u.Host == ep.Host {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("hub: %s %s: %w", method, redact(u), err)
		}
		if resp.StatusCode < 300 || resp.StatusCode >= 400 || resp.StatusCode == http.StatusNotModified {
			return resp, nil
		}
		loc := resp.Header.Get("Location")
		next, perr := u.Parse(loc)
		relative := perr == nil && loc != "" && !strings.Contains(loc, "://") && !strings.HasPrefix(loc, "//")
		if loc == "" || perr != nil || (!relative && !followAbsolute) {
			// Not a redirect to follow (none, unparsable, or to another host):
			// the caller reads this response's status.
			return resp, nil //nolint:nilerr // perr is folded into that answer
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // drain for reuse; best effort
		resp.Body.Close()
		if hop+1 >= maxRedirects {
			return nil, fmt.Errorf("hub: %s %s: too many redirects", method, redact(u))
		}
		if next.Scheme != "http" && next.Scheme != "https" {
			return nil, fmt.Errorf("hub: %s %s: redirect to unsupported URL scheme %q", method, redact(u), next.Scheme)
		}
		u = next
	}
}

// redact drops the query, which for CDN URLs holds a signature.
func redact(u *url.URL) string {
	v := *u
	v.RawQuery = ""
	return v.String()
}

func (c *Client) responseError(resp *http.Response, repo string) error {
	e := &ResponseError{
		Method:     resp.Request.Method,
		URL:        redact(resp.Request.URL),
		StatusCode: resp.StatusCode,
		Code:       resp.Header.Get("X-Error-Code"),
		Message:    resp.Header.Get("X-Error-Message"),
		Repo:       repo,
		endpoint:   c.endpoint(),
	}
	if e.Message == "" && resp.Request.Method != http.MethodHead {
		var body struct {
			Error string `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		if json.Unmarshal(b, &body) == nil {
			e.Message = body.Error
		}
	}
	return e
}

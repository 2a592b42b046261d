package hubtest

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Token is the access token the fake Hub accepts for gated repositories.
const Token = "hf_hubtest_0123456789"

// File is one file of a fake repository.
type File struct {
	Content []byte
	// LFS files are answered with a 302 to the fake CDN and an X-Linked-Etag
	// holding their sha256, as the Hub does for large files; others are served
	// by the Hub itself with their git blob id as ETag.
	LFS bool
}

// Repo is a fake model repository holding one commit.
type Repo struct {
	// Files maps slash-separated paths to content.
	Files map[string]File
	// Gated repositories answer 401 (X-Error-Code: GatedRepo) unless the
	// request carries "Authorization: Bearer " + Token.
	Gated bool
	// Commit is the 40-hex commit id; empty derives one from Files.
	Commit string
	// Revisions are the branch or tag names resolving to Commit (the commit
	// id itself always does). Empty means {"main"}.
	Revisions []string
	// MovedTo, when set, makes every request for this repository answer a
	// 307 with a relative Location naming the new id, as the Hub does for a
	// renamed repository; the other fields are then unused.
	MovedTo string
}

// Request is one request a fake server received.
type Request struct {
	Server        string // "hub" or "cdn"
	Method        string
	Path          string // decoded URL path
	Range         string
	Authorization string
}

// Hub is a fake Hugging Face Hub and its CDN, each an httptest.Server on
// 127.0.0.1. Its methods are safe for concurrent use.
type Hub struct {
	// URL is the Hub endpoint (what HF_ENDPOINT would hold).
	URL string
	// CDNURL is the base URL of the fake CDN LFS content is redirected to.
	CDNURL string

	hub, cdn *httptest.Server
	client   *http.Client

	mu       sync.Mutex
	repos    map[string]Repo
	blobs    map[string][]byte // sha256 hex → content, for the CDN
	cuts     map[string]int64  // sha256 hex → bytes to send before dropping the connection, once
	corrupt  map[string]bool   // sha256 hex → serve altered bytes
	noRange  bool
	requests []Request
}

// New starts a fake Hub serving repos (keyed by "org/name") and stops it when
// the test ends.
func New(t testing.TB, repos map[string]Repo) *Hub {
	t.Helper()
	h := &Hub{repos: map[string]Repo{}, blobs: map[string][]byte{}, cuts: map[string]int64{}, corrupt: map[string]bool{}}
	for name, r := range repos {
		h.SetRepo(name, r)
	}
	h.hub = httptest.NewServer(http.HandlerFunc(h.serveHub))
	h.cdn = httptest.NewServer(http.HandlerFunc(h.serveCDN))
	h.URL, h.CDNURL = h.hub.URL, h.cdn.URL
	h.client = &http.Client{Transport: &http.Transport{}}
	t.Cleanup(func() {
		h.client.CloseIdleConnections()
		h.hub.Close()
		h.cdn.Close()
	})
	return h
}

// HTTPClient returns a client for talking to the fake servers; its idle
// connections are closed when the test ends, so goleak stays quiet.
func (h *Hub) HTTPClient() *http.Client { return h.client }

// SetRepo adds or replaces a repository (for example to push a new commit).
func (h *Hub) SetRepo(name string, r Repo) {
	if r.Commit == "" {
		r.Commit = CommitOf(r.Files)
	}
	if len(r.Revisions) == 0 {
		r.Revisions = []string{"main"}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.repos[name] = r
	for _, f := range r.Files {
		if f.LFS {
			h.blobs[SHA256(f.Content)] = f.Content
		}
	}
}

// CutOnce makes the CDN drop the connection after n bytes the next time it
// serves the LFS file at path in repo.
func (h *Hub) CutOnce(repo, path string, n int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cuts[SHA256(h.repos[repo].Files[path].Content)] = n
}

// Corrupt makes the CDN serve altered bytes (same length) for the LFS file at
// path in repo while on is true.
func (h *Hub) Corrupt(repo, path string, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.corrupt[SHA256(h.repos[repo].Files[path].Content)] = on
}

// IgnoreRange makes the CDN answer every request with the whole content
// (200), as servers without range support do, while on is true.
func (h *Hub) IgnoreRange(on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.noRange = on
}

// Requests returns the requests received so far, in order.
func (h *Hub) Requests() []Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Request(nil), h.requests...)
}

// ResetRequests forgets the requests received so far.
func (h *Hub) ResetRequests() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests = nil
}

func (h *Hub) record(server string, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests = append(h.requests, Request{Server: server, Method: r.Method, Path: r.URL.Path,
		Range: r.Header.Get("Range"), Authorization: r.Header.Get("Authorization")})
}

func hubError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("X-Error-Code", code)
	w.Header().Set("X-Error-Message", msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// lookup finds the repository and checks access and revision; it writes the
// error answer itself and returns ok=false on failure.
func (h *Hub) lookup(w http.ResponseWriter, r *http.Request, name, rev string) (Repo, bool) {
	h.mu.Lock()
	repo, found := h.repos[name]
	h.mu.Unlock()
	if !found {
		hubError(w, http.StatusNotFound, "RepositoryNotFound", fmt.Sprintf("Repository Not Found for url: %s.", r.URL))
		return Repo{}, false
	}
	if repo.MovedTo != "" {
		w.Header().Set("Location", strings.Replace(r.URL.EscapedPath(), "/"+name+"/", "/"+repo.MovedTo+"/", 1))
		w.WriteHeader(http.StatusTemporaryRedirect)
		return Repo{}, false
	}
	if repo.Gated && r.Header.Get("Authorization") != "Bearer "+Token {
		hubError(w, http.StatusUnauthorized, "GatedRepo", fmt.Sprintf("Access to model %s is restricted. You must have access to it and be authenticated to access it. Please log in.", name))
		return Repo{}, false
	}
	if rev != repo.Commit {
		known := false
		for _, v := range repo.Revisions {
			known = known || v == rev
		}
		if !known {
			hubError(w, http.StatusNotFound, "RevisionNotFound", fmt.Sprintf("Invalid rev id: %s", rev))
			return Repo{}, false
		}
	}
	return repo, true
}

func (h *Hub) serveHub(w http.ResponseWriter, r *http.Request) {
	h.record("hub", r)
	p := r.URL.EscapedPath()
	if rest, ok := strings.CutPrefix(p, "/api/models/"); ok {
		name, rev, ok := strings.Cut(rest, "/revision/")
		if !ok || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		h.serveRevision(w, r, unescape(name), unescape(rev))
		return
	}
	name, rest, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/resolve/")
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(w, r)
		return
	}
	rev, file, _ := strings.Cut(rest, "/")
	h.serveResolve(w, r, unescape(name), unescape(rev), unescape(file))
}

func unescape(s string) string {
	u, err := url.PathUnescape(s)
	if err != nil {
		return s
	}
	return u
}

func (h *Hub) serveRevision(w http.ResponseWriter, r *http.Request, name, rev string) {
	repo, ok := h.lookup(w, r, name, rev)
	if !ok {
		return
	}
	type sibling struct {
		RFilename string `json:"rfilename"`
	}
	paths := make([]string, 0, len(repo.Files))
	for p := range repo.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	sibs := make([]sibling, len(paths))
	for i, p := range paths {
		sibs[i] = sibling{p}
	}
	var gated any = false
	if repo.Gated {
		gated = "manual"
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"_id": name, "id": name, "modelId": name, "sha": repo.Commit,
		"private": false, "gated": gated, "siblings": sibs,
	})
}

func (h *Hub) serveResolve(w http.ResponseWriter, r *http.Request, name, rev, file string) {
	repo, ok := h.lookup(w, r, name, rev)
	if !ok {
		return
	}
	f, found := repo.Files[file]
	if !found {
		hubError(w, http.StatusNotFound, "EntryNotFound", fmt.Sprintf("%s does not exist on %q", file, rev))
		return
	}
	w.Header().Set("X-Repo-Commit", repo.Commit)
	if f.LFS {
		sum := SHA256(f.Content)
		pointer := fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", sum, len(f.Content))
		w.Header().Set("ETag", `"`+GitBlobID([]byte(pointer))+`"`)
		w.Header().Set("X-Linked-Etag", `"`+sum+`"`)
		w.Header().Set("X-Linked-Size", strconv.Itoa(len(f.Content)))
		w.Header().Set("Location", h.cdn.URL+"/lfs/"+sum+"?X-Amz-Signature=fake&response-content-disposition=attachment")
		w.WriteHeader(http.StatusFound)
		return
	}
	w.Header().Set("ETag", `"`+GitBlobID(f.Content)+`"`)
	serveBytes(w, r, f.Content, -1)
}

func (h *Hub) serveCDN(w http.ResponseWriter, r *http.Request) {
	h.record("cdn", r)
	sum, ok := strings.CutPrefix(r.URL.Path, "/lfs/")
	h.mu.Lock()
	content, found := h.blobs[sum]
	cut, hasCut := h.cuts[sum]
	delete(h.cuts, sum)
	noRange := h.noRange
	if h.corrupt[sum] && found {
		content = append([]byte(nil), content...)
		if len(content) > 0 {
			content[len(content)/2] ^= 0xff
		}
	}
	h.mu.Unlock()
	if !ok || !found || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(w, r)
		return
	}
	if !hasCut {
		cut = -1
	}
	if noRange {
		r.Header.Del("Range")
	}
	serveBytes(w, r, content, cut)
}

// serveBytes answers with content, honouring "Range: bytes=N-" and
// "bytes=N-M". cut >= 0 drops the connection after that many body bytes,
// having announced the full length, like a network failure mid-download.
func serveBytes(w http.ResponseWriter, r *http.Request, content []byte, cut int64) {
	size := int64(len(content))
	start, end := int64(0), size-1
	status := http.StatusOK
	if rg := r.Header.Get("Range"); rg != "" {
		spec, ok := strings.CutPrefix(rg, "bytes=")
		a, b, _ := strings.Cut(spec, "-")
		s, err := strconv.ParseInt(a, 10, 64)
		if !ok || err != nil || s < 0 || s >= size {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start = s
		if b != "" {
			if e, err := strconv.ParseInt(b, 10, 64); err == nil && e >= start && e < size {
				end = e
			}
		}
		status = http.StatusPartialContent
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, size))
	}
	body := content[start : end+1]
	w.Header().Set("Accept-Ranges", "bytes")
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	if cut >= 0 && cut < int64(len(body)) {
		w.Write(body[:cut])
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		// Closes the connection without ending the body: the client sees an
		// unexpected EOF. The server does not log ErrAbortHandler.
		panic(http.ErrAbortHandler)
	}
	w.Write(body)
}

// SHA256 returns the hex sha256 of b: the X-Linked-Etag of an LFS file.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// GitBlobID returns git's object id of b: the ETag of a non-LFS file.
func GitBlobID(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// CommitOf derives a stable 40-hex commit id from a file set.
func CommitOf(files map[string]File) string {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	h := sha1.New()
	for _, p := range paths {
		fmt.Fprintf(h, "%s\x00%s\x00", p, GitBlobID(files[p].Content))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// lfsExtensions are the patterns the Hub's default .gitattributes stores in LFS.
var lfsExtensions = map[string]bool{".onnx": true, ".onnx_data": true, ".data": true, ".pb": true,
	".safetensors": true, ".bin": true, ".ckpt": true, ".msgpack": true, ".h5": true, ".pt": true}

// IsLFSPath reports whether the Hub would store path in LFS by default.
func IsLFSPath(p string) bool { return lfsExtensions[path.Ext(p)] }

// RepoFromDir reads a folder tree (for example a tiny generated ONNX export)
// into a Repo, storing files in LFS as the Hub's default .gitattributes would.
func RepoFromDir(dir string) (Repo, error) {
	files := map[string]File{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		files[rel] = File{Content: b, LFS: IsLFSPath(rel)}
		return nil
	})
	if err != nil {
		return Repo{}, fmt.Errorf("hubtest: reading %s: %w", dir, err)
	}
	return Repo{Files: files}, nil
}

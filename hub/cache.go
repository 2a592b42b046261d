package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

var (
	commitRE = regexp.MustCompile(`^[0-9a-f]{40}$`)
	// Hub repository ids: an optional namespace and a name, word characters,
	// '-' and '.', with no "--" or ".." (the cache folder name relies on that).
	repoPartRE = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,96}$`)
	etagRE     = regexp.MustCompile(`^[A-Za-z0-9_\-]{1,128}$`)
)

// onnxComponents are the folders holding ONNX models in a diffusers ONNX export.
var onnxComponents = map[string]bool{"text_encoder": true, "text_encoder_2": true, "unet": true, "vae_decoder": true}

var onnxComponentFiles = map[string]bool{"model.onnx": true, "model.onnx_data": true, "model.onnx.data": true, "weights.pb": true, "config.json": true}

var tokenizerFiles = map[string]bool{"vocab.json": true, "merges.txt": true, "tokenizer_config.json": true, "special_tokens_map.json": true}

// requiredFiles must exist in every revision Pull accepts; components beyond
// these (text_encoder_2, tokenizer_2) are required when model_index.json names them.
var requiredFiles = []string{
	"model_index.json",
	"unet/model.onnx",
	"text_encoder/model.onnx",
	"vae_decoder/model.onnx",
	"scheduler/scheduler_config.json",
	"tokenizer/vocab.json",
	"tokenizer/merges.txt",
}

// NeededFile reports whether the ONNX pipeline needs the repository file at
// path (slash-separated, relative to the repository root). The diffusers
// layout's needs depend on which variants the revision has: see Pull.
func NeededFile(p string) bool {
	switch p {
	case "model_index.json", "scheduler/scheduler_config.json":
		return true
	}
	dir, file := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	switch {
	case dir == "tokenizer" || dir == "tokenizer_2":
		return tokenizerFiles[file]
	case onnxComponents[dir]:
		return onnxComponentFiles[file]
	}
	return false
}

// repoFolder is the cache folder name of a model repository, as Python names it.
func repoFolder(repo string) string {
	return "models--" + strings.ReplaceAll(repo, "/", "--")
}

func validateRepo(repo string) error {
	parts := strings.Split(repo, "/")
	if len(parts) > 2 {
		return fmt.Errorf("hub: repository %q: want \"org/name\"", repo)
	}
	for _, p := range parts {
		if !repoPartRE.MatchString(p) || strings.Contains(p, "--") || strings.Contains(p, "..") ||
			strings.HasPrefix(p, "-") || strings.HasPrefix(p, ".") || strings.HasSuffix(p, "-") || strings.HasSuffix(p, ".") {
			return fmt.Errorf("hub: repository %q is not a valid Hub repository id", repo)
		}
	}
	return nil
}

// validateRevision keeps a revision usable as a path under refs/ (Python
// nests "refs/pr/1" the same way) without escaping it.
func validateRevision(rev string) error {
	if rev == "" || strings.HasPrefix(rev, "/") || strings.Contains(rev, "\\") || strings.ContainsRune(rev, 0) {
		return fmt.Errorf("hub: invalid revision %q", rev)
	}
	for _, seg := range strings.Split(rev, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("hub: invalid revision %q", rev)
		}
	}
	return nil
}

// validateFilePath rejects repository paths that could leave the snapshot folder.
func validateFilePath(p string) error {
	if p == "" || path.IsAbs(p) || strings.Contains(p, "\\") || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("hub: unsafe file path %q", p)
	}
	return nil
}

// Snapshot returns the cached snapshot folder of repo at revision (a branch,
// tag or commit; empty means "main") without any network access. It fails
// with ErrNotCached unless the revision resolves locally to a snapshot that
// holds a complete pipeline, in the diffusers safetensors or the ONNX layout.
func (c *Client) Snapshot(repo, revision string) (string, error) {
	return c.snapshot(repo, revision, FormatAuto)
}

// snapshot is Snapshot for one layout (FormatAuto: either).
func (c *Client) snapshot(repo, revision string, format Format) (string, error) {
	if revision == "" {
		revision = "main"
	}
	if err := validateRepo(repo); err != nil {
		return "", err
	}
	if err := validateRevision(revision); err != nil {
		return "", err
	}
	repoDir := filepath.Join(c.CacheDir, repoFolder(repo))
	commit := revision
	if !commitRE.MatchString(revision) {
		b, err := os.ReadFile(filepath.Join(repoDir, "refs", filepath.FromSlash(revision)))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("%w: %s@%s has no ref in %s", ErrNotCached, repo, revision, c.CacheDir)
			}
			return "", fmt.Errorf("hub: reading ref %s@%s: %w", repo, revision, err)
		}
		commit = strings.TrimSpace(string(b))
		if !commitRE.MatchString(commit) {
			return "", fmt.Errorf("hub: ref %s@%s holds %q, not a commit hash", repo, revision, commit)
		}
	}
	dir := filepath.Join(repoDir, "snapshots", commit)
	if missing := missingFor(dir, format); len(missing) > 0 {
		return "", fmt.Errorf("%w: snapshot %s of %s@%s lacks %s", ErrNotCached, commit, repo, revision, strings.Join(missing, ", "))
	}
	return dir, nil
}

// missingLocally lists what a snapshot folder lacks for the pipeline: the
// required files, the second text encoder and tokenizer when model_index.json
// names them, and any needed file whose symlink dangles. It cannot see
// external-data files a model.onnx refers to; ONNX Runtime reports those at load.
func missingLocally(dir string) []string {
	if _, err := os.Stat(dir); err != nil {
		return []string{"the snapshot folder"}
	}
	want := append([]string(nil), requiredFiles...)
	if b, err := os.ReadFile(filepath.Join(dir, "model_index.json")); err == nil {
		var index map[string]json.RawMessage
		if json.Unmarshal(b, &index) == nil {
			if _, ok := index["text_encoder_2"]; ok {
				want = append(want, "text_encoder_2/model.onnx")
			}
			if _, ok := index["tokenizer_2"]; ok {
				want = append(want, "tokenizer_2/vocab.json", "tokenizer_2/merges.txt")
			}
		}
	}
	var missing []string
	for _, f := range want {
		// Stat follows the symlink, so a link to a missing blob counts as missing.
		if fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f))); err != nil || !fi.Mode().IsRegular() {
			missing = append(missing, f)
		}
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil //nolint:nilerr // an unreadable entry is skipped: the listing is best effort
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if !NeededFile(rel) {
			return nil
		}
		if _, err := os.Stat(p); err != nil && !contains(missing, rel) {
			missing = append(missing, rel)
		}
		return nil
	})
	return missing
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// CachedModel describes one model repository found in the cache.
type CachedModel struct {
	// Repo is the repository id, "org/name".
	Repo string
	// Revisions are the ref names (branches, tags, "refs/pr/1") recorded in
	// refs/, sorted.
	Revisions []string
	// Commits are the snapshot folders present, sorted.
	Commits []string
	// Size is the total size in bytes of the repository's complete blobs.
	Size int64
	// HasONNX reports whether some snapshot holds a complete ONNX pipeline.
	HasONNX bool
	// HasDiffusers reports whether some snapshot holds a complete pipeline in
	// the diffusers layout with safetensors weights.
	HasDiffusers bool
}

// List returns the model repositories in the cache, sorted by Repo. A missing
// cache folder is an empty list, not an error.
func (c *Client) List() ([]CachedModel, error) {
	entries, err := os.ReadDir(c.CacheDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("hub: listing cache: %w", err)
	}
	var out []CachedModel
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, "models--") {
			continue
		}
		m := CachedModel{Repo: strings.ReplaceAll(strings.TrimPrefix(name, "models--"), "--", "/")}
		repoDir := filepath.Join(c.CacheDir, name)

		refsDir := filepath.Join(repoDir, "refs")
		err := filepath.WalkDir(refsDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if !d.IsDir() {
				rel, _ := filepath.Rel(refsDir, p)
				m.Revisions = append(m.Revisions, filepath.ToSlash(rel))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("hub: listing refs of %s: %w", m.Repo, err)
		}
		sort.Strings(m.Revisions)

		snaps, err := os.ReadDir(filepath.Join(repoDir, "snapshots"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("hub: listing snapshots of %s: %w", m.Repo, err)
		}
		for _, s := range snaps {
			if !s.IsDir() {
				continue
			}
			m.Commits = append(m.Commits, s.Name())
			snap := filepath.Join(repoDir, "snapshots", s.Name())
			if !m.HasONNX && len(missingLocally(snap)) == 0 {
				m.HasONNX = true
			}
			if !m.HasDiffusers && len(missingDiffusers(snap)) == 0 {
				m.HasDiffusers = true
			}
		}
		sort.Strings(m.Commits)

		blobs, err := os.ReadDir(filepath.Join(repoDir, "blobs"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("hub: listing blobs of %s: %w", m.Repo, err)
		}
		for _, b := range blobs {
			if strings.HasSuffix(b.Name(), ".incomplete") {
				continue
			}
			if fi, err := b.Info(); err == nil && fi.Mode().IsRegular() {
				m.Size += fi.Size()
			}
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Repo < out[j].Repo })
	return out, nil
}

// linkSnapshotFile points snapshots/{commit}/{file} at blobs/{etag} with a
// relative symlink, as Python does, so the cache can be moved as a whole.
// The link is created beside its final name and renamed over it, so readers
// never see a half-made link.
func linkSnapshotFile(repoDir, commit, file, etag string) error {
	dst := filepath.Join(repoDir, "snapshots", commit, filepath.FromSlash(file))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	target, err := filepath.Rel(filepath.Dir(dst), filepath.Join(repoDir, "blobs", etag))
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	if cur, err := os.Readlink(dst); err == nil && cur == target {
		return nil
	}
	tmp := dst + ".tmp-link"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("hub: linking %s: %w", file, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("hub: linking %s: %w", file, err)
	}
	return nil
}

// writeRef records that revision resolved to commit. A commit hash needs no ref.
func writeRef(repoDir, revision, commit string) error {
	if revision == commit {
		return nil
	}
	p := filepath.Join(repoDir, "refs", filepath.FromSlash(revision))
	if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == commit {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	// A temporary file of its own: concurrent pulls of one repo each write the
	// ref, and a shared temporary name let one rename the other's away.
	f, err := os.CreateTemp(filepath.Dir(p), filepath.Base(p)+".tmp-*")
	if err != nil {
		return fmt.Errorf("hub: writing ref: %w", err)
	}
	_, werr := f.WriteString(commit)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(f.Name(), 0o644)
	}
	if werr == nil {
		werr = os.Rename(f.Name(), p)
	}
	if werr != nil {
		os.Remove(f.Name())
		return fmt.Errorf("hub: writing ref: %w", werr)
	}
	return nil
}

// ValidateRepo reports whether repo is a valid Hub repository id ("org/name"
// or "name") that is safe to use as a cache folder name.
func ValidateRepo(repo string) error { return validateRepo(repo) }

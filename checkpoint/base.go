package checkpoint

import (
	"embed"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// base holds the published layouts of the three families, for what a
// single-file checkpoint does not carry: model_index.json, the scheduler, the
// tokenizers and each component's config.json. The CLIP vocabulary and merges
// are stored once (clip/) and shared: SD 1.x's tokenizer and SDXL's first
// tokenizer use clip/'s configs (pad "<|endoftext|>"), SD 2.x's tokenizer and
// SDXL's tokenizer_2 those in clip/tokenizer_2/ (pad "!"); the vocabularies are
// byte-identical.
//
// Values: runwayml/stable-diffusion-v1-5, stabilityai/stable-diffusion-2-1
// (768², v-prediction) and stabilityai/stable-diffusion-xl-base-1.0; the
// component configs carry the key set diffusers 0.27 / transformers 4.39 write.
// The pipelines ship no safety checker.
//
//go:embed base
var base embed.FS

// BaseLayout is the diffusers layout a single-file checkpoint of family f uses
// for everything that is not weights. It is empty for an unknown family.
func BaseLayout(f Family) fs.FS {
	files := map[string]string{} // layout path → path in base
	var tokenizers map[string]string
	switch f {
	case SD1:
		tokenizers = map[string]string{"tokenizer": "clip"}
	case SD2:
		tokenizers = map[string]string{"tokenizer": "clip/tokenizer_2"}
	case SDXL:
		tokenizers = map[string]string{"tokenizer": "clip", "tokenizer_2": "clip/tokenizer_2"}
	default:
		return layoutFS{}
	}
	_ = fs.WalkDir(base, path.Join("base", string(f)), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files[strings.TrimPrefix(p, "base/"+string(f)+"/")] = p
		}
		return err
	})
	for dir, cfg := range tokenizers {
		files[dir+"/vocab.json"] = "base/clip/vocab.json"
		files[dir+"/merges.txt"] = "base/clip/merges.txt"
		files[dir+"/tokenizer_config.json"] = "base/" + cfg + "/tokenizer_config.json"
		files[dir+"/special_tokens_map.json"] = "base/" + cfg + "/special_tokens_map.json"
	}
	return layoutFS(files)
}

// WriteBaseLayout writes BaseLayout's files under dir (created as needed),
// replacing files of the same name.
func WriteBaseLayout(f Family, dir string) error {
	n, err := WriteLayout(BaseLayout(f), dir)
	if err != nil {
		return fmt.Errorf("checkpoint: writing the %s base layout to %s: %w", f, dir, err)
	}
	if n == 0 {
		return fmt.Errorf("checkpoint: no base layout for family %q", f)
	}
	return nil
}

// WriteLayout writes every file of layout under dir (folders created as
// needed, each file atomically) and returns how many it wrote.
func WriteLayout(layout fs.FS, dir string) (int, error) {
	n := 0
	err := fs.WalkDir(layout, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(layout, p)
		if err != nil {
			return err
		}
		out := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		n++
		return writeFileAtomic(out, b)
	})
	return n, err
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// layoutFS is a read-only file system whose files are files of base under other
// names; directories are implied by the paths.
type layoutFS map[string]string

func (l layoutFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if src, ok := l[name]; ok {
		return base.Open(src)
	}
	// A directory: the entries directly below name.
	prefix := name + "/"
	if name == "." {
		prefix = ""
	}
	seen := map[string]bool{}
	var entries []fs.DirEntry
	for p, src := range l {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok {
			continue
		}
		child, _, isDir := strings.Cut(rest, "/")
		if seen[child] {
			continue
		}
		seen[child] = true
		if isDir {
			entries = append(entries, fs.FileInfoToDirEntry(dirInfo(child)))
			continue
		}
		st, err := fs.Stat(base, src)
		if err != nil {
			return nil, err
		}
		entries = append(entries, fs.FileInfoToDirEntry(renamed{st, child}))
	}
	if len(entries) == 0 && name != "." {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	return &layoutDir{name: path.Base(name), entries: entries}, nil
}

type renamed struct {
	fs.FileInfo
	name string
}

func (r renamed) Name() string { return r.name }

type dirInfo string

func (d dirInfo) Name() string                  { return string(d) }
func (dirInfo) Size() int64                     { return 0 }
func (dirInfo) Mode() fs.FileMode               { return fs.ModeDir | 0o555 }
func (dirInfo) ModTime() time.Time              { return time.Time{} }
func (dirInfo) IsDir() bool                     { return true }
func (dirInfo) Sys() any                        { return nil }
func (d *layoutDir) Stat() (fs.FileInfo, error) { return dirInfo(d.name), nil }

type layoutDir struct {
	name    string
	entries []fs.DirEntry
	off     int
}

func (d *layoutDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: fs.ErrInvalid}
}
func (d *layoutDir) Close() error { return nil }

func (d *layoutDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.off += n
	return rest[:n], nil
}

package media

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/diffute/diffute"
)

// maxKeyLen bounds keys well below PATH_MAX and typical name limits.
const maxKeyLen = 1024

// Disk stores media as plain files under a root directory, laid out like the keys
// ("{org}/{project}/{job_id}/{prompt}/{index}.{ext}"), so an operator can browse and
// back them up with ordinary tools. It implements diffute.MediaStore; URLs come from
// its Signer and are served by httpapi.
//
// Writes are atomic (temporary file in the same directory, Sync, Rename, directory
// Sync): a reader sees the old object or the new one, never a partial one. All file
// access goes through an os.Root, so even a key that slipped past validation cannot
// leave the root, including through symbolic links.
type Disk struct {
	root   *os.Root
	signer *Signer
	now    func() time.Time
}

var _ diffute.MediaStore = (*Disk)(nil)

// NewDisk opens (creating it with mode 0750 when absent) the media directory root.
// Close releases it.
func NewDisk(root string, s *Signer) (*Disk, error) {
	if s == nil {
		return nil, errors.New("media: NewDisk needs a Signer")
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, fmt.Errorf("media: create root: %w", err)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("media: open root: %w", err)
	}
	return &Disk{root: r, signer: s, now: time.Now}, nil
}

// Close releases the root directory. The Disk must not be used afterwards.
func (d *Disk) Close() error { return d.root.Close() }

// Put stores data under key atomically. The content type is the one the key's
// extension implies; contentType, when given, must agree with it, because Disk keeps
// no metadata beside the file and serves what the extension says.
func (d *Disk) Put(ctx context.Context, key string, data []byte, contentType string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := CheckKey(key); err != nil {
		return err
	}
	if contentType != "" {
		want, _, err1 := mime.ParseMediaType(typeOf(key))
		got, _, err2 := mime.ParseMediaType(contentType)
		if err1 != nil || err2 != nil || want != got {
			return diffute.FieldErrorf(diffute.EINVALID, "content_type",
				"content type %q does not match the key's extension (%s)", contentType, typeOf(key))
		}
	}
	dir := path.Dir(key)
	var (
		tmp string
		f   *os.File
		err error
	)
	// Twice: Sweep may remove an old, empty directory between MkdirAll and the
	// temporary file's creation.
	for range 2 {
		if err := d.root.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("media: create directory for %s: %w", key, err)
		}
		if tmp, f, err = d.createTemp(dir); !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("media: create %s: %w", key, err)
	}
	if err := writeSync(f, data); err != nil {
		d.root.Remove(tmp)
		return fmt.Errorf("media: write %s: %w", key, err)
	}
	if err := d.root.Rename(tmp, key); err != nil {
		d.root.Remove(tmp)
		return fmt.Errorf("media: rename %s: %w", key, err)
	}
	return d.syncDir(dir)
}

// createTemp makes a new file in dir whose name starts with '.', which no valid key
// can name, so a half-written file is never served or overwritten by a Put.
func (d *Disk) createTemp(dir string) (string, *os.File, error) {
	for range 10 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", nil, err
		}
		name := path.Join(dir, ".tmp-"+hex.EncodeToString(b[:]))
		f, err := d.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return name, f, err
	}
	return "", nil, errors.New("media: could not pick a temporary file name")
}

func (d *Disk) syncDir(dir string) error {
	f, err := d.root.Open(dir)
	if err != nil {
		return fmt.Errorf("media: open %s for sync: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("media: sync %s: %w", dir, err)
	}
	return nil
}

// Open returns the object stored under key; ENOTFOUND when absent. The ETag is made
// of the size and the modification time: every Put replaces the file by a rename, so
// both change whenever the bytes do.
func (d *Disk) Open(ctx context.Context, key string) (io.ReadSeekCloser, diffute.MediaInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, diffute.MediaInfo{}, err
	}
	if err := CheckKey(key); err != nil {
		return nil, diffute.MediaInfo{}, diffute.Errorf(diffute.ENOTFOUND, "no such media object")
	}
	f, err := d.root.Open(key)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) || isNotDir(err) {
			return nil, diffute.MediaInfo{}, diffute.Errorf(diffute.ENOTFOUND, "no such media object")
		}
		return nil, diffute.MediaInfo{}, fmt.Errorf("media: open %s: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, diffute.MediaInfo{}, fmt.Errorf("media: stat %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, diffute.MediaInfo{}, diffute.Errorf(diffute.ENOTFOUND, "no such media object")
	}
	info := diffute.MediaInfo{
		Size:        fi.Size(),
		ContentType: typeOf(key),
		ModTime:     fi.ModTime(),
		ETag: `"` + strconv.FormatInt(fi.Size(), 16) + "-" +
			strconv.FormatInt(fi.ModTime().UnixNano(), 16) + `"`,
	}
	return f, info, nil
}

// URL returns a signed URL for key valid for ttl. The object need not exist yet.
func (d *Disk) URL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	if ttl <= 0 {
		return "", diffute.Errorf(diffute.EINVALID, "media URL lifetime must be positive, got %s", ttl)
	}
	return d.signer.URL(key, d.now().Add(ttl)), nil
}

// Delete removes the object under key; an absent object is not an error. Emptied
// directories are left in place for Sweep: a concurrent Put may be about to use
// them.
func (d *Disk) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := CheckKey(key); err != nil {
		return err
	}
	err := d.root.Remove(key)
	if err == nil || errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
		return nil
	}
	return fmt.Errorf("media: delete %s: %w", key, err)
}

// Sweep removes what crashes and retention leave under the root: temporary
// files of writes that never finished (".tmp-*", from a process killed
// mid-write) and directories left empty (a job whose images retention deleted),
// each only when last modified before before, so that a write in progress is
// never touched. It returns how many it removed. The retention job runs it.
func (d *Disk) Sweep(ctx context.Context, before time.Time) (int, error) {
	fsys := d.root.FS()
	removed := 0
	// sweep reports whether dir is empty once swept.
	var sweep func(dir string) (bool, error)
	sweep = func(dir string) (bool, error) {
		entries, err := fs.ReadDir(fsys, dir)
		if err != nil {
			return false, fmt.Errorf("media: sweep %s: %w", dir, err)
		}
		left := len(entries)
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return false, err
			}
			p := path.Join(dir, e.Name())
			info, err := e.Info() // before the sweep below changes a directory's time
			if errors.Is(err, fs.ErrNotExist) {
				left--
				continue
			}
			if err != nil {
				return false, fmt.Errorf("media: sweep %s: %w", p, err)
			}
			switch {
			case e.IsDir():
				empty, err := sweep(p)
				if err != nil {
					return false, err
				}
				// A Put may be about to use it: it tries again when the
				// directory vanishes under it, and a refusal here is fine.
				if empty && info.ModTime().Before(before) && d.root.Remove(p) == nil {
					removed++
					left--
				}
			case strings.HasPrefix(e.Name(), ".tmp-") && info.ModTime().Before(before):
				if err := d.root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return false, fmt.Errorf("media: sweep %s: %w", p, err)
				}
				removed++
				left--
			}
		}
		return left == 0, nil
	}
	_, err := sweep(".")
	return removed, err
}

// CheckKey reports whether key is one Disk accepts: '/'-separated segments of
// A-Z, a-z, 0-9, '_', '-' and '.', none empty, none starting with '.' (so no "..",
// no hidden or temporary files), no leading '/', at most 1024 bytes. Every key
// diffute.MediaKey makes from validated names passes.
func CheckKey(key string) error {
	bad := func(why string) error {
		return diffute.FieldErrorf(diffute.EINVALID, "key", "invalid media key: %s", why)
	}
	if key == "" || len(key) > maxKeyLen {
		return bad("must be 1-1024 bytes")
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" {
			return bad("empty path segment")
		}
		if seg[0] == '.' {
			return bad("segment starts with '.'")
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
				return bad("character not allowed")
			}
		}
	}
	return nil
}

// typeOf is the content type implied by key's extension.
func typeOf(key string) string {
	if t := mime.TypeByExtension(path.Ext(key)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// isNotDir reports the error of opening "a/b" when "a" is a file: for a media key,
// the object does not exist.
func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }

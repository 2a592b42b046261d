package s3

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/minio/minio-go/v7"
)

var errClosed = errors.New("s3: read from a closed object")

// object is an io.ReadSeekCloser over one version of a stored object. It reads the
// body of the GET that Open made; a Seek away from where that body stands makes the
// next Read open a ranged GET that names the version by its ETag (If-Match), so a
// reader never stitches bytes of two versions together.
//
// minio-go's own Object is not used: its first request is a HEAD, and the GET that
// follows fails with 412 whenever the key is overwritten in between, which Diffute's
// retried inference jobs do on purpose. It also runs a goroutine per open object.
type object struct {
	// ctx is the context Open was called with. It is kept because it already governs
	// the body of the first GET (as a request's context governs its response body);
	// ranged GETs after a Seek inherit the same lifetime.
	ctx   context.Context
	store *Store
	name  string
	etag  string
	size  int64

	body    io.ReadCloser // nil when no GET is open
	bodyPos int64         // offset of the next byte body yields
	pos     int64         // offset of the next byte Read returns
	closed  bool
}

func newObject(ctx context.Context, s *Store, name, etag string, size int64, body io.ReadCloser) *object {
	return &object{ctx: ctx, store: s, name: name, etag: etag, size: size, body: body}
}

// Read reads from the current offset, opening a ranged GET first when a Seek moved it.
func (o *object) Read(p []byte) (int, error) {
	if o.closed {
		return 0, errClosed
	}
	if o.pos >= o.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if o.body == nil || o.bodyPos != o.pos {
		if err := o.reopen(); err != nil {
			return 0, err
		}
	}
	n, err := o.body.Read(p)
	o.pos += int64(n)
	o.bodyPos += int64(n)
	if errors.Is(err, io.EOF) && o.pos < o.size {
		err = fmt.Errorf("s3: %s: body ended after %d of %d bytes: %w", o.name, o.pos, o.size, io.ErrUnexpectedEOF)
	}
	return n, err
}

func (o *object) reopen() error {
	if o.body != nil {
		o.body.Close()
		o.body = nil
	}
	var opts minio.GetObjectOptions
	if err := opts.SetMatchETag(o.etag); err != nil {
		return fmt.Errorf("s3: get %s: %w", o.name, err)
	}
	// SetRange(0, 0) would ask for the first byte only; offset 0 needs no range.
	if o.pos > 0 {
		if err := opts.SetRange(o.pos, 0); err != nil {
			return fmt.Errorf("s3: get %s: %w", o.name, err)
		}
	}
	body, _, _, err := o.store.core.GetObject(o.ctx, o.store.bucket, o.name, opts)
	if err != nil {
		if minio.ToErrorResponse(err).Code == minio.PreconditionFailed {
			return fmt.Errorf("s3: %s was replaced while being read: %w", o.name, err)
		}
		return fmt.Errorf("s3: get %s from offset %d: %w", o.name, o.pos, err)
	}
	o.body, o.bodyPos = body, o.pos
	return nil
}

// Seek sets the offset for the next Read. It makes no request: the object's size is
// known, and the GET, if one is needed, waits for the Read.
func (o *object) Seek(offset int64, whence int) (int64, error) {
	if o.closed {
		return 0, errClosed
	}
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = o.pos + offset
	case io.SeekEnd:
		abs = o.size + offset
	default:
		return 0, fmt.Errorf("s3: seek: invalid whence %d", whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("s3: seek: negative offset %d", abs)
	}
	o.pos = abs
	return abs, nil
}

// Close ends the GET in flight, if any.
func (o *object) Close() error {
	if o.closed {
		return nil
	}
	o.closed = true
	if o.body != nil {
		err := o.body.Close()
		o.body = nil
		return err
	}
	return nil
}

package s3

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/media"
)

// MaxURLLifetime is the longest validity S3 accepts for a presigned URL (SigV4 caps
// X-Amz-Expires at seven days). URL shortens longer lifetimes to it.
const MaxURLLifetime = 7 * 24 * time.Hour

// Store is a diffute.MediaStore on an S3-compatible object store. Objects are written
// in one PUT each, which S3 makes atomic: readers see the old object or the new one.
// A Store is safe for concurrent use.
type Store struct {
	client     *minio.Client
	core       minio.Core // for GETs that return the response's headers with its body
	transport  *http.Transport
	bucket     string
	prefix     string
	publicBase string
}

var _ diffute.MediaStore = (*Store)(nil)

// Open connects to the store cfg describes and checks that the bucket exists and that
// the credentials are accepted, so that a wrong bucket or key fails at start rather
// than at the first image. A missing bucket is created only when cfg.CreateBucket is
// set. Close releases the Store's idle connections.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tr, err := minio.DefaultTransport(cfg.Secure)
	if err != nil {
		return nil, fmt.Errorf("s3: transport: %w", err)
	}
	lookup := minio.BucketLookupAuto
	switch cfg.URLStyle {
	case URLStylePath:
		lookup = minio.BucketLookupPath
	case URLStyleVirtual:
		lookup = minio.BucketLookupDNS
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken),
		Secure:       cfg.Secure,
		Transport:    tr,
		Region:       cfg.Region,
		BucketLookup: lookup,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: client for %s: %w", cfg.Endpoint, err)
	}
	s := &Store{
		client:     client,
		core:       minio.Core{Client: client},
		transport:  tr,
		bucket:     cfg.Bucket,
		prefix:     cfg.Prefix,
		publicBase: cfg.PublicBase,
	}
	if err := s.checkBucket(ctx, cfg); err != nil {
		tr.CloseIdleConnections()
		return nil, err
	}
	return s, nil
}

func (s *Store) checkBucket(ctx context.Context, cfg Config) error {
	where := fmt.Sprintf("s3: bucket %q at %s", cfg.Bucket, cfg.Endpoint)
	exists, err := s.client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return describe(where, err)
	}
	if exists {
		return nil
	}
	// The answer to a HEAD has no body, so its 404 may mean more than "no such
	// bucket": versitygw, for one, answers 404 to an unknown access key. A GET of an
	// object no key can name carries the error code that tells them apart.
	body, _, _, err := s.core.GetObject(ctx, cfg.Bucket, ".diffute-bucket-check", minio.GetObjectOptions{})
	if err == nil {
		body.Close()
		return nil
	}
	switch minio.ToErrorResponse(err).Code {
	case minio.NoSuchKey:
		return nil // the bucket is there after all (created since the HEAD)
	case minio.NoSuchBucket:
	default:
		return describe(where, err)
	}
	if !cfg.CreateBucket {
		return fmt.Errorf("%s: bucket does not exist (create it, or add create_bucket=true to the store URL)", where)
	}
	err = s.client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region})
	if err != nil {
		// Another node starting at the same time may have created it first.
		if code := minio.ToErrorResponse(err).Code; code == minio.BucketAlreadyOwnedByYou {
			return nil
		}
		return describe(where+": create", err)
	}
	return nil
}

// describe wraps a server's error, saying so plainly when it refused the credentials.
func describe(where string, err error) error {
	r := minio.ToErrorResponse(err)
	switch {
	case r.StatusCode == http.StatusForbidden,
		r.Code == "InvalidAccessKeyId", r.Code == "SignatureDoesNotMatch", r.Code == "AccessDenied":
		return fmt.Errorf("%s: access refused (check the access and secret keys, and the region): %w", where, err)
	}
	return fmt.Errorf("%s: %w", where, err)
}

// Close releases idle connections. In-flight calls and open objects keep working;
// the Store may still be used, at the cost of new connections.
func (s *Store) Close() error {
	s.transport.CloseIdleConnections()
	return nil
}

// objectName is where key lives in the bucket.
func (s *Store) objectName(key string) string {
	if s.prefix == "" {
		return key
	}
	return s.prefix + "/" + key
}

// Put stores data under key with the given content type, or the type the key's
// extension implies when contentType is "". The object goes up in a single PUT with
// its length and MD5 known, so the server rejects a body damaged on the way.
func (s *Store) Put(ctx context.Context, key string, data []byte, contentType string) error {
	if err := media.CheckKey(key); err != nil {
		return err
	}
	if contentType == "" {
		contentType = typeOf(key)
	} else if _, _, err := mime.ParseMediaType(contentType); err != nil {
		return diffute.FieldErrorf(diffute.EINVALID, "content_type", "content type %q: %v", contentType, err)
	}
	_, err := s.client.PutObject(ctx, s.bucket, s.objectName(key), bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{
			ContentType:    contentType,
			SendContentMd5: true,
			// Images are far below minio-go's 16 MiB part size; pinning it keeps any
			// object up to that size in one PUT whatever minio-go's defaults become.
			PartSize: 16 << 20,
		})
	if err != nil {
		return fmt.Errorf("s3: put %s: %w", key, err)
	}
	return nil
}

// Open returns the object stored under key; ENOTFOUND when absent. The metadata and
// the first bytes come from one GET, so they describe the same version even while
// another node overwrites the key; later reads after a Seek ask for that version by
// its ETag and fail rather than mix versions.
func (s *Store) Open(ctx context.Context, key string) (io.ReadSeekCloser, diffute.MediaInfo, error) {
	if err := media.CheckKey(key); err != nil {
		return nil, diffute.MediaInfo{}, diffute.Errorf(diffute.ENOTFOUND, "no such media object")
	}
	name := s.objectName(key)
	body, oi, _, err := s.core.GetObject(ctx, s.bucket, name, minio.GetObjectOptions{})
	if err != nil {
		if isNotFound(err) {
			return nil, diffute.MediaInfo{}, diffute.Errorf(diffute.ENOTFOUND, "no such media object")
		}
		return nil, diffute.MediaInfo{}, fmt.Errorf("s3: get %s: %w", key, err)
	}
	info := diffute.MediaInfo{
		Size:        oi.Size,
		ContentType: oi.ContentType,
		ModTime:     oi.LastModified,
		// minio-go strips the quotes; HTTP (If-None-Match, ETag) wants them back.
		ETag: `"` + oi.ETag + `"`,
	}
	if info.ContentType == "" {
		info.ContentType = typeOf(key)
	}
	return newObject(ctx, s, name, oi.ETag, oi.Size, body), info, nil
}

// URL returns a URL that opens the object under key without credentials: a presigned
// GET valid for ttl (at most MaxURLLifetime), or PublicBase + "/" + key when the store
// has a public base. The object need not exist yet. Presigning is computed locally;
// it asks the server only when the region is not configured, once per Store.
func (s *Store) URL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := media.CheckKey(key); err != nil {
		return "", err
	}
	if ttl <= 0 {
		return "", diffute.Errorf(diffute.EINVALID, "media URL lifetime must be positive, got %s", ttl)
	}
	if s.publicBase != "" {
		// Keys are made of URL-safe characters only (CheckKey), so no escaping is needed.
		return s.publicBase + "/" + key, nil
	}
	ttl = min(ttl, MaxURLLifetime)
	// SigV4 counts expiry in whole seconds; round up so a short ttl is not zero.
	ttl = max(ttl.Truncate(time.Second), time.Second)
	u, err := s.client.PresignedGetObject(ctx, s.bucket, s.objectName(key), ttl, nil)
	if err != nil {
		return "", fmt.Errorf("s3: presign %s: %w", key, err)
	}
	return u.String(), nil
}

// Delete removes the object under key; an absent object is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := media.CheckKey(key); err != nil {
		return err
	}
	err := s.client.RemoveObject(ctx, s.bucket, s.objectName(key), minio.RemoveObjectOptions{})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("s3: delete %s: %w", key, err)
	}
	return nil
}

// isNotFound reports whether err says the object is absent. A missing bucket is not
// "not found": it is a broken deployment and must surface as such.
func isNotFound(err error) bool {
	r := minio.ToErrorResponse(err)
	switch r.Code {
	case minio.NoSuchKey:
		return true
	case minio.NoSuchBucket:
		return false
	}
	return r.StatusCode == http.StatusNotFound
}

// typeOf is the content type implied by key's extension.
func typeOf(key string) string {
	if t := mime.TypeByExtension(path.Ext(key)); t != "" {
		return t
	}
	return "application/octet-stream"
}

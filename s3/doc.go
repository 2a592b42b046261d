// Package s3 keeps Diffute's generated images in an S3-compatible object store (AWS S3,
// MinIO, Cloudflare R2, GCS interoperability, versitygw, …) through minio-go. It owns
// the store's configuration (parsed from an s3:// URL plus credentials from the
// environment) and Store, the diffute.MediaStore that scale-out deployments use, so
// that any API node can serve or link what any worker wrote.
//
// Objects live at "{prefix}/{key}" in one bucket, keys being the ones
// diffute.MediaKey makes. URLs handed to clients are presigned GETs, so the object
// store serves the bytes and checks expiry and signature itself; or, when the bucket
// is public behind a CDN, plain URLs under a configured base.
//
// Package s3test starts a real S3-compatible server (versitygw) for tests.
package s3

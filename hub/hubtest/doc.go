// Package hubtest runs a fake Hugging Face Hub for tests: the revision API,
// resolve URLs that answer HEAD metadata and serve small files directly, a
// second server standing in for the CDN that LFS files are redirected to, Range
// requests, gated (401) and missing (404) repositories, and fault injection
// (connections cut mid-file, corrupted content). It records every request so
// tests can assert what a client did and did not fetch.
package hubtest

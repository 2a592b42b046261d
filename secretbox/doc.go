// Package secretbox encrypts secrets that Diffute must keep but never show: the
// webhook secrets clients send with their jobs. It is AES-256-GCM with a key that
// the operator supplies (or that serve keeps outside the data directory), so that a
// copy of the database alone does not reveal any secret.
package secretbox

// Package queue runs Diffute's work on River: the inference worker (engine →
// encoded images in the media store → manifest and webhook delivery written in one
// transaction) and the delivery worker (one webhook attempt per River attempt,
// logged, retried on webhook.Config's schedule).
//
// A worker that is interrupted (crash, shutdown) resumes on the next attempt
// without duplicating images: each image's seed is fixed (Seed+i), images already
// recorded are skipped, and recording is idempotent. In embedded SQLite mode one
// process owns the database, so Start first makes River jobs left running by a
// previous process available again.
package queue

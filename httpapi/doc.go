// Package httpapi owns Diffute's HTTP interface: routing, API-key checks, reading and
// validating inference requests, the job status, cancel and delivery-log endpoints,
// health checks, serving media at signed URLs, and the one place (problem.go) where
// errors become HTTP statuses and RFC 9457 problem details. The OpenAI-compatible
// POST /v1/images/generations (openai.go) submits and waits through the same code,
// but answers errors in OpenAI's shape, with the statuses and codes OpenAI's
// clients expect, chosen in that one file.
//
// Handlers return errors instead of writing them; they never choose a status code
// for a failure themselves. The package holds no state of its own: jobs, keys and
// media live behind the diffute.Store, diffute.KeyStore and diffute.MediaStore
// interfaces that cmd/diffute wires in.
package httpapi

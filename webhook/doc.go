// Package webhook sends Diffute's webhook messages: one HTTP POST per attempt with
// the receiver's bearer secret, a stable message ID, no redirects, a capped read of
// the answer, and an SSRF guard that checks the resolved IP at dial time (so a host
// name that resolves, or re-resolves, to a private address is refused). It also
// owns the retry schedule that the queue's delivery worker follows.
//
// Durability (a River job per delivery, the attempt log) lives in packages queue
// and sqlite; this package only knows how to make one attempt and when to retry.
package webhook

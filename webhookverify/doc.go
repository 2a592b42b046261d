// Package webhookverify is for applications that receive Diffute's webhooks: it
// checks the bearer secret the job was submitted with and the Standard Webhooks
// signature made with the project's "whsec_" signing secret, and rejects stale
// timestamps so a captured request cannot be replayed later.
//
// It imports only the standard library and shares no code with the sender, so it
// doubles as an independent check of the signing side.
package webhookverify

// Package metrics is Diffute's Prometheus instrumentation, built on
// prometheus/client_golang with a registry of its own (not the global default)
// that also holds the Go runtime and process collectors.
//
// Two kinds of figures appear. Those this process observes (HTTP requests, jobs
// submitted, started and finished, webhook attempts, engine timings) live in memory
// and restart from zero with the process, as Prometheus counters do. Those read
// from the database at scrape time (queue depth and age, webhook attempts stored)
// describe the whole deployment, whichever process did the work: scrape them from
// one instance, or aggregate with max() rather than sum().
//
// Every series whose label values are known in advance (served models, queues,
// job statuses, rejection reasons, webhook outcomes) is present at zero from
// the start, so that rate() and absence alerts work before the first event.
package metrics

// Package metrics exposes Diffute's Prometheus metrics in the text exposition format
// (version 0.0.4), written by hand: the handful of counters, gauges and histograms
// the service needs do not justify a client library and its dependencies.
//
// Two kinds of figures appear. Those this process observes (job and step durations,
// images generated) live in memory and restart from zero with the process, as
// Prometheus counters do. Those read from the database at scrape time (queue depth
// and age, webhook attempts by outcome) describe the whole deployment, whichever
// process did the work: scrape them from one instance, or aggregate with max() rather
// than sum().
package metrics

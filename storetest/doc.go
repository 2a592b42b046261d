// Package storetest is the suite every implementation of diffute.Store and
// diffute.KeyStore must pass (SQLite now, PostgreSQL in scale-out), so that "the
// same behaviour on both" is checked rather than hoped for.
package storetest

// Package pgtest gives each test a schema of its own on the throwaway PostgreSQL
// that scripts/pg-test-server.sh starts (DIFFUTE_TEST_DATABASE_URL). Tests in
// parallel then share one server without seeing each other's rows or River jobs.
package pgtest

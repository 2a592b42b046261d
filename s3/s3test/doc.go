// Package s3test starts a real S3-compatible server for tests: versitygw (Apache-2.0)
// with its posix backend on a temporary directory, listening on a free port of
// 127.0.0.1, stopped when the test ends. Tests of package s3 and end-to-end tests of a
// scale-out deployment use it so that signatures, presigned URLs and errors are the
// ones a real object store produces.
//
// The binary is a tool, not a dependency: scripts/s3-test-server.sh install puts the
// pinned version where Start looks for it.
package s3test

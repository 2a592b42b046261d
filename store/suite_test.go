package store

import (
	"bytes"
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/diffute/diffute"

	"github.com/diffute/diffute/internal/bothdb"
	"github.com/diffute/diffute/pgtest"
	"github.com/diffute/diffute/secretbox"
)

// The store's tests are written once, as methods of suite, and TestSuite runs
// every one of them on SQLite and on PostgreSQL (as River's driver exercise
// suite does): a test body cannot forget the other database, and none chooses
// its database by its own name. Tests outside suite are about one dialect only
// (SQLite's pragmas and pools, PostgreSQL's nodes racing).

// suite is one database kind for the suite's tests.
type suite struct {
	// url returns the URL of a fresh, empty database of this kind.
	url func(t testing.TB) string
}

// open opens a fresh database of the suite's kind with testOptions.
func (s suite) open(t testing.TB) *DB {
	t.Helper()
	return openURL(t, s.url(t), testOptions())
}

var suites = map[string]suite{
	"SQLite":     {url: func(t testing.TB) string { return "sqlite:" + filepath.Join(t.TempDir(), "diffute.db") }},
	"PostgreSQL": {url: pgtest.URL},
}

func TestSuite(t *testing.T) {
	t.Parallel()
	bothdb.Run(t, suites)
}

// testKey is the secret key of testOptions.
var testKey = bytes.Repeat([]byte{1}, secretbox.KeySize)

// testOptions are the Options tests open with: a secret box and nothing else.
func testOptions() Options {
	box, err := secretbox.New(testKey)
	if err != nil {
		panic(err)
	}
	return Options{Secrets: box, Inference: testInference}
}

// testInference queues every inference job on River's default queue, as the
// queue's policy does on SQLite; the store's tests need no more.
var testInference = InferencePolicy{MaxAttempts: 5, Queue: func(string, bool) string { return "default" }}

// openURL opens url with opts, closing it when the test ends.
func openURL(t testing.TB, url string, opts Options) *DB {
	t.Helper()
	db, err := Open(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

// openSQLiteTest opens a fresh SQLite database, for tests of SQLite alone and
// benchmarks.
func openSQLiteTest(t testing.TB) *DB {
	t.Helper()
	return suites["SQLite"].open(t)
}

// openWith opens a fresh database of the suite's kind with testOptions changed
// by edit.
func (s suite) openWith(t testing.TB, edit func(*Options)) *DB {
	t.Helper()
	opts := testOptions()
	edit(&opts)
	return openURL(t, s.url(t), opts)
}

// countingMedia is keyMedia that counts the URLs it makes.
type countingMedia struct {
	keyMedia
	calls atomic.Int64
}

func (m *countingMedia) URL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	m.calls.Add(1)
	return m.keyMedia.URL(ctx, key, ttl)
}

// keyMedia is a media store whose URLs are the keys themselves, so that a test
// can read a manifest's images as keys.
type keyMedia struct{ diffute.MediaStore }

func (keyMedia) URL(_ context.Context, key string, _ time.Duration) (string, error) { return key, nil }

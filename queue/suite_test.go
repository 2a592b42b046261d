package queue

import (
	"testing"

	"github.com/diffute/diffute/internal/bothdb"
	"github.com/diffute/diffute/pgtest"
)

// The queue's tests that hold on either database are written once, as methods
// of suite, and TestSuite runs each on SQLite and on PostgreSQL: worker
// lifecycle, webhook deliveries and their retries, cancellation, metering and
// retention. No test chooses its database by its own name.

// suite is one database kind.
type suite struct {
	// url returns a fresh database's URL; "" is SQLite in the bundle's directory.
	url func(t testing.TB) string
}

// setup is the package's setup on the suite's database.
func (s suite) setup(t *testing.T, o setupOpts) *testBundle {
	t.Helper()
	if o.databaseURL == "" {
		o.databaseURL = s.url(t)
	}
	return setup(t, o)
}

var suites = map[string]suite{
	"SQLite":     {url: func(testing.TB) string { return "" }},
	"PostgreSQL": {url: pgtest.URL},
}

func TestSuite(t *testing.T) {
	t.Parallel()
	bothdb.Run(t, suites)
}

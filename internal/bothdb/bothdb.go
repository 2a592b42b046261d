// Package bothdb runs a test suite once per database: every exported method
// TestXxx(*testing.T) of a suite value becomes subtest Xxx under the
// database's name. A package's store-backed tests are written once, as methods
// of its suite type, and so run on SQLite and PostgreSQL by construction, as
// River's driver exercise suite runs on every driver.
package bothdb

import (
	"reflect"
	"strings"
	"testing"
)

// Run runs every TestXxx method of each suite in suites (keyed by database
// name) as a parallel subtest.
func Run[S any](t *testing.T, suites map[string]S) {
	t.Helper()
	for name, s := range suites {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			v := reflect.ValueOf(s)
			for i := range v.NumMethod() {
				m := v.Type().Method(i)
				if !strings.HasPrefix(m.Name, "Test") {
					continue
				}
				test, ok := v.Method(i).Interface().(func(*testing.T))
				if !ok {
					t.Fatalf("%s has the name of a test but not its signature", m.Name)
				}
				t.Run(strings.TrimPrefix(m.Name, "Test"), func(t *testing.T) {
					t.Parallel()
					test(t)
				})
			}
		})
	}
}

//go:build !unix

package store

import (
	"errors"
	"os"
)

// lockFile is not implemented off Unix: Diffute's SQLite worker claim needs
// flock. Use PostgreSQL there.
func lockFile(string) (*os.File, error) {
	return nil, errors.New("store: the SQLite worker lock needs a Unix system; use PostgreSQL")
}

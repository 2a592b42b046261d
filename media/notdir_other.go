//go:build !unix

package media

import "errors"

var errNotDir = errors.New("not a directory")

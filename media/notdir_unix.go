//go:build unix

package media

import "syscall"

// errNotDir is what opening "a/b" returns when "a" is a file: for a media key that
// means the object does not exist.
var errNotDir error = syscall.ENOTDIR

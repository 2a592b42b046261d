// Package mediatest owns the behaviour every diffute.MediaStore must show, as one
// suite (Run) that each implementation's tests call: disk now, S3 later. Keeping the
// contract in one place is what lets the rest of Diffute treat stores as
// interchangeable.
package mediatest

// Package imageenc owns turning a generated image into the bytes a client
// downloads: PNG (the default, lossless), JPEG and WebP, with the content type
// and file extension that go with each.
//
// PNG uses image/png with a shared, sync.Pool-backed encoder buffer pool so a
// worker encoding image after image reuses its compression buffers. JPEG uses
// image/jpeg. WebP uses github.com/gen2brain/webp, which runs libwebp compiled
// to WebAssembly under wazero (pure Go, no cgo) unless a system libwebp can be
// loaded; the first WebP encode in a process compiles the module, which takes a
// noticeable fraction of a second.
package imageenc

// Package diffute holds the shared types of the Diffute text-to-image service: the
// inference request and its validation, jobs and their manifests, the error type that
// every layer returns, and the small interfaces the service core is built on (Engine,
// Store, KeyStore, MediaStore).
//
// It imports only the standard library. Adapters (sqlite, onnx, media, httpapi, …)
// import it, never the reverse.
package diffute

package httpapi

import (
	_ "embed"
	"net/http"
	"strconv"
)

// OpenAPI is the OpenAPI 3.1 description of this API, served at /openapi.json,
// with a top-level webhooks entry per webhook event. The end-to-end tests validate
// every request and response they make against it, and openapi_test.go ties each
// response schema to the Go type the handlers encode, so it cannot drift unnoticed.
//
// Its schemas stay within what OpenAPI 3.0 tools (oapi-codegen v2.4, whose loader
// is 3.0-based) read, except for null: a member the server may write as null is
// anyOf [T, {"type": "null"}] with x-go-type naming the Go pointer, because
// oapi-codegen cannot map type [T, "null"] and kin-openapi's 3.1 validation
// ignores nullable.
//
//go:embed openapi.json
var OpenAPI []byte

// docsPage renders OpenAPI in the browser with a few lines of script and no
// external assets: a self-hosted service must not depend on a CDN to show its docs.
//
//go:embed docs.html
var docsPage []byte

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(OpenAPI)))
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(OpenAPI)
	return nil
}

func (s *Server) docs(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'")
	w.Write(docsPage)
	return nil
}

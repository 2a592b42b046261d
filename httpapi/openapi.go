package httpapi

import (
	_ "embed"
	"net/http"
	"strconv"
)

// OpenAPI is the OpenAPI 3.1 description of this API, served at /openapi.json. The
// end-to-end tests validate every request and response they make against it, so it
// cannot drift from the handlers unnoticed.
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

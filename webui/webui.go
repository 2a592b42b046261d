package webui

import (
	"embed"
	"net/http"
	"path"
)

//go:embed static
var static embed.FS

// files maps request paths to embedded files and their content types.
var files = map[string]struct{ name, contentType string }{
	"/":            {"static/index.html", "text/html; charset=utf-8"},
	"/console.js":  {"static/console.js", "text/javascript; charset=utf-8"},
	"/console.css": {"static/console.css", "text/css; charset=utf-8"},
}

// Handler serves the console's files at /, /console.js and /console.css.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := files[path.Clean(r.URL.Path)]
		if !ok {
			http.NotFound(w, r)
			return
		}
		b, err := static.ReadFile(f.name)
		if err != nil {
			http.Error(w, "console file missing from the build", http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		// Only this origin's script, styles and API; images may be on S3 or a CDN
		// of the operator's (presigned URLs), hence img-src *.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src * data: blob:; connect-src 'self'; frame-ancestors 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		w.Write(b)
	})
}

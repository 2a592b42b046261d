package httpapi_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/diffute/diffute/httpapi"
)

// TestOpenAPIDocumentsEveryRoute reads the route patterns of server.go and checks
// that openapi.json has each path and method, so that a new route cannot be added
// without documenting it. (The end-to-end suite checks the other direction and the
// shapes: cmd/diffute/openapi_test.go.)
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	t.Parallel()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(httpapi.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI 3.1 document: %v", err)
	}
	src, err := os.ReadFile("server.go")
	if err != nil {
		t.Fatal(err)
	}
	// The console's own files are not API.
	notAPI := map[string]bool{"/{$}": true, "/console.js": true, "/console.css": true}
	re := regexp.MustCompile(`"(GET|PUT|POST|DELETE|PATCH) (/[^"]*)"`)
	found := 0
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		method, path := m[1], m[2]
		if notAPI[path] {
			continue
		}
		if path == "/media/{key...}" {
			path = "/media/{org}/{project}/{job_id}/{prompt}/{file}"
		}
		found++
		item := doc.Paths.Value(path)
		if item == nil || item.GetOperation(method) == nil {
			t.Errorf("%s %s is served but not in openapi.json", method, path)
		}
	}
	if found < 8 {
		t.Fatalf("found only %d routes in server.go; has its registration changed?", found)
	}
	for path := range doc.Paths.Map() {
		if strings.Contains(path, "//") {
			t.Errorf("malformed path %q", path)
		}
	}
}

// Package webui is Diffute's web console: static files embedded in the binary and
// served at /, with no build step and nothing fetched from elsewhere (a CDN would
// break offline and air-gapped deployments).
//
// The console is a client of the public API only. The API key entered by the user
// is kept in the tab's sessionStorage: it never reaches a cookie, so closing the tab
// forgets it and no other site can make the browser send it. Live progress comes from
// the job's events stream, read with fetch() rather than EventSource because
// EventSource cannot send the x-api-key header.
package webui

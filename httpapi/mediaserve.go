package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/diffute/diffute"
)

// serveMedia handles GET /media/{key...}: no API key, the URL's signature is the
// credential. Range, If-None-Match and If-Modified-Since are left to http.ServeContent.
func (s *Server) serveMedia(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	now := time.Now()
	if err := s.Signer.Verify(key, r.URL.Query(), now); err != nil {
		return err
	}
	f, info, err := s.Media.Open(r.Context(), key)
	if err != nil {
		if diffute.ErrorCode(err) == diffute.ENOTFOUND {
			// The signature is ours and URLs are only made for stored images, so a
			// missing one was deleted: by retention, or with its job.
			return diffute.Errorf(diffute.EGONE, "this image has expired and was deleted")
		}
		return fmt.Errorf("open media: %w", err)
	}
	defer f.Close()
	h := w.Header()
	if info.ContentType != "" {
		h.Set("Content-Type", info.ContentType)
	}
	if info.ETag != "" {
		h.Set("ETag", info.ETag)
	}
	// Cacheable by the client for as long as the URL stays valid, not by shared caches:
	// the URL is the credential.
	exp, _ := strconv.ParseInt(r.URL.Query().Get("expires"), 10, 64)
	maxAge := max(exp-now.Unix(), 0)
	h.Set("Cache-Control", "private, max-age="+strconv.FormatInt(maxAge, 10))
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", info.ModTime, f)
	return nil
}

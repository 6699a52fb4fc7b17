package httpapi

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

// uiFiles is the web UI: ui/index.html (the box list), ui/pages.js (the
// box page and the image cache) and the vendored xterm.js.
//
//go:embed ui/index.html ui/pages.js ui/vendor/xterm.js ui/vendor/xterm.css ui/vendor/LICENSE.xterm
var uiFiles embed.FS

// handleUI serves GET /ui (the page, spec §5.18) and /ui/vendor/* assets.
// Every response is no-cache, so an upgraded server is picked up at once.
func (s *Server) handleUI(w http.ResponseWriter, r *http.Request, p params) error {
	if strings.HasSuffix(r.URL.Path, "/ui/") {
		// The page's URLs are relative to <base>/ui, not <base>/ui/.
		// (Set by hand: http.Redirect would make it absolute.)
		w.Header().Set("Location", "../ui")
		w.WriteHeader(http.StatusMovedPermanently)
		return nil
	}
	name := "index.html"
	if p.seg != "" {
		name = path.Clean(p.seg)
	}
	data, err := fs.ReadFile(uiFiles, "ui/"+name)
	if err != nil {
		return errNotFound(r)
	}
	ct := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".html":
		ct = "text/html; charset=utf-8"
	case ".js":
		ct = "text/javascript; charset=utf-8"
	case ".css":
		ct = "text/css; charset=utf-8"
	case "", ".xterm":
		ct = "text/plain; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(data)
	}
	return nil
}

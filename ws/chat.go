package ws

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// chatFiles is the chat page: plain HTML, JS and CSS, no build step and no
// external resources.
//
//go:embed static/chat/index.html static/chat/chat.js static/chat/chat.css
var chatFiles embed.FS

// chatType returns the content type of a chat page file, "" for others.
func chatType(name string) string {
	switch name {
	case "index.html":
		return "text/html; charset=utf-8"
	case "chat.js":
		return "text/javascript; charset=utf-8"
	case "chat.css":
		return "text/css; charset=utf-8"
	}
	return ""
}

// ChatPage returns the handler of the demo chat page, meant to be mounted at
// a directory such as /chat/ with the `chat` function's WebSocket route at
// /chat/ws next to it (the page connects to "ws" relative to its own URL,
// with the query room=R&name=N). It serves index.html for the directory,
// chat.js and chat.css by base name whatever the mount prefix, and
// redirects the directory without its trailing slash.
func ChatPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := path.Base(r.URL.Path)
		switch {
		case strings.HasSuffix(r.URL.Path, "/"):
			name = "index.html"
		case chatType(name) == "":
			if !strings.Contains(name, ".") && name != "ws" {
				// The directory without its slash: relative URLs need it.
				target := r.URL.Path + "/"
				if r.URL.RawQuery != "" {
					target += "?" + r.URL.RawQuery
				}
				http.Redirect(w, r, target, http.StatusMovedPermanently)
				return
			}
			http.NotFound(w, r)
			return
		}
		b, err := fs.ReadFile(chatFiles, "static/chat/"+name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", chatType(name))
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(b)
	})
}

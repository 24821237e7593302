package ws_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nylon-functions/nylon/ws"
)

func TestChatPage(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/chat/", ws.ChatPage())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	for _, tc := range []struct {
		path, status, ctype string
		contains            []string
	}{
		{"/chat/", "200 OK", "text/html", []string{`id="room"`, `id="name"`, `id="join"`, `id="message"`, `id="send"`, `id="messages"`, `id="status"`, `src="chat.js"`}},
		{"/chat/index.html", "200 OK", "text/html", []string{"Nylon chat"}},
		{"/chat/chat.js", "200 OK", "text/javascript", []string{"new WebSocket", "'system'", "JSON.parse"}},
		{"/chat/chat.css", "200 OK", "text/css", []string{"#messages"}},
		{"/chat/nope.png", "404 Not Found", "", nil},
	} {
		resp, err := noRedirect.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Status != tc.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ctype) {
			t.Errorf("GET %s: %s %q, want %s %q", tc.path, resp.Status, resp.Header.Get("Content-Type"), tc.status, tc.ctype)
		}
		for _, s := range tc.contains {
			if !strings.Contains(string(body), s) {
				t.Errorf("GET %s: body lacks %q", tc.path, s)
			}
		}
		if resp.StatusCode == 200 && strings.Contains(string(body), "http") && tc.ctype == "text/html" {
			t.Errorf("GET %s: the page must not load external resources", tc.path)
		}
	}

	// Mounted without StripPrefix at another directory, and the directory
	// without its slash redirects.
	resp, err := noRedirect.Get(srv.URL + "/chat/room/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /chat/room/: %v %v", resp, err)
	}
	resp.Body.Close()
	plain := httptest.NewServer(ws.ChatPage())
	t.Cleanup(plain.Close)
	resp, err = noRedirect.Get(plain.URL + "/chat?room=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/chat/?room=x" {
		t.Errorf("GET /chat: %s Location %q, want 301 to /chat/?room=x", resp.Status, resp.Header.Get("Location"))
	}
	req, _ := http.NewRequest(http.MethodPost, plain.URL+"/chat/", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %s, want 405", resp.Status)
	}
}

package ws_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/ws"
)

const chromiumPath = "/usr/bin/chromium"

// chatFunction behaves like functions/examples/chat: on open it joins the
// query's room (default lobby) and announces the user, relays every text as
// {"from","text"} to the room (the sender included), and on close leaves
// and announces the departure. Notices come from "system".
func chatFunction(ev *event) answer {
	room := query(ev, "room")
	if room == "" {
		room = "lobby"
	}
	name := query(ev, "name")
	if name == "" {
		name = ev.conn()
	}
	js := func(v any) []byte {
		b, _ := json.Marshal(v)
		return b
	}
	switch ev.kind() {
	case protocol.WSOpen:
		return ok(
			protocol.Op{Code: protocol.OpWSJoinRoom, Key: room},
			protocol.Op{Code: protocol.OpWSBroadcastText, Key: room, Value: js(map[string]string{"from": "system", "text": name + " joined"})},
		)
	case protocol.WSText:
		return ok(protocol.Op{Code: protocol.OpWSBroadcastText, Key: room, Value: js(map[string]string{"from": name, "text": string(ev.inv.WS.Payload)})})
	case protocol.WSClose:
		return ok(
			protocol.Op{Code: protocol.OpWSLeaveRoom, Key: room},
			protocol.Op{Code: protocol.OpWSBroadcastText, Key: room, Value: js(map[string]string{"from": "system", "text": name + " left"})},
		)
	}
	return ok()
}

// The chat page in headless Chromium: two tabs join one room, one sends,
// the other shows the message.
func TestBrowserChat(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("headless Chromium is needed at %s (%v): run `make test-deps` to install it", chromiumPath, err)
	}
	s := testutil.RunNATS(t)
	respond(t, s, "chat", false, chatFunction)
	nc := testutil.Connect(t, s)
	edge, err := ws.New(ws.Config{}, nc, ws.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/chat/ws", edge.Handler("chat", nil))
	mux.Handle("/chat/", ws.ChatPage())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = edge.Close(ctx)
	})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	browser := startChromium(ctx, t)
	alice := browser.open(ctx, t, srv.URL+"/chat/")
	bob := browser.open(ctx, t, srv.URL+"/chat/")

	alice.eval(ctx, t, `document.getElementById('room').value = 'den';
		document.getElementById('name').value = 'alice';
		document.getElementById('join').click()`)
	alice.waitFor(ctx, t, `document.getElementById('status').dataset.state`, "open")
	alice.waitFor(ctx, t, `document.getElementById('messages').textContent.includes('alice joined')`, true)

	bob.eval(ctx, t, `document.getElementById('room').value = 'den';
		document.getElementById('name').value = 'bob';
		document.getElementById('join').click()`)
	bob.waitFor(ctx, t, `document.getElementById('status').dataset.state`, "open")
	alice.waitFor(ctx, t, `document.getElementById('messages').textContent.includes('bob joined')`, true)

	alice.eval(ctx, t, `document.getElementById('message').value = 'hello from alice';
		document.getElementById('send').click()`)
	bob.waitFor(ctx, t, `Array.from(document.querySelectorAll('#messages li.chat')).map(li => li.textContent).join('|')`, "alice:hello from alice")
	alice.waitFor(ctx, t, `document.getElementById('message').value`, "")

	// Room messages from elsewhere: a {"system"} notice and plain text are
	// rendered too (published as an edge would, on the room subject).
	for _, m := range []string{`{"system":"maintenance at noon"}`, "plain words"} {
		if err := nc.PublishMsg(&nats.Msg{Subject: protocol.RoomSubject(prefix, "den"), Data: []byte(m), Header: nats.Header{ws.HeaderWSType: {"text"}}}); err != nil {
			t.Fatal(err)
		}
	}
	bob.waitFor(ctx, t, `Array.from(document.querySelectorAll('#messages li')).slice(-2).map(li => li.className + '=' + li.textContent).join('|')`,
		"system=maintenance at noon|raw=plain words")

	// Bob leaves: alice sees the notice, bob's status shows the close.
	bob.eval(ctx, t, `document.getElementById('room').value = 'elsewhere'; document.getElementById('join').click()`)
	alice.waitFor(ctx, t, `document.querySelector('#messages li.system:last-child').textContent`, "bob left")
	bob.waitFor(ctx, t, `document.getElementById('status').dataset.state`, "open")

	if exc := browser.exceptions(); len(exc) > 0 {
		t.Fatalf("page threw: %v", exc)
	}
}

// chromium is a headless Chromium driven over the DevTools protocol.
type chromium struct {
	conn    *websocket.Conn
	nextID  atomic.Int64
	mu      sync.Mutex
	pending map[int64]chan cdpReply
	thrown  []string
}

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

type cdpMessage struct {
	cdpReply
	ID     int64           `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

var devtoolsURL = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

func startChromium(ctx context.Context, t *testing.T) *chromium {
	t.Helper()
	cmd := exec.Command(chromiumPath,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+t.TempDir(), "--remote-debugging-port=0",
		"about:blank")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	exited := make(chan struct{})
	found := make(chan string, 1)
	var logMu sync.Mutex
	var log []string
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			logMu.Lock()
			log = append(log, line)
			logMu.Unlock()
			if m := devtoolsURL.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	var endpoint string
	select {
	case endpoint = <-found:
	case <-exited:
		t.Fatalf("chromium exited before listening: %s", strings.Join(log, "\n"))
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		t.Fatalf("chromium did not announce its DevTools endpoint")
	}
	conn, _, err := websocket.Dial(ctx, endpoint, nil)
	if err != nil {
		_ = cmd.Process.Kill()
		t.Fatalf("dial devtools %s: %v", endpoint, err)
	}
	conn.SetReadLimit(-1)
	b := &chromium{conn: conn, pending: map[int64]chan cdpReply{}}
	go b.readLoop()
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = b.call(cctx, "", "Browser.close", nil)
		select {
		case <-exited:
		case <-cctx.Done():
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = conn.CloseNow()
	})
	return b
}

func (b *chromium) readLoop() {
	for {
		_, data, err := b.conn.Read(context.Background())
		if err != nil {
			b.mu.Lock()
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var m cdpMessage
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch, ok := b.pending[m.ID]; ok {
				ch <- m.cdpReply
				delete(b.pending, m.ID)
			}
		} else if m.Method == "Runtime.exceptionThrown" {
			b.thrown = append(b.thrown, string(m.Params))
		}
		b.mu.Unlock()
	}
}

func (b *chromium) exceptions() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.thrown...)
}

// call sends a DevTools command, to the browser or to an attached session.
func (b *chromium) call(ctx context.Context, session, method string, params any) (json.RawMessage, error) {
	id := b.nextID.Add(1)
	ch := make(chan cdpReply, 1)
	b.mu.Lock()
	b.pending[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	if err := b.conn.Write(ctx, websocket.MessageText, data); err != nil {
		return nil, fmt.Errorf("devtools %s: %w", method, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("devtools %s: connection closed", method)
		}
		if r.Error != nil {
			return nil, fmt.Errorf("devtools %s: %d %s", method, r.Error.Code, r.Error.Message)
		}
		return r.Result, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("devtools %s: %w", method, ctx.Err())
	}
}

// tab is one page target with an attached session.
type tab struct {
	b       *chromium
	session string
}

func (b *chromium) open(ctx context.Context, t *testing.T, url string) *tab {
	t.Helper()
	res, err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": url})
	if err != nil {
		t.Fatal(err)
	}
	var target struct{ TargetID string }
	_ = json.Unmarshal(res, &target)
	res, err = b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true})
	if err != nil {
		t.Fatal(err)
	}
	var att struct{ SessionID string }
	_ = json.Unmarshal(res, &att)
	tb := &tab{b: b, session: att.SessionID}
	if _, err := b.call(ctx, tb.session, "Runtime.enable", nil); err != nil {
		t.Fatal(err)
	}
	tb.waitFor(ctx, t, `document.readyState === 'complete' && !!document.getElementById('join')`, true)
	return tb
}

// evalValue evaluates expr in the page and returns its JSON value.
func (tb *tab) evalValue(ctx context.Context, expr string) (json.RawMessage, error) {
	res, err := tb.b.call(ctx, tb.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true})
	if err != nil {
		return nil, err
	}
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return nil, err
	}
	if r.ExceptionDetails != nil {
		return nil, fmt.Errorf("evaluate %q: %s", expr, r.ExceptionDetails.Text)
	}
	return r.Result.Value, nil
}

func (tb *tab) eval(ctx context.Context, t *testing.T, expr string) {
	t.Helper()
	if _, err := tb.evalValue(ctx, expr); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls expr until it evaluates to want.
func (tb *tab) waitFor(ctx context.Context, t *testing.T, expr string, want any) {
	t.Helper()
	wantJSON, _ := json.Marshal(want)
	testutil.Eventually(t, 15*time.Second, 20*time.Millisecond, func() error {
		got, err := tb.evalValue(ctx, expr)
		if err != nil {
			return err
		}
		if string(got) != string(wantJSON) {
			return fmt.Errorf("%s = %s, want %s", expr, got, wantJSON)
		}
		return nil
	})
}

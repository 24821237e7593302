package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/internal/natsconn"
	"github.com/nylon-functions/nylon/protocol"
)

// defaultClientNATS is where client commands connect without --nats: the
// embedded server of a local `nylon serve`.
const defaultClientNATS = "nats://127.0.0.1:4222"

// clientNATS are the flags of a command that connects to NATS as a client
// (never starting an embedded server).
type clientNATS struct {
	NATS          natsFlags
	Env           string
	SubjectPrefix string // --subject-prefix; empty means nylon.<env>: use prefix()
}

func (c *clientNATS) register(f *flagSet) {
	f.String(&c.Env, "env", "name", "NYLON_ENV", protocol.DefaultEnv, "environment: the subject prefix nylon.<env>")
	registerSubjectPrefix(f, &c.SubjectPrefix)
	c.NATS.register(f, false)
}

// validate checks the flags that need no connection, the NATS ones and
// their security rule included, so a bad one is a usage error naming it.
func (c *clientNATS) validate(cmd string) error {
	if err := validateSubjectPrefix(c.SubjectPrefix); err != nil {
		return &usageError{cmd: cmd, err: err}
	}
	if err := c.config("").Validate(); err != nil {
		return &usageError{cmd: cmd, err: natsFlagError(err)}
	}
	return nil
}

// prefix is the subject prefix the command calls: --subject-prefix, else
// nylon.<env>.
func (c *clientNATS) prefix() string { return subjectPrefix(c.SubjectPrefix, c.Env) }

// config is the connection to --nats, or defaultClientNATS when none is
// given; name is the client connection name.
func (c *clientNATS) config(name string) natsconn.Config {
	n := c.NATS
	if len(n.URLs) == 0 {
		n.URLs = []string{defaultClientNATS}
	}
	return n.config(c.Env, name, "")
}

// connect connects to --nats, or defaultClientNATS when none is given.
// Call validate first.
func (c *clientNATS) connect(ctx context.Context, name string) (*natsconn.Conn, error) {
	conn, err := natsconn.Connect(ctx, c.config(name), slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	return conn, nil
}

func closeConn(conn *natsconn.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

func invokeCommand() command {
	return command{
		name:    "invoke",
		summary: "call one phase of a function directly over NATS and print its answer",
		help: `invoke builds the invocation a gateway would send (method, path, headers,
body, config) and requests the function's phase subject, bypassing the gateway.
Without --nats it connects to ` + defaultClientNATS + `.

invoke matches no route: the handler gets the path as given, and route
parameters (Request().Param) only from --param name=value.

--phase events sends one WebSocket event (--event open, text, binary or
close) as the WebSocket edge would, on <prefix>.ws.<name>.events: the
request flags describe the upgrade request (a room chosen by the query, as
in chat, goes in --path), --body is the message of text and binary.

Like the gateway it sends the NATS headers traceparent (a new span of the
--traceparent trace, else of a fresh unsampled one) and Nylon-Env (--env), and
prints the traceparent the node echoes, to find the call in the node's logs.

  nylon invoke hello --path '/hello?name=ana' --header Accept:application/json
  nylon invoke hello --path /hello/ana --param name=ana
  nylon invoke chat --phase events --event text --body hi --path '/chat/ws?room=lobby&name=ana'`,
		run: runInvoke,
	}
}

type invokeFlags struct {
	conn        clientNATS
	output      string
	phase       string
	method      string
	path        string
	host        string
	headers     []string
	body        string
	config      []string
	params      []string
	timeout     time.Duration
	traceparent string
	// The WebSocket event of --phase events.
	event       string
	connID      string
	closeCode   int
	closeReason string
}

// defaultConnID is the connection id of an invoked WebSocket event; the
// edge's are "<edge id>-<n>".
const defaultConnID = "invoke-1"

func runInvoke(ctx context.Context, a *app, cmd command, args []string) error {
	var fl invokeFlags
	f := newFlagSet(a, cmd, "[flags] <name>")
	fl.conn.register(f)
	registerOutput(f, &fl.output)
	f.String(&fl.phase, "phase", "phase", "", protocol.PhaseRequestFilter.String(), "phase to call: request_filter, response_filter, response_body_filter, logging, or events (a WebSocket event: --event)")
	f.String(&fl.method, "method", "method", "", "GET", "HTTP method of the request")
	f.String(&fl.path, "path", "path", "", "/", "request path, optionally with ?query")
	f.String(&fl.host, "host", "host", "", "localhost", "Host of the request")
	repeatedFlag(f, &fl.headers, "header", "name:value", "request header")
	f.String(&fl.body, "body", "text", "", "", "request body; with --phase events the message of a text or binary event")
	repeatedFlag(f, &fl.config, "config", "key=value", "configuration value the handler reads")
	repeatedFlag(f, &fl.params, "param", "name=value", "route parameter, as the gateway fills it from a route such as /hello/{name} (a trailing * is the parameter *)")
	f.Duration(&fl.timeout, "timeout", "", 2*time.Second, "how long to wait for the answer")
	f.String(&fl.traceparent, "traceparent", "value", "", "", "W3C traceparent whose trace the call joins (a new span of it); empty: a fresh trace")
	f.String(&fl.event, "event", "kind", "", "", "WebSocket event of --phase events: open, text, binary or close (required there)")
	f.String(&fl.connID, "connection-id", "id", "", defaultConnID, "connection id of the WebSocket event")
	f.Int(&fl.closeCode, "close-code", "code", "", 1000, "close code of a close event")
	f.String(&fl.closeReason, "close-reason", "text", "", "", "close reason of a close event")
	pos, err := parseArgs(f, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd.name, pos, "<name>"); err != nil {
		return err
	}
	name := pos[0]
	if err := protocol.ValidateName(name); err != nil {
		return usageErrorf(cmd.name, "%v", err)
	}
	if err := checkOutput(cmd.name, fl.output); err != nil {
		return err
	}
	if err := fl.conn.validate(cmd.name); err != nil {
		return err
	}
	req, err := fl.request(cmd.name, f.isSet)
	if err != nil {
		return err
	}
	if fl.timeout <= 0 {
		return usageErrorf(cmd.name, "--timeout: %v must be positive", fl.timeout)
	}
	// The edges ignore an invalid traceparent (W3C: start a fresh trace);
	// one typed on the command line is a mistake worth saying.
	if fl.traceparent != "" && !protocol.ValidTraceparent(fl.traceparent) {
		return usageErrorf(cmd.name, "--traceparent %q: want a W3C traceparent like 00-<32 hex>-<16 hex>-01", fl.traceparent)
	}
	trace := protocol.ContinueTrace(fl.traceparent)
	traceparent := trace.Next()

	conn, err := fl.conn.connect(ctx, "nylon invoke")
	if err != nil {
		return fmt.Errorf("invoke %s: %w", name, err)
	}
	defer closeConn(conn)
	subject := protocol.PhaseSubject(fl.conn.prefix(), name, req.Phase)
	ans, err := callPhase(ctx, conn.NC, subject, req.AppendMsgpack(nil), traceparent, fl.conn.Env, fl.timeout)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		if req.Phase == protocol.PhaseEvent {
			return fmt.Errorf("invoke %s: no node serves %s (is the function deployed, and does it handle WebSocket events?)", name, subject)
		}
		return fmt.Errorf("invoke %s: no node serves %s (is the function deployed with phase %s?)", name, subject, req.Phase)
	case errors.Is(err, context.DeadlineExceeded):
		// The node may still have run it: its logs carry the traceparent.
		return fmt.Errorf("invoke %s: no answer on %s within %v (traceparent %s)", name, subject, fl.timeout, traceparent)
	case errors.Is(err, protocol.ErrDecode):
		return fmt.Errorf("invoke %s: decoding the answer: %w", name, err)
	case err != nil:
		return fmt.Errorf("invoke %s: %w", name, err)
	}
	res := invokeResult{Subject: subject, RequestID: req.RequestID.String(), DurationMS: float64(ans.elapsed.Microseconds()) / 1000,
		Traceparent: ans.reply.Header.Get(protocol.HeaderTraceparent), ServiceError: ans.service}
	if ans.service != nil {
		if err := res.write(a.stdout, fl.output); err != nil {
			return err
		}
		return fmt.Errorf("invoke %s: service error %s: %s", name, ans.service.Code, ans.service.Description)
	}
	resp := ans.resp
	ops, err := protocol.DecodeOps(resp.Data, nil)
	if err != nil {
		return fmt.Errorf("invoke %s: decoding the ops: %w", name, err)
	}
	res.Action, res.Error = resp.Action.String(), resp.Error
	for _, op := range ops {
		res.Ops = append(res.Ops, newOpView(op))
	}
	if err := res.write(a.stdout, fl.output); err != nil {
		return err
	}
	if resp.Action == protocol.ActionError {
		return fmt.Errorf("invoke %s: the handler answered Error: %s", name, resp.Error)
	}
	return nil
}

// request builds the PluginRequest the flags describe; isSet tells which
// flags the command line or the environment gave.
func (fl *invokeFlags) request(cmd string, isSet func(flag string) bool) (protocol.PluginRequest, error) {
	phase, err := protocol.ParsePhase(fl.phase)
	if err != nil {
		return protocol.PluginRequest{}, usageErrorf(cmd, "--phase: %v", err)
	}
	ws, err := fl.wsEvent(phase, isSet)
	if err != nil {
		return protocol.PluginRequest{}, &usageError{cmd: cmd, err: err}
	}
	p, query, _ := strings.Cut(fl.path, "?")
	if !strings.HasPrefix(p, "/") {
		return protocol.PluginRequest{}, usageErrorf(cmd, "--path %q: want an absolute path like /x", fl.path)
	}
	inv := protocol.Invocation{Request: protocol.HTTPRequest{
		Method:    strings.ToUpper(fl.method),
		Scheme:    "http",
		Host:      fl.host,
		Path:      p,
		Query:     query,
		ClientIP:  "127.0.0.1",
		Timestamp: uint64(time.Now().UnixMilli()),
	}, WS: ws}
	if ws == nil {
		// An event's request is the upgrade request, which has no body:
		// --body is the event's message.
		inv.Request.Body = []byte(fl.body)
	}
	for _, h := range fl.headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return protocol.PluginRequest{}, usageErrorf(cmd, "--header %q: want name:value", h)
		}
		inv.Request.Headers = append(inv.Request.Headers, protocol.Header{Name: strings.TrimSpace(k), Value: strings.TrimSpace(v)})
	}
	for _, kv := range fl.config {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return protocol.PluginRequest{}, usageErrorf(cmd, "--config %q: want key=value", kv)
		}
		inv.Config = append(inv.Config, protocol.KV{Key: k, Value: v})
	}
	// invoke matches no route, so a handler reading Request().Param gets
	// what --param says, where the gateway would give it the path's values.
	for _, kv := range fl.params {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return protocol.PluginRequest{}, usageErrorf(cmd, "--param %q: want name=value", kv)
		}
		if _, dup := protocol.Lookup(inv.Request.Params, k); dup {
			return protocol.PluginRequest{}, usageErrorf(cmd, "--param %q: %s given twice", kv, k)
		}
		inv.Request.Params = append(inv.Request.Params, protocol.KV{Key: k, Value: v})
	}
	if phase != protocol.PhaseRequestFilter && phase != protocol.PhaseEvent {
		// The response phases read the upstream's answer; give them an
		// empty 200 so handlers have something to look at.
		inv.Response = &protocol.HTTPResponse{Status: 200, LastChunk: true}
	}
	req := protocol.PluginRequest{
		Version:   protocol.Version,
		RequestID: protocol.NewRequestID(),
		Phase:     phase,
		Data:      protocol.AppendInvocation(nil, &inv),
		Timestamp: uint64(time.Now().UnixMilli()),
	}
	if ws != nil {
		req.Method = ws.Kind.EventNumber() // as the edge sends it: 350 open ... 353 close
	}
	return req, nil
}

// wsEvent is the WebSocket event of --phase events, as the edge sends it
// (docs/WEBSOCKET.md "Events on the wire"); nil for the HTTP phases, which
// take none of its flags.
func (fl *invokeFlags) wsEvent(phase protocol.Phase, isSet func(string) bool) (*protocol.WSEvent, error) {
	if phase != protocol.PhaseEvent {
		for _, name := range []string{"event", "connection-id", "close-code", "close-reason"} {
			if isSet(name) {
				return nil, fmt.Errorf("--%s: only with --phase events", name)
			}
		}
		return nil, nil
	}
	kind := protocol.WSEventKind(fl.event)
	switch {
	case fl.event == "":
		return nil, errors.New("--event: --phase events needs one: open, text, binary or close")
	case kind.EventNumber() == 0:
		return nil, fmt.Errorf("--event %q: want open, text, binary or close", fl.event)
	case fl.connID == "":
		return nil, errors.New("--connection-id: empty")
	case (kind == protocol.WSOpen || kind == protocol.WSClose) && fl.body != "":
		return nil, fmt.Errorf("--body: an %s event has no message (only text and binary do)", kind)
	case kind != protocol.WSClose && (isSet("close-code") || isSet("close-reason")):
		return nil, fmt.Errorf("--close-code, --close-reason: only with --event close, not %s", kind)
	case fl.closeCode < 1000 || fl.closeCode > 4999:
		return nil, fmt.Errorf("--close-code: %d: want a WebSocket close code, 1000 to 4999", fl.closeCode)
	}
	ev := &protocol.WSEvent{Kind: kind, ConnectionID: fl.connID}
	switch kind {
	case protocol.WSText, protocol.WSBinary:
		ev.Payload = []byte(fl.body)
	case protocol.WSClose:
		ev.CloseCode, ev.CloseReason = uint16(fl.closeCode), fl.closeReason
	}
	return ev, nil
}

// invokeResult is what invoke prints; its JSON form is the -o json output.
type invokeResult struct {
	Subject      string      `json:"subject"`
	RequestID    string      `json:"request_id"`
	DurationMS   float64     `json:"duration_ms"`
	Traceparent  string      `json:"traceparent,omitempty"` // the reply's echo; absent if it has none
	Action       string      `json:"action,omitempty"`
	Error        string      `json:"error,omitempty"`
	Ops          []opView    `json:"ops,omitempty"`
	ServiceError *serviceErr `json:"service_error,omitempty"`
}

type serviceErr struct {
	Code        string `json:"code"`
	Description string `json:"description"`
}

// opView is one op for people and scripts: Value is text when it is valid
// UTF-8, else it is left out and ValueBytes says how long it was.
type opView struct {
	Code       uint32 `json:"code"`
	Text       string `json:"text"`
	Key        string `json:"key,omitempty"`
	Value      string `json:"value,omitempty"`
	ValueBytes int    `json:"value_bytes,omitempty"`
	Num        int64  `json:"num,omitempty"`
}

func newOpView(op protocol.Op) opView {
	v := opView{Code: op.Code, Key: op.Key, Num: op.Num}
	if utf8.Valid(op.Value) {
		v.Value = string(op.Value)
	} else {
		v.ValueBytes = len(op.Value)
	}
	v.Text = describeOp(op)
	return v
}

// describeOp renders op as a line such as "set status 200" or
// "set header Content-Type: application/json".
func describeOp(op protocol.Op) string {
	val := printable(op.Value)
	op.Key = terminalText(op.Key, false)
	if protocol.IsResponseHeaderOp(op.Code) || protocol.IsRequestHeaderOp(op.Code) {
		// A header value is one line: a responder that is no node may
		// send one with a newline, which would forge the next op's line.
		val = terminalText(val, false)
	}
	switch op.Code {
	case protocol.OpSetResponseHeader:
		return "set header " + op.Key + ": " + val
	case protocol.OpRemoveResponseHeader:
		return "remove header " + op.Key
	case protocol.OpAddResponseHeader:
		return "add header " + op.Key + ": " + val
	case protocol.OpSetResponseStatus:
		return "set status " + strconv.FormatInt(op.Num, 10)
	case protocol.OpSetResponseBody:
		return "body: " + val
	case protocol.OpSetStreamHeader:
		return "stream start"
	case protocol.OpSetStreamData:
		return "stream data: " + val
	case protocol.OpSetStreamEnd:
		return "stream end"
	case protocol.OpSetRequestHeader:
		return "set request header " + op.Key + ": " + val
	case protocol.OpRemoveRequestHeader:
		return "remove request header " + op.Key
	case protocol.OpWSSendText:
		return "ws send text: " + val
	case protocol.OpWSSendBinary:
		return "ws send binary: " + val
	case protocol.OpWSClose:
		return fmt.Sprintf("ws close %d %s", op.Num, val)
	case protocol.OpWSJoinRoom:
		return "ws join room " + op.Key
	case protocol.OpWSLeaveRoom:
		return "ws leave room " + op.Key
	case protocol.OpWSBroadcastText:
		return "ws broadcast text to " + op.Key + ": " + val
	case protocol.OpWSBroadcastBinary:
		return "ws broadcast binary to " + op.Key + ": " + val
	}
	return fmt.Sprintf("op %d key=%q value=%s num=%d", op.Code, op.Key, val, op.Num)
}

// printable shows b as text when it is UTF-8, else as its length.
func printable(b []byte) string {
	if utf8.Valid(b) {
		return terminalText(string(b), true)
	}
	return fmt.Sprintf("<%d bytes of binary>", len(b))
}

func (r *invokeResult) write(w io.Writer, output string) error {
	if output == outputJSON {
		return writeJSONValue(w, r)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (request %s, %.1f ms)\n", r.Subject, r.RequestID, r.DurationMS)
	if r.Traceparent != "" {
		fmt.Fprintf(&b, "traceparent: %s\n", r.Traceparent)
	}
	if r.ServiceError != nil {
		fmt.Fprintf(&b, "service error %s: %s\n", terminalText(r.ServiceError.Code, false), terminalText(r.ServiceError.Description, false))
		_, err := io.WriteString(w, b.String())
		return err
	}
	fmt.Fprintf(&b, "action: %s\n", r.Action)
	if r.Error != "" {
		fmt.Fprintf(&b, "error: %s\n", terminalText(r.Error, true))
	}
	for _, op := range r.Ops {
		fmt.Fprintf(&b, "  %s\n", op.Text)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

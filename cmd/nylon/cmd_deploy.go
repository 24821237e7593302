package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

func deployCommand() command {
	return command{
		name:    "deploy",
		summary: "upload a wasm module as a new version of a function and make it active",
		help: `The module is validated by the admin API (exports, imports, phases) before it
is stored; a bad module is refused with 422 and nothing changes. Flags may come
before or after NAME and FILE. FILE "-" reads the module from stdin.

  nylon deploy hello hello.wasm --route /hello --route /hi --config greeting=hey --timeout 500ms

A new version is active once stored, and its routes go live on every gateway
at once, but a node answers only after it has fetched and compiled the module
(seconds for a Go guest the first time): until then the requests of a new
function wait for a node (up to 10 s, for a minute after the deploy) and
answer 503 "no node serves" if none comes. --wait 1m waits until a node serves
the new version before returning, and fails (exit 1) if none does in time.

A deploy keeps nothing of the version before it: give every --route,
--config and limit again. What the active version had and the new one lacks
is noted on stderr.`,
		run: runDeploy,
	}
}

type deployFlags struct {
	admin       adminFlags
	routes      []string
	config      []string
	timeout     time.Duration
	memoryMB    int
	maxWorkers  int
	maxBody     int
	queueGroup  string
	description string
	quiet       bool
	wait        time.Duration
}

func runDeploy(ctx context.Context, a *app, cmd command, args []string) error {
	var d deployFlags
	f := newFlagSet(a, cmd, "[flags] <name> <file.wasm>")
	d.admin.register(f)
	repeatedFlag(f, &d.routes, "route", "pattern", "HTTP route the gateway maps to the function, e.g. /hello/{name}")
	repeatedFlag(f, &d.config, "config", "key=value", "configuration value the handler reads")
	f.fs.DurationVar(&d.timeout, "timeout", 0, "")
	f.doc("timeout", "duration", "", "", "wall-clock budget of one handler call, e.g. 500ms (default: the node's)")
	intFlag(f, &d.memoryMB, "memory-mb", "n", "memory cap of one instance in MiB (default: the node's)")
	intFlag(f, &d.maxWorkers, "max-workers", "n", "concurrent instances per node (default: the node's)")
	intFlag(f, &d.maxBody, "max-body-bytes", "n", "largest body a handler is given or may write (default: the node's)")
	f.String(&d.queueGroup, "queue-group", "name", "", "", "NATS queue group of the function's endpoints (default: the platform's)")
	f.String(&d.description, "description", "text", "", "", "free text stored with the version")
	f.Bool(&d.quiet, "quiet", "", false, "no upload progress on stderr")
	f.fs.DurationVar(&d.wait, "wait", 0, "")
	f.doc("wait", "duration", "", "", "wait up to this long until a node serves the new version, e.g. 1m (default: do not wait)")
	pos, err := parseArgs(f, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd.name, pos, "<name>", "<file.wasm>"); err != nil {
		return err
	}
	name, file := pos[0], pos[1]
	if err := protocol.ValidateName(name); err != nil {
		return usageErrorf(cmd.name, "%v", err)
	}
	if d.wait < 0 {
		return usageErrorf(cmd.name, "--wait: %v is negative", d.wait)
	}
	q, err := d.query(cmd.name)
	if err != nil {
		return err
	}
	c, err := d.admin.client(cmd.name)
	if err != nil {
		return err
	}
	wasm, size, closeFn, err := openModule(file)
	if err != nil {
		return fmt.Errorf("deploy %s: %w", name, err)
	}
	defer closeFn()

	// The active version, to say what this deploy drops of it: a deploy
	// stores only the routes, config and limits it is given, and an update
	// that forgets --route takes the function off its URL.
	prev := activeRecord(ctx, c, name, d.admin.Timeout)

	var body io.Reader = wasm
	var progress *progressReader
	if !d.quiet {
		progress = newProgressReader(wasm, size, a.stderr)
		body = progress
	}
	raw, err := c.do(ctx, apiRequest{
		method:      http.MethodPut,
		path:        "/v1/functions/" + url.PathEscape(name),
		query:       q,
		body:        body,
		size:        size,
		contentType: "application/wasm",
	})
	if progress != nil {
		progress.finish(err == nil)
	}
	if err != nil {
		return fmt.Errorf("deploy %s: %w", name, err)
	}
	var rec registry.Record
	if err := json.Unmarshal(raw, &rec); err != nil {
		return fmt.Errorf("deploy %s: decoding the record: %w", name, err)
	}
	if note := droppedNote(prev, rec); note != "" {
		fmt.Fprintf(a.stderr, "nylon: deploy %s: note: %s\n", name, note)
	}
	state := "active"
	if !rec.Active {
		// Deploys of one function racing each other: the highest version
		// stays active, so a lower one that finishes last is stored only.
		state = "stored, not active: a newer version was deployed meanwhile"
		if d.wait > 0 {
			return fmt.Errorf("deploy %s: version %d is stored but not active: a deploy of a newer version finished first and stays active, "+
				"so no node will serve this one (`nylon versions %s`; `nylon rollback %s --to %d` makes it active)", name, rec.Version, name, name, rec.Version)
		}
		fmt.Fprintf(a.stderr, "nylon: deploy %s: note: version %d is stored but not active: a deploy of a newer version finished first and stays active "+
			"(`nylon rollback %s --to %d` makes it active)\n", name, rec.Version, name, rec.Version)
	}
	var served servedBy
	if d.wait > 0 {
		if served, err = waitServed(ctx, c, rec.Name, rec.Version, d.wait); err != nil {
			return fmt.Errorf("deploy %s: %w", name, err)
		}
	}
	if d.admin.Output == outputJSON {
		return writeJSONBody(a.stdout, raw)
	}
	fmt.Fprintf(a.stdout, "deployed %s version %d (%s)\n", rec.Name, rec.Version, state)
	if d.wait > 0 {
		fmt.Fprintf(a.stdout, "served by %d node(s) after %v\n", served.nodes, served.after.Round(time.Millisecond))
	}
	return writeRecord(a.stdout, rec)
}

// servedBy is what waitServed found: how many nodes serve the version, and
// how long after the deploy the first one did.
type servedBy struct {
	nodes int
	after time.Duration
}

// waitPoll is how often waitServed asks the admin API for the nodes.
const waitPoll = 250 * time.Millisecond

// waitServed polls GET /v1/nodes until a node serves version of function
// (a micro service of the function whose deployment_version is version),
// for at most d. Errors of the admin API end the wait only when d is over:
// a node list can fail while NATS is busy.
func waitServed(ctx context.Context, c *adminClient, function string, version uint64, d time.Duration) (servedBy, error) {
	start := time.Now()
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var lastErr error
	answered := false // a node list came back at least once
	for {
		var list platform.NodeList
		_, err := c.getJSON(ctx, "/v1/nodes", &list)
		if err == nil {
			answered = true
			n := 0
			for _, node := range list.Nodes {
				for _, fn := range node.Functions {
					if fn.Name == function && fn.DeploymentVersion == version {
						n++
						break
					}
				}
			}
			if n > 0 {
				return servedBy{nodes: n, after: time.Since(start)}, nil
			}
		} else {
			lastErr = err
		}
		t := time.NewTimer(waitPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			if err := parent.Err(); err != nil {
				// Ctrl-C ends only the wait: a bare "context canceled"
				// would read as a deploy that did not happen.
				return servedBy{}, fmt.Errorf("version %d is stored and active; stopped waiting for a node to serve it: %w", version, err)
			}
			if !answered {
				// Not "no node serves it": nobody could tell.
				return servedBy{}, fmt.Errorf("version %d is stored and active, but the admin API's node list (GET /v1/nodes) failed throughout the %v wait: %w", version, d, lastErr)
			}
			return servedBy{}, fmt.Errorf("version %d is stored and active, but no node served it within %v; "+
				"see `nylon nodes`, and the nodes' logs and nylon_function_load_errors_total for a module that does not load", version, d)
		case <-t.C:
		}
	}
}

// prevLookupTimeout bounds the look-up of the active version before a
// deploy: it only feeds a note, so a slow admin API must not hold the
// upload up for a whole --admin-timeout first.
const prevLookupTimeout = 10 * time.Second

// activeRecord returns the active version of name, or nil when there is
// none or it could not be read (the deploy then reports the admin API's
// error itself).
func activeRecord(ctx context.Context, c *adminClient, name string, timeout time.Duration) *registry.Record {
	ctx, cancel := context.WithTimeout(ctx, min(timeout, prevLookupTimeout))
	defer cancel()
	var rec registry.Record
	if _, err := c.getJSON(ctx, "/v1/functions/"+url.PathEscape(name), &rec); err != nil {
		return nil
	}
	return &rec
}

// droppedNote says which routes, config keys and limits of prev, the
// version active before the deploy, the deployed version rec does not have;
// "" when it keeps them all or there was no prev. Config values are not
// shown: they may be secrets.
func droppedNote(prev *registry.Record, rec registry.Record) string {
	if prev == nil {
		return ""
	}
	var parts []string
	// Routes compare as the gateway files them: /a/{x} and /a/{y} are one
	// route, and giving the old spelling again would be refused.
	kept := make(map[string]bool, len(rec.Routes))
	for _, r := range rec.Routes {
		kept[protocol.RouteKey(r)] = true
	}
	var routes []string
	for _, r := range prev.Routes {
		if !kept[protocol.RouteKey(r)] {
			routes = append(routes, r)
		}
	}
	if len(routes) > 0 {
		parts = append(parts, "routes "+strings.Join(routes, ", "))
	}
	var keys []string
	for k := range prev.Config {
		if _, ok := rec.Config[k]; !ok {
			keys = append(keys, k)
		}
	}
	if len(keys) > 0 {
		sort.Strings(keys)
		parts = append(parts, "config keys "+strings.Join(keys, ", "))
	}
	var lost registry.Limits
	if rec.Limits.TimeoutMS == 0 {
		lost.TimeoutMS = prev.Limits.TimeoutMS
	}
	if rec.Limits.MemoryMB == 0 {
		lost.MemoryMB = prev.Limits.MemoryMB
	}
	if rec.Limits.MaxWorkers == 0 {
		lost.MaxWorkers = prev.Limits.MaxWorkers
	}
	if rec.Limits.MaxBodyBytes == 0 {
		lost.MaxBodyBytes = prev.Limits.MaxBodyBytes
	}
	if lost != (registry.Limits{}) {
		parts = append(parts, "limits "+formatLimits(lost))
	}
	// Records hold the group in effect (the function's name by default),
	// so a deploy without --queue-group moves the endpoints off a group
	// given before: nodes resubscribe, callers with a group set follow.
	if prev.QueueGroup != rec.QueueGroup {
		parts = append(parts, fmt.Sprintf("queue group %s (now %s)", prev.QueueGroup, rec.QueueGroup))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("version %d drops what version %d had: %s (a deploy does not inherit them: "+
		"give --route, --config, --queue-group and the limit flags again to keep them; `nylon rollback %s` restores version %d)",
		rec.Version, prev.Version, strings.Join(parts, "; "), rec.Name, prev.Version)
}

// query turns the flags into the deploy query options of the admin API.
func (d *deployFlags) query(cmd string) (url.Values, error) {
	q := url.Values{}
	for _, r := range d.routes {
		q.Add("route", r)
	}
	for _, kv := range d.config {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, usageErrorf(cmd, "--config %q: want key=value", kv)
		}
		q.Add("config", kv)
	}
	if d.timeout < 0 {
		return nil, usageErrorf(cmd, "--timeout: %v is negative", d.timeout)
	}
	if d.timeout > 0 {
		q.Set("timeout", d.timeout.String())
	}
	for _, o := range []struct {
		flag, key string
		v         int
	}{
		{"--memory-mb", "memory_mb", d.memoryMB},
		{"--max-workers", "max_workers", d.maxWorkers},
		{"--max-body-bytes", "max_body_bytes", d.maxBody},
	} {
		if o.v < 0 {
			return nil, usageErrorf(cmd, "%s: %d is negative", o.flag, o.v)
		}
		if o.v > 0 {
			q.Set(o.key, strconv.Itoa(o.v))
		}
	}
	if d.queueGroup != "" {
		q.Set("queue_group", d.queueGroup)
	}
	if d.description != "" {
		q.Set("description", d.description)
	}
	return q, nil
}

// openModule opens file ("-" is stdin, read whole so its size is known) and
// returns it with its size.
func openModule(file string) (io.Reader, int64, func(), error) {
	if file == "-" {
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("reading stdin: %w", err)
		}
		return strings.NewReader(string(b)), int64(len(b)), func() {}, nil
	}
	fh, err := os.Open(file)
	if err != nil {
		return nil, 0, nil, err
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, 0, nil, fmt.Errorf("%s: %w", file, err)
	}
	if !st.Mode().IsRegular() {
		fh.Close()
		return nil, 0, nil, fmt.Errorf("%s: not a regular file", file)
	}
	return fh, st.Size(), func() { fh.Close() }, nil
}

// progressReader reports how much of the upload was sent, on one stderr
// line rewritten in place, at most every progressEvery.
type progressReader struct {
	r     io.Reader
	total int64
	w     io.Writer

	mu      sync.Mutex
	sent    int64
	last    time.Time
	lineLen int // of the line last printed, to blank it out when rewriting
	done    bool
}

const progressEvery = 100 * time.Millisecond

func newProgressReader(r io.Reader, total int64, w io.Writer) *progressReader {
	return &progressReader{r: r, total: total, w: w}
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent += int64(n)
	if now := time.Now(); !p.done && now.Sub(p.last) >= progressEvery {
		p.last = now
		p.line(fmt.Sprintf("uploading %s / %s", formatBytes(p.sent), formatBytes(p.total)))
	}
	return n, err
}

// finish ends the progress line: "uploaded 2.9 MB" once the server
// accepted the module, or how far the upload got.
func (p *progressReader) finish(ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = true
	switch {
	case ok:
		p.line(fmt.Sprintf("uploaded %s", formatBytes(p.total)))
	case p.sent > 0:
		p.line(fmt.Sprintf("sent %s / %s", formatBytes(p.sent), formatBytes(p.total)))
	default:
		return
	}
	io.WriteString(p.w, "\n")
}

// line rewrites the progress line with s, padding over a longer old line.
func (p *progressReader) line(s string) {
	pad := max(0, p.lineLen-len(s))
	fmt.Fprintf(p.w, "\r%s%s", s, strings.Repeat(" ", pad))
	p.lineLen = len(s)
}

// writeRecord prints a deployment record for people.
func writeRecord(w io.Writer, rec registry.Record) error {
	tw := newTable(w)
	row := func(k, v string) { fmt.Fprintf(tw, "  %s\t%s\n", k, v) }
	row("name", rec.Name)
	active := ""
	if rec.Active {
		active = " (active)"
	}
	row("version", strconv.FormatUint(rec.Version, 10)+active)
	row("sha256", rec.SHA256)
	row("size", formatBytes(rec.Size))
	row("phases", orDash(strings.Join(rec.Phases, ", ")))
	row("routes", orDash(strings.Join(rec.Routes, ", ")))
	if len(rec.Config) > 0 {
		keys := make([]string, 0, len(rec.Config))
		for k := range rec.Config {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		kvs := make([]string, len(keys))
		for i, k := range keys {
			kvs[i] = k + "=" + rec.Config[k]
		}
		row("config", strings.Join(kvs, ", "))
	}
	row("limits", formatLimits(rec.Limits))
	if rec.QueueGroup != "" {
		row("queue group", rec.QueueGroup)
	}
	if rec.Description != "" {
		row("description", rec.Description)
	}
	row("created", formatTime(rec.CreatedAt))
	if rec.CreatedBy != "" {
		row("created by", rec.CreatedBy)
	}
	return tw.Flush()
}

func formatLimits(l registry.Limits) string {
	var parts []string
	if l.TimeoutMS > 0 {
		parts = append(parts, "timeout "+l.Timeout().String())
	}
	if l.MemoryMB > 0 {
		parts = append(parts, fmt.Sprintf("memory %d MiB", l.MemoryMB))
	}
	if l.MaxWorkers > 0 {
		parts = append(parts, fmt.Sprintf("max workers %d", l.MaxWorkers))
	}
	if l.MaxBodyBytes > 0 {
		parts = append(parts, "max body "+formatBytes(l.MaxBodyBytes))
	}
	if len(parts) == 0 {
		return "node defaults"
	}
	return strings.Join(parts, ", ")
}

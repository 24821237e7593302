package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/protocol"
)

func dlqReplayCommand(cmd command) command {
	cmd.summary = "replay dead letters: send each request to its function again, one at a time"
	cmd.help = `replay fetches each dead letter by its sequence (the SEQ of nylon dlq ls),
or with --all every one of the prefix, oldest first, and requests its phase
subject with the request exactly as it was sent: the same request_id, so
the node that ran it, if it did and still remembers its reply (dedup window,
default 2m), answers with that reply instead of running the handler again.
The answer is printed, not sent to the original client, which got its error
long ago: replaying is for what the handler does besides answering.

It sends traceparent (a new span of the letter's trace), Nylon-Env (--env)
and Nylon-Timeout-Ms (--timeout). With --delete a letter is removed once
its replay was answered, an Error of the handler included; a transport
failure (no node, no answer, a node's service error) never removes it.
Exit 1 when any replay failed so.

Without --nats it connects to ` + defaultClientNATS + `.

  nylon dlq replay 17 18
  nylon dlq replay --all --function hello --delete`
	return cmd
}

// dlqReplayOptions are the flags of `nylon dlq replay`.
type dlqReplayOptions struct {
	conn     clientNATS
	output   string
	all      bool
	function string
	phase    string
	limit    int
	timeout  time.Duration
	delete   bool
}

// newDLQReplayFlags registers the flags of `dlq replay`, for parsing and
// for `nylon dlq --help` alike.
func newDLQReplayFlags(a *app, cmd command) (*flagSet, *dlqReplayOptions) {
	var o dlqReplayOptions
	f := newFlagSet(a, cmd, "replay [flags] <seq>... | --all")
	o.conn.register(f)
	registerOutput(f, &o.output)
	f.Bool(&o.all, "all", "", false, "replay every dead letter of the prefix, oldest first (up to --limit)")
	f.String(&o.function, "function", "name", "", "", "with --all: only the dead letters of this function")
	f.String(&o.phase, "phase", "phase", "", "", "with --all: only the dead letters of this phase (request_filter, ..., events)")
	f.Int(&o.limit, "limit", "n", "", 100, "with --all: how many of the oldest dead letters to replay (at most 1000)")
	f.Duration(&o.timeout, "timeout", "", 5*time.Second, "how long to wait for each answer")
	f.Bool(&o.delete, "delete", "", false, "remove each dead letter whose replay was answered (not after a transport failure)")
	return f, &o
}

// Results of one replay.
const (
	replayOK          = "ok"           // answered Next or End
	replayPluginError = "plugin_error" // answered Error: the handler ran and failed
	replayFailed      = "failed"       // a transport failure: nothing answered the request
)

// replayResult is one replayed dead letter; -o json prints a list of them.
type replayResult struct {
	Sequence     uint64      `json:"sequence"`
	Function     string      `json:"function"`
	Phase        string      `json:"phase"`
	RequestID    string      `json:"request_id"`
	Subject      string      `json:"subject"`
	Traceparent  string      `json:"traceparent"` // the one sent: a new span of the letter's trace
	Result       string      `json:"result"`      // ok, plugin_error or failed
	Action       string      `json:"action,omitempty"`
	Error        string      `json:"error,omitempty"` // the handler's Error text, or why the replay failed
	ServiceError *serviceErr `json:"service_error,omitempty"`
	DurationMS   float64     `json:"duration_ms"`
	Deleted      bool        `json:"deleted"`
	DeleteError  string      `json:"delete_error,omitempty"`
}

func runDLQReplay(ctx context.Context, a *app, cmd command, args []string) error {
	f, o := newDLQReplayFlags(a, cmd)
	pos, err := parseArgs(f, args)
	if err != nil {
		return err
	}
	seqs, filter, err := o.check(cmd.name, pos)
	if err != nil {
		return err
	}
	if err := checkOutput(cmd.name, o.output); err != nil {
		return err
	}
	if err := o.conn.validate(cmd.name); err != nil {
		return err
	}
	c, err := o.conn.connect(ctx, "nylon dlq")
	if err != nil {
		return fmt.Errorf("dlq replay: %w", err)
	}
	defer closeConn(c)
	prefix := o.conn.prefix()
	s, err := gateway.OpenDLQ(ctx, c.JetStream(), prefix)
	if err != nil {
		return dlqStreamError("dlq replay", &o.conn, err)
	}
	var next func() (*jetstream.RawStreamMsg, error)
	if o.all {
		next = dlqScan(ctx, s, filter, o.limit)
	} else {
		// Every sequence is fetched before any is replayed, so that a
		// mistyped one replays nothing.
		msgs := make([]*jetstream.RawStreamMsg, 0, len(seqs))
		for _, seq := range seqs {
			m, err := getDeadLetter(ctx, s, prefix, seq)
			if err != nil {
				return err
			}
			msgs = append(msgs, m)
		}
		next = func() (*jetstream.RawStreamMsg, error) {
			if len(msgs) == 0 {
				return nil, nil
			}
			m := msgs[0]
			msgs = msgs[1:]
			return m, nil
		}
	}

	results := []replayResult{}
	var runErr error
	for {
		m, err := next()
		if err != nil {
			runErr = fmt.Errorf("dlq replay: %w", err)
			break
		}
		if m == nil {
			break
		}
		r := replayLetter(ctx, c.NC, prefix, o, gateway.ParseDeadLetter(prefix, m), m)
		if ctx.Err() != nil {
			// Interrupted: the letter's replay is unknown, and it is kept.
			runErr = fmt.Errorf("dlq replay: interrupted at sequence %d after %d replayed: %w", m.Sequence, len(results), ctx.Err())
			break
		}
		if o.delete && r.Result != replayFailed {
			// A handler's Error is an answer too: replaying it again
			// would most likely get the same one.
			if err := s.DeleteMsg(ctx, m.Sequence); err != nil {
				r.DeleteError = err.Error()
			} else {
				r.Deleted = true
			}
		}
		results = append(results, r)
	}
	if err := writeReplay(a.stdout, o.output, results); err != nil {
		return err
	}
	if runErr != nil {
		return runErr
	}
	return replayError(results)
}

// check validates the arguments and flags that need no connection, and
// returns the sequences to replay (without --all) or the subject filter of
// --all.
func (o *dlqReplayOptions) check(cmd string, pos []string) (seqs []uint64, filter string, err error) {
	switch {
	case !o.all && len(pos) == 0:
		return nil, "", usageErrorf(cmd, "missing <seq> (the SEQ of nylon dlq ls), or --all")
	case o.all && len(pos) > 0:
		return nil, "", usageErrorf(cmd, "--all replays every dead letter: give it no sequence (got %q)", pos[0])
	case !o.all && (o.function != "" || o.phase != ""):
		return nil, "", usageErrorf(cmd, "--function and --phase filter --all; give them with --all, not with sequences")
	}
	if o.limit < 1 || o.limit > 1000 {
		return nil, "", usageErrorf(cmd, "--limit: %d: want 1 to 1000", o.limit)
	}
	if o.timeout <= 0 {
		return nil, "", usageErrorf(cmd, "--timeout: %v must be positive", o.timeout)
	}
	for _, p := range pos {
		seq, err := strconv.ParseUint(p, 10, 64)
		if err != nil || seq == 0 {
			return nil, "", usageErrorf(cmd, "sequence %q: want a positive integer (the SEQ of nylon dlq ls)", p)
		}
		// A sequence given twice is replayed once.
		if !slices.Contains(seqs, seq) {
			seqs = append(seqs, seq)
		}
	}
	if !o.all {
		return seqs, "", nil
	}
	fn, phase := "*", "*"
	if o.function != "" {
		if err := protocol.ValidateName(o.function); err != nil {
			return nil, "", usageErrorf(cmd, "--function: %v", err)
		}
		fn = o.function
	}
	if o.phase != "" {
		p, err := protocol.ParsePhase(o.phase)
		if err != nil {
			return nil, "", usageErrorf(cmd, "--phase: %v", err)
		}
		phase = p.String()
	}
	prefix := o.conn.prefix()
	if fn == "*" && phase == "*" {
		return nil, protocol.DLQWildcard(prefix), nil
	}
	return nil, prefix + ".dlq." + fn + "." + phase, nil
}

// getDeadLetter fetches the letter seq of s, refusing anything that is not
// a dead letter of prefix that replay can send.
func getDeadLetter(ctx context.Context, s jetstream.Stream, prefix string, seq uint64) (*jetstream.RawStreamMsg, error) {
	name := gateway.DLQStreamName(prefix)
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("dlq replay: sequence %d: no dead letter with it in %s (replayed with --delete, dropped by the stream's limits, or never there: see nylon dlq ls); nothing replayed", seq, name)
	}
	if err != nil {
		return nil, fmt.Errorf("dlq replay: sequence %d of %s: %w", seq, name, err)
	}
	if st, err := protocol.ParseSubject(prefix, m.Subject); err != nil || !st.DLQ {
		return nil, fmt.Errorf("dlq replay: sequence %d of %s: subject %q is not a dead letter of prefix %s ({prefix}.dlq.{function}.{phase}); nothing replayed", seq, name, m.Subject, prefix)
	}
	return m, nil
}

// dlqScan returns an iterator over the letters of s on subject filter,
// oldest first, at most limit of them; it ends (nil, nil) at the last
// letter the stream held when it was opened, so letters arriving meanwhile
// wait for the next run.
func dlqScan(ctx context.Context, s jetstream.Stream, filter string, limit int) func() (*jetstream.RawStreamMsg, error) {
	st := s.CachedInfo().State
	seq, n := st.FirstSeq, 0
	return func() (*jetstream.RawStreamMsg, error) {
		if st.Msgs == 0 || n >= limit || seq > st.LastSeq {
			return nil, nil
		}
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s from sequence %d: %w", s.CachedInfo().Config.Name, seq, err)
		}
		if m.Sequence > st.LastSeq {
			return nil, nil
		}
		seq, n = m.Sequence+1, n+1
		return m, nil
	}
}

// replayLetter sends the letter's request to its phase subject and waits
// for the answer.
func replayLetter(ctx context.Context, nc *nats.Conn, prefix string, o *dlqReplayOptions, d gateway.DeadLetter, m *jetstream.RawStreamMsg) replayResult {
	r := replayResult{Sequence: d.Sequence, Function: d.Function, Phase: d.Phase.String(), RequestID: d.RequestID.String()}
	st, err := protocol.ParseSubject(prefix, m.Subject)
	if err != nil || !st.DLQ {
		// Only --all meets one: the stream takes anything under {prefix}.dlq.>.
		r.Function, r.Phase = "", ""
		r.Result, r.Error = replayFailed, fmt.Sprintf("subject %q is not {prefix}.dlq.{function}.{phase}: nowhere to send it", m.Subject)
		return r
	}
	r.Subject = protocol.PhaseSubject(prefix, st.Function, st.Phase)
	// The letter's trace, so the replay shows next to the failed call in
	// the nodes' logs; a letter without one gets a fresh trace.
	trace := protocol.ContinueTrace(d.Traceparent)
	r.Traceparent = trace.Next()
	ans, err := callPhase(ctx, nc, r.Subject, m.Data, r.Traceparent, o.conn.Env, o.timeout)
	r.DurationMS = float64(ans.elapsed.Microseconds()) / 1000
	r.Result = replayFailed
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		r.Error = "no node serves " + r.Subject
		return r
	case errors.Is(err, context.DeadlineExceeded):
		// The node may still run it: its logs carry the traceparent.
		r.Error = fmt.Sprintf("no answer within %v", o.timeout)
		return r
	case errors.Is(err, protocol.ErrDecode):
		r.Error = fmt.Sprintf("bad reply: %v", err)
		return r
	case err != nil:
		r.Error = err.Error()
		return r
	case ans.service != nil:
		r.ServiceError = ans.service
		r.Error = fmt.Sprintf("service error %s: %s", ans.service.Code, ans.service.Description)
		return r
	}
	resp := ans.resp
	// As the gateway does: another request's answer is no answer to this one.
	if !d.RequestID.IsZero() && resp.RequestID != d.RequestID {
		r.Error = fmt.Sprintf("bad reply: request_id %s, want %s", resp.RequestID, d.RequestID)
		return r
	}
	r.Action = resp.Action.String()
	if resp.Action == protocol.ActionError {
		r.Result, r.Error = replayPluginError, resp.Error
		return r
	}
	r.Result = replayOK
	return r
}

// writeReplay prints the results: a table and a summary line, or JSON.
func writeReplay(w io.Writer, output string, results []replayResult) error {
	if output == outputJSON {
		return writeJSONValue(w, results)
	}
	if len(results) == 0 {
		_, err := fmt.Fprintln(w, "no dead letters")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "SEQ\tFUNCTION\tPHASE\tREQUEST_ID\tRESULT")
	var ok, plugin, failed, deleted int
	for _, r := range results {
		var res string
		switch r.Result {
		case replayOK:
			ok++
			res = r.Action
		case replayPluginError:
			plugin++
			res = "Error: " + r.Error
		default:
			failed++
			res = "failed: " + r.Error
		}
		switch {
		case r.Deleted:
			deleted++
			res += " (deleted)"
		case r.DeleteError != "":
			res += " (not deleted: " + r.DeleteError + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", r.Sequence, orDash(r.Function), orDash(r.Phase), r.RequestID,
			terminalText(res, false))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d replayed: %d ok, %d handler error, %d failed; %d deleted\n",
		len(results), ok, plugin, failed, deleted)
	return err
}

// replayError is the command's error when a replay failed or a letter
// could not be deleted, after the results are printed.
func replayError(results []replayResult) error {
	var failed, notDeleted int
	for _, r := range results {
		if r.Result == replayFailed {
			failed++
		}
		if r.DeleteError != "" {
			notDeleted++
		}
	}
	switch {
	case failed > 0:
		return fmt.Errorf("dlq replay: %d of %d dead letters got no answer and are kept; fix the cause and replay them again", failed, len(results))
	case notDeleted > 0:
		return fmt.Errorf("dlq replay: %d of %d replayed dead letters could not be deleted", notDeleted, len(results))
	}
	return nil
}

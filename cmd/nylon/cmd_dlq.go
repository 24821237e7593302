package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nylon-functions/nylon/gateway"
)

func dlqCommand() command {
	return command{
		name:    "dlq",
		summary: "inspect and replay the dead letters: gateway requests that failed their last attempt",
		run:     runDLQ,
	}
}

// dlqLsCommand and dlqReplayCommand are dlq as each subcommand's --help
// shows it: the same name (usage errors point at `nylon dlq --help`,
// which shows both), its own summary and help.
func dlqLsCommand(cmd command) command {
	cmd.summary = "list the newest dead letters, oldest first"
	cmd.help = `Without --nats it connects to ` + defaultClientNATS + `.`
	return cmd
}

func runDLQ(ctx context.Context, a *app, cmd command, args []string) error {
	if len(args) == 0 {
		return usageErrorf(cmd.name, "missing subcommand (ls or replay)")
	}
	switch args[0] {
	case "ls":
		return runDLQLs(ctx, a, dlqLsCommand(cmd), args[1:])
	case "replay":
		return runDLQReplay(ctx, a, dlqReplayCommand(cmd), args[1:])
	case "-h", "-help", "--help":
		f, _ := newDLQLsFlags(a, dlqLsCommand(cmd))
		f.PrintUsage(a.stdout)
		fmt.Fprintln(a.stdout)
		r, _ := newDLQReplayFlags(a, dlqReplayCommand(cmd))
		r.PrintUsage(a.stdout)
		return errHelp
	}
	return usageErrorf(cmd.name, "unknown subcommand %q (want ls or replay)", args[0])
}

// dlqEntry is one dead letter as -o json prints it.
type dlqEntry struct {
	Sequence    uint64 `json:"sequence"`
	Time        string `json:"time"`
	Function    string `json:"function"`
	Phase       string `json:"phase"`
	Plugin      string `json:"plugin,omitempty"`
	Route       string `json:"route,omitempty"`
	Kind        string `json:"kind"`
	Attempts    int    `json:"attempts"`
	Error       string `json:"error"`
	RequestID   string `json:"request_id"`
	SessionID   uint32 `json:"session_id,omitempty"`
	Traceparent string `json:"traceparent,omitempty"`
	Subject     string `json:"subject"`
	PayloadSize int    `json:"payload_bytes"`
}

// dlqLsOptions are the flags of `nylon dlq ls`.
type dlqLsOptions struct {
	conn   clientNATS
	output string
	limit  int
}

// newDLQLsFlags registers the flags of `dlq ls`, for parsing and for
// `nylon dlq --help` alike.
func newDLQLsFlags(a *app, cmd command) (*flagSet, *dlqLsOptions) {
	var o dlqLsOptions
	f := newFlagSet(a, cmd, "ls [flags]")
	o.conn.register(f)
	registerOutput(f, &o.output)
	f.Int(&o.limit, "limit", "n", "", 100, "how many of the newest dead letters to show (at most 1000)")
	return f, &o
}

func runDLQLs(ctx context.Context, a *app, cmd command, args []string) error {
	f, o := newDLQLsFlags(a, cmd)
	pos, err := parseArgs(f, args)
	if err != nil {
		return err
	}
	conn, output, limit := &o.conn, o.output, o.limit
	if err := wantArgs(cmd.name, pos); err != nil {
		return err
	}
	if err := checkOutput(cmd.name, output); err != nil {
		return err
	}
	if limit < 1 || limit > 1000 {
		return usageErrorf(cmd.name, "--limit: %d: want 1 to 1000", limit)
	}
	if err := conn.validate(cmd.name); err != nil {
		return err
	}
	c, err := conn.connect(ctx, "nylon dlq")
	if err != nil {
		return fmt.Errorf("dlq ls: %w", err)
	}
	defer closeConn(c)
	prefix := conn.prefix()
	letters, err := gateway.ListDLQ(ctx, c.JetStream(), prefix, limit)
	if err != nil {
		return dlqStreamError("dlq ls", conn, err)
	}
	entries := make([]dlqEntry, len(letters))
	for i, d := range letters {
		entries[i] = dlqEntry{
			Sequence: d.Sequence, Time: d.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
			Function: d.Function, Phase: d.Phase.String(), Plugin: d.Plugin, Route: d.Route,
			Kind: d.Kind, Attempts: d.Attempts, Error: d.Error, RequestID: d.RequestID.String(),
			SessionID: d.SessionID, Traceparent: d.Traceparent, Subject: d.Subject, PayloadSize: len(d.Payload),
		}
	}
	if output == outputJSON {
		return writeJSONValue(a.stdout, entries)
	}
	if len(entries) == 0 {
		fmt.Fprintln(a.stdout, "no dead letters")
		return nil
	}
	tw := newTable(a.stdout)
	// SEQ first: it is what `nylon dlq replay <seq>` takes.
	fmt.Fprintln(tw, "SEQ\tTIME\tFUNCTION\tPHASE\tKIND\tATTEMPTS\tERROR\tREQUEST ID")
	for i, d := range letters {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Sequence, formatTime(d.Time), orDash(d.Function), entries[i].Phase,
			orDash(terminalText(d.Kind, false)), strconv.Itoa(d.Attempts), orDash(terminalText(d.Error, false)), entries[i].RequestID)
	}
	return tw.Flush()
}

// dlqStreamError words a failure to open or read the dead-letter stream
// of conn's prefix; a missing stream says whose gateway would make it. A
// stream removed while gateways run (`nats stream rm`, the documented way
// to empty it) is missing too until the next dead letter makes it again,
// so "no gateway has started" alone would send the operator looking for
// a gateway that is there.
func dlqStreamError(what string, conn *clientNATS, err error) error {
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("%s: %w", what, err)
	}
	prefix := conn.prefix()
	whose := "of env " + conn.Env
	if conn.SubjectPrefix != "" {
		whose = "on subject prefix " + prefix
	}
	return fmt.Errorf("%s: no dead-letter stream %s: no gateway %s has started yet, or the stream was removed "+
		"and no dead letter has come since (a running gateway makes it again with the next one)",
		what, gateway.DLQStreamName(prefix), whose)
}

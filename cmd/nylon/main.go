package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	// Before anything else: a SIGHUP from here on neither kills a serve that
	// is still starting nor gets lost (see hangups).
	hup := catchHangups()
	// The first SIGINT or SIGTERM cancels ctx and starts a drain; a second
	// kills the process at once, unless serve holds it (see interrupts).
	ctx, in := notifyInterrupts(context.Background())
	a := &app{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, interrupts: in, hangups: hup}
	os.Exit(a.exitCode(a.dispatch(ctx, os.Args[1:])))
}

// app is what every command runs with: its output streams and environment.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// interrupts are the process's signals after the first, which cancels
	// ctx; nil when tests call run.
	interrupts *interrupts
	// hangups is SIGHUP, caught since main started; nil when tests call
	// run.
	hangups *hangups
}

// command is one subcommand of nylon. Adding one is a file with a
// constructor returning this value plus an entry in commands().
type command struct {
	name    string
	summary string // one line, shown in "nylon --help"
	help    string // optional longer text for "nylon <name> --help"
	run     func(ctx context.Context, a *app, cmd command, args []string) error
	// keepsHangups: the command handles SIGHUP itself (serve reloads on
	// it). Others get its default action back: a hang-up ends them, as it
	// ends any command in a terminal that closes.
	keepsHangups bool
}

// commands is the table of subcommands, in the order "nylon --help" lists them.
func commands() []command {
	return []command{
		serveCommand(),
		deployCommand(),
		lsCommand(),
		getCommand(),
		versionsCommand(),
		rollbackCommand(),
		rmCommand(),
		nodesCommand(),
		invokeCommand(),
		dlqCommand(),
		benchCommand(),
		versionCommand(),
	}
}

// run executes the command line args (without the program name) and returns
// the process exit code: 0 on success or help, 2 on a usage error, 1 on any
// other failure. Tests call it directly; it gets no signals but ctx's
// cancellation (main builds its app itself, with the process's interrupts).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr, getenv: os.Getenv}
	return a.exitCode(a.dispatch(ctx, args))
}

func (a *app) dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 {
		a.printUsage(a.stderr)
		return &usageError{err: errors.New("no command given")}
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help":
		a.printUsage(a.stdout)
		return errHelp
	case "help":
		if len(rest) == 0 || rest[0] == "-h" || rest[0] == "-help" || rest[0] == "--help" {
			a.printUsage(a.stdout)
			return errHelp
		}
		name, rest = rest[0], []string{"--help"}
	}
	for _, c := range commands() {
		if c.name == name {
			if !c.keepsHangups {
				a.hangups.restore()
			}
			return c.run(ctx, a, c, rest)
		}
	}
	return &usageError{err: fmt.Errorf("unknown command %q", name)}
}

func (a *app) exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.As(err, &ue):
		prefix, help := "nylon", "nylon --help"
		if ue.cmd != "" {
			prefix, help = "nylon "+ue.cmd, "nylon "+ue.cmd+" --help"
		}
		fmt.Fprintf(a.stderr, "%s: %v\nRun '%s' for usage.\n", prefix, ue.err, help)
		return 2
	default:
		fmt.Fprintf(a.stderr, "nylon: %v\n", err)
		return 1
	}
}

func (a *app) printUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString("Nylon Functions: a serverless function platform on NATS.\n\n")
	b.WriteString("Usage: nylon <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun 'nylon <command> --help' for the flags of a command.\n")
	io.WriteString(w, b.String())
}

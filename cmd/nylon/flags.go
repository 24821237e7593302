package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// errHelp is returned when --help or -h was asked for; usage is already
// printed to stdout and the exit code is 0.
var errHelp = errors.New("help requested")

// usageError is a bad command line: exit code 2, with a hint to --help.
type usageError struct {
	cmd string // "serve"; "" for the top level
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, err: fmt.Errorf(format, args...)}
}

// flagSet is a flag.FlagSet for one subcommand whose flags fall back to an
// environment variable: a flag on the command line wins over the variable,
// which wins over the default. Every command builds one, so every command
// gets the same --help layout, listing each flag with its variable and
// default.
type flagSet struct {
	fs      *flag.FlagSet
	a       *app
	cmd     command
	args    string // synopsis after the command name, e.g. "[flags]"
	docs    []flagDoc
	envErrs []error
}

type flagDoc struct {
	name, arg, usage, env, def string
}

// newFlagSet returns the flag set of cmd; args is the synopsis shown after
// "nylon <cmd>", such as "[flags] <name> <file.wasm>".
func newFlagSet(a *app, cmd command, args string) *flagSet {
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	// Errors and usage are printed by Parse and run, not by package flag.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{fs: fs, a: a, cmd: cmd, args: args}
}

// lookup returns the environment value of env, and whether it is set to a
// non-empty value (an empty variable counts as unset, as shells often export
// empty values).
func (f *flagSet) lookup(env string) (string, bool) {
	if env == "" {
		return "", false
	}
	v := f.a.getenv(env)
	return v, v != ""
}

func (f *flagSet) doc(name, arg, env, def, usage string) {
	f.docs = append(f.docs, flagDoc{name: name, arg: arg, usage: usage, env: env, def: def})
}

// String defines a string flag stored in p, falling back to env.
func (f *flagSet) String(p *string, name, arg, env, def, usage string) {
	v := def
	if e, ok := f.lookup(env); ok {
		v = e
	}
	f.fs.StringVar(p, name, v, usage)
	f.doc(name, arg, env, def, usage)
}

// Duration defines a duration flag stored in p, falling back to env.
func (f *flagSet) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	v := def
	if e, ok := f.lookup(env); ok {
		d, err := time.ParseDuration(e)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("%s=%q: not a duration (like 30s or 2m)", env, e))
		} else {
			v = d
		}
	}
	f.fs.DurationVar(p, name, v, usage)
	f.doc(name, "duration", env, def.String(), usage)
}

// Bool defines a boolean flag stored in p, falling back to env.
func (f *flagSet) Bool(p *bool, name, env string, def bool, usage string) {
	v := def
	if e, ok := f.lookup(env); ok {
		b, err := strconv.ParseBool(e)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("%s=%q: not a boolean (true or false)", env, e))
		} else {
			v = b
		}
	}
	f.fs.BoolVar(p, name, v, usage)
	def2 := ""
	if def {
		def2 = "true"
	}
	f.doc(name, "", env, def2, usage)
}

// Int defines an integer flag stored in p, falling back to env.
func (f *flagSet) Int(p *int, name, arg, env string, def int, usage string) {
	*p = def
	if e, ok := f.lookup(env); ok {
		n, err := strconv.Atoi(e)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("%s=%q: not an integer", env, e))
		} else {
			*p = n
		}
	}
	f.fs.Var((*intValue)(p), name, usage)
	f.doc(name, arg, env, strconv.Itoa(def), usage)
}

// List defines a comma-separated list flag stored in p, falling back to env.
// Empty items are dropped, so "a,,b" and "a, b" mean a and b.
func (f *flagSet) List(p *[]string, name, arg, env string, def []string, usage string) {
	*p = def
	if e, ok := f.lookup(env); ok {
		*p = splitList(e)
	}
	f.fs.Func(name, usage, func(s string) error {
		*p = splitList(s)
		return nil
	})
	f.doc(name, arg, env, strings.Join(def, ","), usage)
}

func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// Parse parses args. On --help it prints usage to stdout and returns
// errHelp; a bad flag or environment value is a *usageError.
func (f *flagSet) Parse(args []string) error {
	err := f.fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		f.PrintUsage(f.a.stdout)
		return errHelp
	case err != nil:
		return &usageError{cmd: f.cmd.name, err: err}
	}
	if len(f.envErrs) > 0 {
		return &usageError{cmd: f.cmd.name, err: errors.Join(f.envErrs...)}
	}
	return nil
}

// isSet reports whether the flag name was given on the command line or by
// its environment variable.
func (f *flagSet) isSet(name string) bool {
	set := false
	f.fs.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	if set {
		return true
	}
	for _, d := range f.docs {
		if d.name == name {
			_, ok := f.lookup(d.env)
			return ok
		}
	}
	return false
}

// Args returns the arguments left after the flags.
func (f *flagSet) Args() []string { return f.fs.Args() }

// PrintUsage writes the command's synopsis, summary and flags to w. The
// rule of precedence is told only when some flag has a variable: a command
// without any (version, bench) has nothing to tell.
func (f *flagSet) PrintUsage(w io.Writer) {
	synopsis := strings.TrimSpace("nylon " + f.cmd.name + " " + f.args)
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", synopsis, f.cmd.summary)
	if f.cmd.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(f.cmd.help))
	}
	header := "Flags:"
	if slices.ContainsFunc(f.docs, func(d flagDoc) bool { return d.env != "" }) {
		header = "Flags (a flag wins over its environment variable, which wins over the default):"
	}
	fmt.Fprintf(w, "\n%s\n", header)
	for _, d := range f.docs {
		fmt.Fprintf(w, "  --%s", d.name)
		if d.arg != "" {
			fmt.Fprintf(w, " %s", d.arg)
		}
		fmt.Fprintf(w, "\n        %s\n", d.usage)
		var meta []string
		if d.env != "" {
			meta = append(meta, "env "+d.env)
		}
		if d.def != "" {
			meta = append(meta, "default "+d.def)
		}
		if len(meta) > 0 {
			fmt.Fprintf(w, "        (%s)\n", strings.Join(meta, ", "))
		}
	}
	fmt.Fprintf(w, "  -h, --help\n        show this help\n")
}

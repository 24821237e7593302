package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

func versionCommand() command {
	return command{
		name:    "version",
		summary: "print the version of nylon and of its Go, wazero and NATS libraries",
		run:     runVersion,
	}
}

func runVersion(_ context.Context, a *app, cmd command, args []string) error {
	f := newFlagSet(a, cmd, "")
	if err := f.Parse(args); err != nil {
		return err
	}
	if len(f.Args()) > 0 {
		return usageErrorf(cmd.name, "unexpected argument %q", f.Args()[0])
	}
	fmt.Fprint(a.stdout, versionText())
	return nil
}

// versionText reads the build information the Go toolchain stamps into the
// binary: module version, VCS commit and time, and dependency versions.
func versionText() string {
	var b strings.Builder
	info, ok := debug.ReadBuildInfo()
	version, commit, built := "(unknown)", "(unknown)", ""
	deps := map[string]string{}
	if ok {
		if info.Main.Version != "" {
			version = info.Main.Version
		}
		var modified bool
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.time":
				built = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified {
			commit += " (modified)"
		}
		for _, d := range info.Deps {
			v := d.Version
			if d.Replace != nil {
				v = d.Replace.Version + " (replaced by " + d.Replace.Path + ")"
			}
			deps[d.Path] = v
		}
	}
	fmt.Fprintf(&b, "nylon %s\n", version)
	fmt.Fprintf(&b, "  commit       %s\n", commit)
	if built != "" {
		fmt.Fprintf(&b, "  commit time  %s\n", built)
	}
	fmt.Fprintf(&b, "  go           %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	// Modules whose versions are reported, as they are linked in.
	modules := []struct{ label, path string }{
		{"wazero", "github.com/tetratelabs/wazero"},
		{"nats.go", "github.com/nats-io/nats.go"},
		{"nats-server", "github.com/nats-io/nats-server/v2"},
	}
	for _, m := range modules {
		v, ok := deps[m.path]
		if !ok {
			v = "(not linked into this build)"
		}
		fmt.Fprintf(&b, "  %-12s %s\n", m.label, v)
	}
	return b.String()
}

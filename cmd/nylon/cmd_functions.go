package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

// The commands that read and change deployments through the admin API.

func lsCommand() command {
	return command{name: "ls", summary: "list the deployed functions and their active versions", run: runLs}
}

func getCommand() command {
	return command{name: "get", summary: "show the active version of a function", run: runGet}
}

func versionsCommand() command {
	return command{name: "versions", summary: "list the retained versions of a function, the active one marked", run: runVersions}
}

func rollbackCommand() command {
	return command{
		name:    "rollback",
		summary: "make an earlier version of a function active again",
		help:    "Without --to, the version before the active one becomes active.",
		run:     runRollback,
	}
}

func rmCommand() command {
	return command{
		name:    "rm",
		summary: "delete a function: every version stops being served",
		run:     runRm,
	}
}

func nodesCommand() command {
	return command{name: "nodes", summary: "list the nodes serving functions and what each serves", run: runNodes}
}

// adminCommand parses the flags of a command that takes the positional
// arguments names (each a function name) and returns its client and
// arguments.
func adminCommand(a *app, cmd command, args []string, admin *adminFlags, f *flagSet, names ...string) (*adminClient, []string, error) {
	admin.register(f)
	pos, err := parseArgs(f, args)
	if err != nil {
		return nil, nil, err
	}
	if err := wantArgs(cmd.name, pos, names...); err != nil {
		return nil, nil, err
	}
	for _, p := range pos {
		if err := protocol.ValidateName(p); err != nil {
			return nil, nil, usageErrorf(cmd.name, "%v", err)
		}
	}
	c, err := admin.client(cmd.name)
	return c, pos, err
}

func functionPath(name string) string { return "/v1/functions/" + url.PathEscape(name) }

func runLs(ctx context.Context, a *app, cmd command, args []string) error {
	var admin adminFlags
	c, _, err := adminCommand(a, cmd, args, &admin, newFlagSet(a, cmd, "[flags]"))
	if err != nil {
		return err
	}
	var list platform.FunctionList
	raw, err := c.getJSON(ctx, "/v1/functions", &list)
	if err != nil {
		return fmt.Errorf("ls: %w", err)
	}
	if admin.Output == outputJSON {
		return writeJSONBody(a.stdout, raw)
	}
	if len(list.Functions) == 0 {
		fmt.Fprintln(a.stdout, "no functions deployed")
		return nil
	}
	tw := newTable(a.stdout)
	fmt.Fprintln(tw, "NAME\tVERSION\tPHASES\tROUTES\tCREATED")
	for _, r := range list.Functions {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", r.Name, r.Version, orDash(strings.Join(r.Phases, ",")),
			orDash(strings.Join(r.Routes, ",")), formatTime(r.CreatedAt))
	}
	return tw.Flush()
}

func runGet(ctx context.Context, a *app, cmd command, args []string) error {
	var admin adminFlags
	c, pos, err := adminCommand(a, cmd, args, &admin, newFlagSet(a, cmd, "[flags] <name>"), "<name>")
	if err != nil {
		return err
	}
	var rec registry.Record
	raw, err := c.getJSON(ctx, functionPath(pos[0]), &rec)
	if err != nil {
		return fmt.Errorf("get %s: %w", pos[0], err)
	}
	if admin.Output == outputJSON {
		return writeJSONBody(a.stdout, raw)
	}
	return writeRecord(a.stdout, rec)
}

func runVersions(ctx context.Context, a *app, cmd command, args []string) error {
	var admin adminFlags
	c, pos, err := adminCommand(a, cmd, args, &admin, newFlagSet(a, cmd, "[flags] <name>"), "<name>")
	if err != nil {
		return err
	}
	var list platform.VersionList
	raw, err := c.getJSON(ctx, functionPath(pos[0])+"/versions", &list)
	if err != nil {
		return fmt.Errorf("versions %s: %w", pos[0], err)
	}
	if admin.Output == outputJSON {
		return writeJSONBody(a.stdout, raw)
	}
	tw := newTable(a.stdout)
	fmt.Fprintln(tw, "ACTIVE\tVERSION\tSHA256\tSIZE\tPHASES\tCREATED\tDESCRIPTION")
	for _, r := range list.Versions {
		mark := ""
		if r.Active || r.Version == list.Active {
			mark = "*"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", mark, r.Version, shortSHA(r.SHA256), formatBytes(r.Size),
			orDash(strings.Join(r.Phases, ",")), formatTime(r.CreatedAt), r.Description)
	}
	return tw.Flush()
}

func runRollback(ctx context.Context, a *app, cmd command, args []string) error {
	var admin adminFlags
	var to int
	f := newFlagSet(a, cmd, "[flags] <name>")
	intFlag(f, &to, "to", "version", "the version to make active (default: the one before the active one)")
	c, pos, err := adminCommand(a, cmd, args, &admin, f, "<name>")
	if err != nil {
		return err
	}
	if to < 0 {
		return usageErrorf(cmd.name, "--to: %d is not a version", to)
	}
	q := url.Values{}
	if to > 0 {
		q.Set("to", strconv.Itoa(to))
	}
	raw, err := c.do(ctx, apiRequest{method: http.MethodPost, path: functionPath(pos[0]) + "/rollback", query: q})
	if err != nil {
		return fmt.Errorf("rollback %s: %w", pos[0], err)
	}
	if admin.Output == outputJSON {
		return writeJSONBody(a.stdout, raw)
	}
	var rec registry.Record
	if err := json.Unmarshal(raw, &rec); err != nil {
		return fmt.Errorf("rollback %s: decoding the record: %w", pos[0], err)
	}
	fmt.Fprintf(a.stdout, "%s: version %d is active (sha256 %s)\n", rec.Name, rec.Version, shortSHA(rec.SHA256))
	return nil
}

func runRm(ctx context.Context, a *app, cmd command, args []string) error {
	var admin adminFlags
	c, pos, err := adminCommand(a, cmd, args, &admin, newFlagSet(a, cmd, "[flags] <name>"), "<name>")
	if err != nil {
		return err
	}
	if _, err := c.do(ctx, apiRequest{method: http.MethodDelete, path: functionPath(pos[0])}); err != nil {
		return fmt.Errorf("rm %s: %w", pos[0], err)
	}
	if admin.Output == outputJSON {
		return writeJSONValue(a.stdout, map[string]any{"name": pos[0], "deleted": true})
	}
	fmt.Fprintf(a.stdout, "deleted %s\n", pos[0])
	return nil
}

func runNodes(ctx context.Context, a *app, cmd command, args []string) error {
	var admin adminFlags
	c, _, err := adminCommand(a, cmd, args, &admin, newFlagSet(a, cmd, "[flags]"))
	if err != nil {
		return err
	}
	var list platform.NodeList
	raw, err := c.getJSON(ctx, "/v1/nodes", &list)
	if err != nil {
		return fmt.Errorf("nodes: %w", err)
	}
	if admin.Output == outputJSON {
		return writeJSONBody(a.stdout, raw)
	}
	if len(list.Nodes) == 0 {
		fmt.Fprintln(a.stdout, "no nodes found")
		return nil
	}
	tw := newTable(a.stdout)
	fmt.Fprintln(tw, "NODE\tFUNCTION\tVERSION\tSHA256\tENDPOINTS")
	for _, n := range list.Nodes {
		if len(n.Functions) == 0 {
			fmt.Fprintf(tw, "%s\t-\t\t\t\n", n.ID)
		}
		for _, fn := range n.Functions {
			eps := make([]string, len(fn.Endpoints))
			for i, e := range fn.Endpoints {
				eps[i] = e.Name
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", n.ID, fn.Name, fn.DeploymentVersion, shortSHA(fn.SHA256), orDash(strings.Join(eps, ",")))
		}
	}
	return tw.Flush()
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return orDash(s)
}

// formatTime shows a time in the local zone, to the second.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

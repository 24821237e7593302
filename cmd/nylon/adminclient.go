package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/nylon-functions/nylon/platform"
)

// Output formats of the client commands (-o).
const (
	outputText = "text"
	outputJSON = "json"
)

// adminFlags are the flags of every command that talks to the admin API.
type adminFlags struct {
	URL     string
	Token   string
	CA      string // PEM file; empty: the system's roots
	Output  string
	Timeout time.Duration
}

func (c *adminFlags) register(f *flagSet) {
	f.String(&c.URL, "admin", "url", "NYLON_ADMIN_URL", "http://127.0.0.1:8081", "base URL of the admin API")
	f.String(&c.Token, "token", "secret", "NYLON_ADMIN_TOKEN", "", "bearer token of the admin API (prefer the variable: flags show in ps)")
	f.String(&c.CA, "admin-ca", "file", "NYLON_ADMIN_CA", "", "PEM CA certificate(s) that verify an https:// admin API, instead of the system's roots (a private CA)")
	registerOutput(f, &c.Output)
	f.Duration(&c.Timeout, "admin-timeout", "NYLON_ADMIN_TIMEOUT", time.Minute, "how long one admin API call may take")
}

// registerOutput defines --output and its short form -o.
func registerOutput(f *flagSet, p *string) {
	f.String(p, "output", "format", "", outputText, "output format: text (for people) or json (for scripts); -o for short")
	f.fs.StringVar(p, "o", outputText, "")
}

func checkOutput(cmd, o string) error {
	if o != outputText && o != outputJSON {
		return usageErrorf(cmd, "--output: %q: want text or json", o)
	}
	return nil
}

// client checks the flags and returns the admin API client they describe.
func (c *adminFlags) client(cmd string) (*adminClient, error) {
	if err := checkOutput(cmd, c.Output); err != nil {
		return nil, err
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageErrorf(cmd, "--admin: %q: want an http:// or https:// URL", c.URL)
	}
	if c.Timeout <= 0 {
		return nil, usageErrorf(cmd, "--admin-timeout: %v must be positive", c.Timeout)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	hc := &http.Client{Timeout: c.Timeout}
	if c.CA != "" {
		// Refused rather than ignored with http://: the operator meant the
		// calls, and the token, to be protected.
		if u.Scheme != "https" {
			return nil, usageErrorf(cmd, "--admin-ca: %s verifies https:// admin URLs only, and --admin is %q", c.CA, c.URL)
		}
		pool, err := loadCAFile(c.CA)
		if err != nil {
			return nil, usageErrorf(cmd, "--admin-ca: %v", err)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		hc.Transport = tr
	}
	return &adminClient{base: u, token: c.Token, hc: hc}, nil
}

// loadCAFile reads the PEM certificates of file into a pool.
func loadCAFile(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate in the file", file)
	}
	return pool, nil
}

// adminClient calls the admin API. It keeps no state between calls but the
// http.Client's idle connections.
type adminClient struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// apiRequest is one admin API call.
type apiRequest struct {
	method      string
	path        string // under the base URL, e.g. "/v1/functions/hello"
	query       url.Values
	body        io.Reader
	size        int64 // of body; -1 when unknown
	contentType string
}

// do sends req and returns the response body of a 2xx answer; any other
// status becomes an *apiError built from its problem+json body.
func (c *adminClient) do(ctx context.Context, req apiRequest) ([]byte, error) {
	u := *c.base
	u.Path += req.path
	u.RawQuery = req.query.Encode()
	hr, err := http.NewRequestWithContext(ctx, req.method, u.String(), req.body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.method, u.Redacted(), err)
	}
	if req.body != nil {
		hr.ContentLength = req.size
		hr.Header.Set("Content-Type", req.contentType)
	}
	hr.Header.Set("Accept", "application/json, application/problem+json")
	hr.Header.Set("User-Agent", userAgent())
	if c.token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
			return nil, fmt.Errorf("admin API: %w (--admin-ca or NYLON_ADMIN_CA names the CA of a private certificate)", err)
		}
		return nil, fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	// Admin answers are small (records, lists); the cap guards against a
	// wrong --admin URL streaming something huge.
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("admin API: reading the answer of %s %s: %w", req.method, req.path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, newAPIError(resp, body)
	}
	return body, nil
}

// getJSON calls GET path and decodes the answer into v; it returns the raw
// body too, for -o json.
func (c *adminClient) getJSON(ctx context.Context, p string, v any) ([]byte, error) {
	body, err := c.do(ctx, apiRequest{method: http.MethodGet, path: p})
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, fmt.Errorf("admin API: decoding the answer of GET %s: %w", p, err)
	}
	return body, nil
}

// apiError is a non-2xx answer of the admin API.
type apiError struct {
	Status  int
	Problem platform.Problem // zero when the body was not problem+json
	Body    string           // the start of a body that was not a problem
}

func newAPIError(resp *http.Response, body []byte) *apiError {
	e := &apiError{Status: resp.StatusCode}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/problem+json" || mt == "application/json" {
		if json.Unmarshal(body, &e.Problem) == nil && e.Problem.Status != 0 {
			return e
		}
		e.Problem = platform.Problem{}
	}
	e.Body = strings.TrimSpace(string(body))
	if len(e.Body) > 200 {
		e.Body = e.Body[:200] + "..."
	}
	return e
}

// Error reads "422 invalid module: <detail>": the status, the problem type's
// last path element in words, and the detail.
func (e *apiError) Error() string {
	title := ""
	if e.Problem.Type != "" {
		title = strings.ReplaceAll(path.Base(e.Problem.Type), "-", " ")
	}
	if title == "" {
		title = strings.ToLower(http.StatusText(e.Status))
	}
	msg := strconv.Itoa(e.Status) + " " + title
	switch {
	case e.Problem.Detail != "":
		msg += ": " + e.Problem.Detail
	case e.Body != "":
		msg += ": " + e.Body
	}
	return msg
}

// writeJSONBody writes an API answer indented, for -o json.
func writeJSONBody(w io.Writer, body []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(body), "", "  "); err != nil {
		return fmt.Errorf("admin API answer is not JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// writeJSONValue writes v as indented JSON.
func writeJSONValue(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parseArgs parses args allowing flags after the positional arguments
// ("nylon deploy hello hello.wasm --route /x"), which package flag alone
// does not; "--" ends the flags.
func parseArgs(f *flagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			return nil, err
		}
		rest := f.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// wantArgs checks the number of positional arguments.
func wantArgs(cmd string, args []string, names ...string) error {
	if len(args) < len(names) {
		return usageErrorf(cmd, "missing %s", names[len(args)])
	}
	if len(args) > len(names) {
		return usageErrorf(cmd, "unexpected argument %q", args[len(names)])
	}
	return nil
}

// repeatedFlag defines a flag that may be given many times, each value
// appended to p (unlike List, values may hold commas).
func repeatedFlag(f *flagSet, p *[]string, name, arg, usage string) {
	f.fs.Func(name, usage, func(s string) error {
		*p = append(*p, s)
		return nil
	})
	f.doc(name, arg, "", "", usage+" (repeatable)")
}

// intFlag defines an integer flag without an environment variable.
func intFlag(f *flagSet, p *int, name, arg, usage string) {
	f.fs.Var((*intValue)(p), name, usage)
	f.doc(name, arg, "", "", usage)
}

type intValue int

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not an integer")
	}
	*v = intValue(n)
	return nil
}

var _ flag.Value = (*intValue)(nil)

// userAgent names the CLI and its module version; the admin API records it
// as a deployment's created_by.
func userAgent() string {
	v := "(devel)"
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		v = info.Main.Version
	}
	return "nylon-cli/" + v
}

// formatBytes renders n in decimal units: "512 B", "2.9 MB".
func formatBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

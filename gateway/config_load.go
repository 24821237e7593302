package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ConfigError is one configuration problem. It wraps ErrInvalidConfig.
type ConfigError struct {
	File string // as given to ParseConfig; empty for a Config built in Go
	Line int    // 1-based; 0 when unknown
	Path string // e.g. "plugins[0].per_phase.request_filter.on_error"
	Msg  string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteByte(':')
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// LoadConfig reads and parses the YAML file at path (see ParseConfig).
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return ParseConfig(path, data)
}

// ParseConfig decodes a YAML configuration strictly (an unknown key is an
// error) and validates it. name labels errors, which name the line:
//
//	gateway.yaml:12: field "timout_ms" not found in type gateway.PhasePolicy
//	gateway.yaml:14: plugins[0].per_phase.request_filter.on_error: "retyr" is not one of continue|end|retry
//
// Every error wraps ErrInvalidConfig; several problems are joined. An empty
// document is an empty, valid Config.
func ParseConfig(name string, data []byte) (*Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(name, err)
	}
	// A second document would be silently ignored; refuse it instead.
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &ConfigError{File: name, Line: extra.Line, Msg: "more than one YAML document"}
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root) // decoded above: cannot fail
	lines := map[string]int{}
	if len(root.Content) > 0 {
		nodeLines(root.Content[0], "", lines)
	}
	if err := cfg.validate(); err != nil {
		return nil, locate(err, name, lines)
	}
	return &cfg, nil
}

var (
	yamlLineRE    = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	yamlUnknownRE = regexp.MustCompile(`^field (\S+) not found in type (.+)$`)
)

// yamlError rewrites yaml.v3's errors ("yaml: line 3: ...", a TypeError
// listing "line 12: field x not found in type T") as "name:line: ...".
func yamlError(name string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		errs := make([]error, 0, len(te.Errors))
		for _, msg := range te.Errors {
			errs = append(errs, yamlLineError(name, msg))
		}
		return errors.Join(errs...)
	}
	return yamlLineError(name, err.Error())
}

func yamlLineError(name, msg string) error {
	e := &ConfigError{File: name, Msg: strings.TrimPrefix(msg, "yaml: ")}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2]
	}
	if m := yamlUnknownRE.FindStringSubmatch(e.Msg); m != nil {
		e.Msg = fmt.Sprintf("field %q not found in type %s", m[1], m[2])
	}
	return e
}

// nodeLines records the line of every value under n by its config path:
// "plugins[0].per_phase.request_filter.on_error".
func nodeLines(n *yaml.Node, path string, lines map[string]int) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	lines[path] = n.Line
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			nodeLines(v, p, lines)
			if v.Kind != yaml.ScalarNode {
				// A mapping or list starts on the line after its key;
				// the key's line reads better for errors about it.
				lines[p] = k.Line
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			nodeLines(c, fmt.Sprintf("%s[%d]", path, i), lines)
		}
	}
}

// locate adds the file name and the line of each error's path, walking up
// to the nearest enclosing value the document has.
func locate(err error, name string, lines map[string]int) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		var ce *ConfigError
		if errors.As(e, &ce) {
			c := *ce
			c.File = name
			for p := c.Path; p != ""; p = parentPath(p) {
				if l, ok := lines[p]; ok {
					c.Line = l
					break
				}
			}
			e = &c
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// parentPath strips the last element: "a.b[2]" -> "a.b" -> "a" -> "".
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

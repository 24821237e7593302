package platform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
	"github.com/nylon-functions/nylon/wasmhost"
)

// deployOptions are the query parameters PUT /v1/functions/{name} accepts.
var deployOptions = []string{"route", "config", "timeout", "memory_mb", "max_workers", "max_body_bytes", "queue_group", "description"}

// DeploySpec is the JSON of the "spec" part of a multipart deploy. Every
// field is optional; query options given as well are applied after it.
type DeploySpec struct {
	// Name, when set, must equal the name in the path.
	Name        string            `json:"name,omitempty"`
	Routes      []string          `json:"routes,omitempty"`
	Config      map[string]string `json:"config,omitempty"`
	Limits      registry.Limits   `json:"limits"`
	QueueGroup  string            `json:"queue_group,omitempty"`
	Description string            `json:"description,omitempty"`
}

// FunctionList is the answer of GET /v1/functions.
type FunctionList struct {
	Functions []registry.Record `json:"functions"`
}

// VersionList is the answer of GET /v1/functions/{name}/versions: retained
// versions, newest first, the active one marked.
type VersionList struct {
	Name     string            `json:"name"`
	Active   uint64            `json:"active,omitempty"`
	Versions []registry.Record `json:"versions"`
}

// RollbackRequest is the optional JSON body of POST .../rollback; To 0 (or
// no body, no `to` query) means the version before the active one.
type RollbackRequest struct {
	To uint64 `json:"to"`
}

// maxSpecBytes caps the JSON spec of a multipart deploy and a rollback body.
const maxSpecBytes = 1 << 20

// deploy handles PUT /v1/functions/{name}: checks, in order, the name, the
// options, the size and the module (wasmhost.Validate), then stores a new
// version. Nothing reaches the registry unless every check passed.
func (a *Admin) deploy(w http.ResponseWriter, r *http.Request) {
	name, ok := a.nameParam(w, r)
	if !ok {
		return
	}
	spec := registry.Spec{Name: name, CreatedBy: createdBy(r)}
	query := r.URL.Query()
	if p, ok := checkOptionNames(query); !ok {
		writeProblem(w, r, p)
		return
	}
	mediaType := ""
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			writeProblem(w, r, problem(ProblemUnsupportedMedia, http.StatusUnsupportedMediaType, "bad Content-Type: "+err.Error()))
			return
		}
		mediaType = mt
	}
	select {
	case a.uploads <- struct{}{}:
		defer func() { <-a.uploads }()
	case <-r.Context().Done():
		writeProblem(w, r, problem(ProblemUnavailable, http.StatusServiceUnavailable, "request cancelled while waiting for other uploads to finish"))
		return
	}
	// Counted from here, not from the request's start: a deploy queued
	// behind MaxUploadsInMemory others has not been read from yet.
	bodyRead := a.bodyDeadline(w)
	max := a.cfg.MaxModuleBytes
	var wasm []byte
	switch mediaType {
	case "", "application/wasm", "application/octet-stream":
		if p, ok := applyQuery(&spec, query); !ok {
			writeProblem(w, r, p)
			return
		}
		if !a.checkSpec(w, r, spec) {
			return
		}
		if r.ContentLength > max {
			writeProblem(w, r, tooLarge(r.ContentLength, max))
			return
		}
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
		if err != nil {
			a.bodyError(w, r, err, max)
			return
		}
		bodyRead()
		wasm = b
	case "multipart/form-data":
		if r.ContentLength > max+maxSpecBytes {
			writeProblem(w, r, tooLarge(r.ContentLength, max))
			return
		}
		b, p, ok := a.readMultipart(w, r, &spec, max)
		if !ok {
			writeProblem(w, r, p)
			return
		}
		bodyRead()
		if p, ok := applyQuery(&spec, query); !ok {
			writeProblem(w, r, p)
			return
		}
		if !a.checkSpec(w, r, spec) {
			return
		}
		wasm = b
	default:
		writeProblem(w, r, problem(ProblemUnsupportedMedia, http.StatusUnsupportedMediaType,
			fmt.Sprintf("Content-Type %s: send the module as application/wasm (options as query parameters) or multipart/form-data (parts \"module\" and \"spec\")", mediaType)))
		return
	}
	if len(wasm) == 0 {
		writeProblem(w, r, problem(ProblemInvalidModule, http.StatusBadRequest, "empty body: send the module's bytes"))
		return
	}

	select {
	case a.validating <- struct{}{}:
	case <-r.Context().Done():
		writeProblem(w, r, problem(ProblemUnavailable, http.StatusServiceUnavailable, "request cancelled while waiting to validate"))
		return
	}
	info, err := a.host.Validate(r.Context(), wasm)
	<-a.validating
	switch {
	case err == nil:
	case r.Context().Err() != nil, errors.Is(err, wasmhost.ErrHostClosed):
		// The validation ended with the request (the client left) or
		// the process: nothing is known against the module, so not 422.
		writeProblem(w, r, problem(ProblemUnavailable, http.StatusServiceUnavailable,
			"validation did not finish: "+err.Error()))
		return
	default:
		writeProblem(w, r, problem(ProblemInvalidModule, http.StatusUnprocessableEntity, err.Error()))
		return
	}
	spec.Phases = info.Phases
	// Checked last before storing, and under routesMu with the store, so
	// deploys through this admin API never both take one route; deploys
	// through several admin processes can still race (the gateway settles
	// those).
	a.routesMu.Lock()
	defer a.routesMu.Unlock()
	if !a.checkRoutes(w, r, name, "the routes are taken", "route", spec.Routes) {
		return
	}
	rec, err := a.reg.Deploy(r.Context(), spec, wasm)
	if err != nil {
		a.registryError(w, r, err)
		return
	}
	a.log.Info("admin: deployed", "function", rec.Name, "version", rec.Version, "sha256", rec.SHA256,
		"size", rec.Size, "phases", rec.Phases, "request_id", RequestID(r.Context()))
	w.Header().Set("Location", "/v1/functions/"+url.PathEscape(rec.Name))
	writeJSON(w, http.StatusCreated, rec)
}

// checkSpec validates every field but the phases (known only after the
// module is validated), so bad options fail before a compile.
func (a *Admin) checkSpec(w http.ResponseWriter, r *http.Request, spec registry.Spec) bool {
	spec.Phases = protocol.PhaseSetOf(protocol.PhaseRequestFilter)
	if err := spec.Validate(); err != nil {
		writeProblem(w, r, problem(ProblemInvalidSpec, http.StatusBadRequest, err.Error()))
		return false
	}
	for i, rt := range spec.Routes {
		if err := chiPattern(rt); err != nil {
			writeProblem(w, r, problem(ProblemInvalidSpec, http.StatusBadRequest,
				fmt.Sprintf("routes[%d]: %q is not a route pattern the gateway can mount: %v", i, rt, err)))
			return false
		}
	}
	if p, ok := a.checkBodyLimit(spec.Limits.MaxBodyBytes); !ok {
		writeProblem(w, r, p)
		return false
	}
	return true
}

// chiPattern reports why the gateway's router (chi) would refuse pattern:
// an unclosed "{", a parameter named twice, a bad regexp, a "*" before the
// end. chi panics on those when the route is mounted, which the gateway
// turns into a skipped route; caught here, the deploy is refused instead of
// stored with a route that never answers.
func chiPattern(pattern string) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%v", v)
		}
	}()
	chi.NewRouter().Handle(pattern, http.NotFoundHandler())
	return nil
}

// checkBodyLimit refuses a max_body_bytes that NATS cannot carry. A request
// to the function is one NATS message of up to the body plus
// protocol.RequestOverhead, and NATS refuses to publish a message over the
// server's max_payload: bodies above it could never arrive, so the deployer
// learns it now rather than from 413s later. Without a NATS connection
// (AdminConfig.NATS nil) the limit is not checked.
func (a *Admin) checkBodyLimit(body int64) (Problem, bool) {
	if body == 0 || a.cfg.NATS == nil {
		return Problem{}, true
	}
	mp := a.cfg.NATS.MaxPayload()
	if mp <= 0 {
		return Problem{}, true // never connected: nothing known to check against
	}
	if most := mp - protocol.RequestOverhead; body > most {
		p := problem(ProblemInvalidSpec, http.StatusBadRequest, fmt.Sprintf(
			"limits.max_body_bytes: %d is more than NATS can carry: the server's max_payload is %d bytes and a request needs %d of them besides the body, so at most %d (raise the server's max_payload to allow more)",
			body, mp, protocol.RequestOverhead, max(most, 0)))
		p.Option = "max_body_bytes"
		return p, false
	}
	return Problem{}, true
}

// readMultipart reads the "module" and "spec" parts of a multipart deploy.
func (a *Admin) readMultipart(w http.ResponseWriter, r *http.Request, spec *registry.Spec, max int64) ([]byte, Problem, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, max+maxSpecBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, problem(ProblemBadRequest, http.StatusBadRequest, "multipart: "+err.Error()), false
	}
	var wasm []byte
	var haveModule, haveSpec bool
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, a.bodyProblem(err, max), false
		}
		switch part.FormName() {
		case "module":
			if haveModule {
				return nil, problem(ProblemBadRequest, http.StatusBadRequest, `multipart: part "module" given twice`), false
			}
			haveModule = true
			var buf bytes.Buffer
			n, err := io.Copy(&buf, io.LimitReader(part, max+1))
			if err != nil {
				return nil, a.bodyProblem(err, max), false
			}
			if n > max {
				return nil, tooLarge(n, max), false
			}
			wasm = buf.Bytes()
		case "spec":
			if haveSpec {
				return nil, problem(ProblemBadRequest, http.StatusBadRequest, `multipart: part "spec" given twice`), false
			}
			haveSpec = true
			b, err := io.ReadAll(io.LimitReader(part, maxSpecBytes+1))
			if err != nil {
				return nil, a.bodyProblem(err, max), false
			}
			if len(b) > maxSpecBytes {
				p := problem(ProblemTooLarge, http.StatusRequestEntityTooLarge, fmt.Sprintf("multipart: part \"spec\" is over the limit of %d bytes", maxSpecBytes))
				p.Option = "spec"
				return nil, p, false
			}
			if p, ok := decodeDeploySpec(b, spec); !ok {
				return nil, p, false
			}
		default:
			p := problem(ProblemInvalidOption, http.StatusBadRequest,
				fmt.Sprintf("multipart: unknown part %q (want \"module\" and optionally \"spec\")", part.FormName()))
			p.Option = part.FormName()
			return nil, p, false
		}
		_ = part.Close()
	}
	if !haveModule {
		return nil, problem(ProblemInvalidModule, http.StatusBadRequest, `multipart: no "module" part`), false
	}
	return wasm, Problem{}, true
}

// decodeDeploySpec reads a DeploySpec into spec, refusing unknown fields.
func decodeDeploySpec(b []byte, spec *registry.Spec) (Problem, bool) {
	var ds DeploySpec
	if err := decodeStrict(b, &ds); err != nil {
		p := problem(ProblemInvalidOption, http.StatusBadRequest, "spec: "+err.Error())
		var ute *json.UnmarshalTypeError
		if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			p.Option = strings.Trim(field, `"`)
		} else if errors.As(err, &ute) && ute.Field != "" {
			p.Option = ute.Field
		}
		return p, false
	}
	if ds.Name != "" && ds.Name != spec.Name {
		p := problem(ProblemInvalidOption, http.StatusBadRequest, fmt.Sprintf("spec: name %q differs from the path's %q", ds.Name, spec.Name))
		p.Option = "name"
		return p, false
	}
	spec.Routes, spec.Config, spec.Limits = ds.Routes, ds.Config, ds.Limits
	spec.QueueGroup, spec.Description = ds.QueueGroup, ds.Description
	return Problem{}, true
}

// decodeStrict decodes b, one JSON value and nothing after it, into v,
// refusing unknown fields. json.Decoder alone stops after the first value:
// `{} {"routes": [...]}` would deploy without the routes meant.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("unexpected data after the JSON value at offset %d", dec.InputOffset())
	}
	return nil
}

// checkOptionNames refuses a query parameter that is not a deploy option.
func checkOptionNames(q url.Values) (Problem, bool) {
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range q {
			if !yield(k) {
				return
			}
		}
	}) {
		if !slices.Contains(deployOptions, k) {
			p := problem(ProblemInvalidOption, http.StatusBadRequest,
				fmt.Sprintf("unknown query option %q (known: %s)", k, strings.Join(deployOptions, ", ")))
			p.Option = k
			return p, false
		}
	}
	return Problem{}, true
}

// applyQuery sets spec's fields from the deploy query options.
func applyQuery(spec *registry.Spec, q url.Values) (Problem, bool) {
	bad := func(option, format string, args ...any) (Problem, bool) {
		p := problem(ProblemInvalidOption, http.StatusBadRequest, option+": "+fmt.Sprintf(format, args...))
		p.Option = option
		return p, false
	}
	for _, k := range []string{"timeout", "memory_mb", "max_workers", "max_body_bytes", "queue_group", "description"} {
		if len(q[k]) > 1 {
			return bad(k, "given %d times, at most once", len(q[k]))
		}
	}
	spec.Routes = append(spec.Routes, q["route"]...)
	if cfg := q["config"]; len(cfg) > 0 {
		if spec.Config == nil {
			spec.Config = make(map[string]string, len(cfg))
		}
		fromQuery := map[string]bool{}
		for _, kv := range cfg {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return bad("config", "%q: want key=value", kv)
			}
			if fromQuery[k] {
				return bad("config", "key %q given twice", k)
			}
			fromQuery[k] = true
			spec.Config[k] = v
		}
	}
	if s := q.Get("timeout"); s != "" {
		ms, err := parseTimeoutMS(s)
		if err != nil {
			return bad("timeout", "%v", err)
		}
		spec.Limits.TimeoutMS = ms
	}
	ints := []struct {
		name string
		dst  func(int64)
		max  int64
	}{
		{"memory_mb", func(v int64) { spec.Limits.MemoryMB = int(v) }, registry.MaxMemoryMB},
		{"max_workers", func(v int64) { spec.Limits.MaxWorkers = int(v) }, registry.MaxWorkers},
		{"max_body_bytes", func(v int64) { spec.Limits.MaxBodyBytes = v }, registry.MaxBodyBytesCap},
	}
	for _, o := range ints {
		s := q.Get(o.name)
		if s == "" {
			continue
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 1 || v > o.max {
			return bad(o.name, "%q: want an integer from 1 to %d", s, o.max)
		}
		o.dst(v)
	}
	if q.Has("queue_group") {
		spec.QueueGroup = q.Get("queue_group")
	}
	if q.Has("description") {
		spec.Description = q.Get("description")
	}
	return Problem{}, true
}

// parseTimeoutMS reads a Go duration ("250ms", "2s") or a number of
// milliseconds ("250").
func parseTimeoutMS(s string) (int, error) {
	var d time.Duration
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms < 1 || ms > registry.MaxTimeoutMS {
			return 0, fmt.Errorf("%q: want 1 to %d milliseconds", s, registry.MaxTimeoutMS)
		}
		return int(ms), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: want a duration such as 500ms or 2s, or milliseconds", s)
	}
	if d < time.Millisecond || d > registry.MaxTimeoutMS*time.Millisecond || d%time.Millisecond != 0 {
		return 0, fmt.Errorf("%q: want whole milliseconds from 1ms to %v", s, time.Duration(registry.MaxTimeoutMS)*time.Millisecond)
	}
	return int(d / time.Millisecond), nil
}

// listFunctions handles GET /v1/functions.
func (a *Admin) listFunctions(w http.ResponseWriter, r *http.Request) {
	recs, err := a.reg.List(r.Context())
	if err != nil {
		a.registryError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, FunctionList{Functions: recs})
}

// getFunction handles GET /v1/functions/{name}: the active version.
func (a *Admin) getFunction(w http.ResponseWriter, r *http.Request) {
	name, ok := a.nameParam(w, r)
	if !ok {
		return
	}
	rec, err := a.reg.Get(r.Context(), name)
	if err != nil {
		a.registryError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// versions handles GET /v1/functions/{name}/versions.
func (a *Admin) versions(w http.ResponseWriter, r *http.Request) {
	name, ok := a.nameParam(w, r)
	if !ok {
		return
	}
	recs, err := a.reg.Versions(r.Context(), name)
	if err != nil {
		a.registryError(w, r, err)
		return
	}
	out := VersionList{Name: name, Versions: recs}
	for _, rec := range recs {
		if rec.Active {
			out.Active = rec.Version
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// rollback handles POST /v1/functions/{name}/rollback with an optional
// JSON body {"to": N} or query ?to=N.
func (a *Admin) rollback(w http.ResponseWriter, r *http.Request) {
	name, ok := a.nameParam(w, r)
	if !ok {
		return
	}
	var to uint64
	for k := range r.URL.Query() {
		if k != "to" {
			p := problem(ProblemInvalidOption, http.StatusBadRequest, fmt.Sprintf("unknown query option %q (known: to)", k))
			p.Option = k
			writeProblem(w, r, p)
			return
		}
	}
	if s := r.URL.Query().Get("to"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil || v == 0 {
			p := problem(ProblemInvalidOption, http.StatusBadRequest, fmt.Sprintf("to: %q: want a version number", s))
			p.Option = "to"
			writeProblem(w, r, p)
			return
		}
		to = v
	}
	bodyRead := a.bodyDeadline(w)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSpecBytes))
	if err != nil {
		a.bodyError(w, r, err, maxSpecBytes)
		return
	}
	bodyRead()
	if len(bytes.TrimSpace(body)) > 0 {
		var req RollbackRequest
		if err := decodeStrict(body, &req); err != nil {
			writeProblem(w, r, problem(ProblemBadRequest, http.StatusBadRequest, "body: "+err.Error()+` (want {"to": N})`))
			return
		}
		if to != 0 && req.To != 0 && req.To != to {
			writeProblem(w, r, problem(ProblemBadRequest, http.StatusBadRequest,
				fmt.Sprintf("query to=%d and body to=%d disagree", to, req.To)))
			return
		}
		if req.To != 0 {
			to = req.To
		}
	}
	// The target's routes must still be free: another function may have
	// taken one since that version was active (routesMu: see deploy).
	a.routesMu.Lock()
	defer a.routesMu.Unlock()
	target, found, err := a.rollbackTarget(r.Context(), name, to)
	if err != nil {
		a.registryError(w, r, err)
		return
	}
	if found {
		if !target.Active && !a.checkRoutes(w, r, name, fmt.Sprintf("version %d's routes are taken", target.Version), "", target.Routes) {
			return
		}
		to = target.Version
	}
	rec, err := a.reg.Rollback(r.Context(), name, to)
	if err != nil {
		a.registryError(w, r, err)
		return
	}
	a.log.Info("admin: rolled back", "function", name, "version", rec.Version, "request_id", RequestID(r.Context()))
	writeJSON(w, http.StatusOK, rec)
}

// deleteFunction handles DELETE /v1/functions/{name}.
func (a *Admin) deleteFunction(w http.ResponseWriter, r *http.Request) {
	name, ok := a.nameParam(w, r)
	if !ok {
		return
	}
	if err := a.reg.Delete(r.Context(), name); err != nil {
		a.registryError(w, r, err)
		return
	}
	a.log.Info("admin: deleted", "function", name, "request_id", RequestID(r.Context()))
	w.WriteHeader(http.StatusNoContent)
}

// nameParam returns the path's {name}, unescaped and validated, or answers
// 400.
func (a *Admin) nameParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	raw := chi.URLParam(r, "name")
	name, err := url.PathUnescape(raw)
	if err != nil {
		name = raw
	}
	if err := protocol.ValidateName(name); err != nil {
		writeProblem(w, r, problem(ProblemInvalidName, http.StatusBadRequest, err.Error()))
		return "", false
	}
	return name, true
}

// registryError maps a registry failure to its problem.
func (a *Admin) registryError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, registry.ErrNotFound):
		writeProblem(w, r, problem(ProblemNotFound, http.StatusNotFound, err.Error()))
	case errors.Is(err, registry.ErrInvalidSpec):
		writeProblem(w, r, problem(ProblemInvalidSpec, http.StatusBadRequest, err.Error()))
	case errors.Is(err, protocol.ErrInvalidName):
		writeProblem(w, r, problem(ProblemInvalidName, http.StatusBadRequest, err.Error()))
	case errors.Is(err, registry.ErrConflict):
		writeProblem(w, r, problem(ProblemConflict, http.StatusConflict, err.Error()))
	case errors.Is(err, registry.ErrCorruptModule):
		// Stored bytes that are not what the record names (a rollback's
		// check): asking again will not help, deploying them again will.
		a.log.Error("admin: registry", "path", r.URL.Path, "err", err, "request_id", RequestID(r.Context()))
		writeProblem(w, r, problem(ProblemCorruptModule, http.StatusConflict, err.Error()+" (deploy the module again)"))
	case r.Context().Err() != nil:
		// The client went away; nobody reads this.
		writeProblem(w, r, problem(ProblemUnavailable, http.StatusServiceUnavailable, "request cancelled"))
	default:
		a.log.Error("admin: registry", "path", r.URL.Path, "err", err, "request_id", RequestID(r.Context()))
		writeProblem(w, r, problem(ProblemUnavailable, http.StatusServiceUnavailable, "registry: "+err.Error()))
	}
}

// bodyDeadline bounds reading the request body by BodyTimeout from now
// (a read deadline on the connection, or on the HTTP/2 stream) and returns
// the function that lifts the bound once the body is read: what follows
// (validation, the registry) is not the client's to hurry, and a body not
// read to its end (a multipart epilogue) would keep the deadline.
func (a *Admin) bodyDeadline(w http.ResponseWriter) func() {
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(a.cfg.BodyTimeout)); err != nil {
		return func() {} // no connection to bound (a ResponseRecorder)
	}
	return func() { _ = rc.SetReadDeadline(time.Time{}) }
}

// bodyError answers a failure to read the request body.
func (a *Admin) bodyError(w http.ResponseWriter, r *http.Request, err error, max int64) {
	writeProblem(w, r, a.bodyProblem(err, max))
}

func (a *Admin) bodyProblem(err error, max int64) Problem {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(-1, max)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return problem(ProblemBodyTimeout, http.StatusRequestTimeout, fmt.Sprintf(
			"the body did not arrive within %v (the admin API's BodyTimeout): the upload was too slow or stalled", a.cfg.BodyTimeout))
	}
	return problem(ProblemBadRequest, http.StatusBadRequest, "reading the body: "+err.Error())
}

func tooLarge(n, max int64) Problem {
	if n < 0 {
		return problem(ProblemTooLarge, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over the limit of %d bytes", max))
	}
	return problem(ProblemTooLarge, http.StatusRequestEntityTooLarge, fmt.Sprintf("%d bytes, limit %d", n, max))
}

// createdBy records who deployed: the client's User-Agent, printable ASCII
// only, trimmed.
func createdBy(r *http.Request) string {
	ua := strings.Map(func(c rune) rune {
		if c < ' ' || c >= 0x7f {
			return -1
		}
		return c
	}, r.UserAgent())
	if len(ua) > 128 {
		ua = ua[:128]
	}
	return ua
}

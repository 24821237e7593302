package registry

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nylon-functions/nylon/protocol"
)

// Key layout of the functions bucket. Names cannot contain '.', so every key
// splits unambiguously.
//
//	fn.{name}.seq                  last version number allocated (decimal); kept across Delete
//	                               so a (name, version) pair names one module forever
//	fn.{name}.v.{version:020d}     immutable Record of one version (zero-padded: sorts numerically)
//	fn.{name}.active               the active Record plus "head", the highest version a deploy
//	                               has activated; its history is the audit trail of activations
const (
	keyPrefix     = "fn."
	activeSuffix  = ".active"
	allActive     = "fn.*.active"
	allVersions   = "fn.*.v.*"
	kvHistory     = 64               // per key; the active pointer's history is its audit log
	markerTTL     = 15 * time.Minute // how long purge markers of trimmed versions live
	casMaxAttempt = 1000
	// watchCheckInterval is how often a Watcher compares its position with
	// the bucket's (see Watcher).
	watchCheckInterval = 2 * time.Second
	// objectReadTimeout bounds reading one module: 32 MiB (the upload cap)
	// takes seconds on a healthy cluster. objectStallTimeout gives up sooner
	// on a read that gets no bytes at all (its chunks are 128 KiB).
	objectReadTimeout  = 2 * time.Minute
	objectStallTimeout = 10 * time.Second
)

func seqKey(name string) string    { return keyPrefix + name + ".seq" }
func activeKey(name string) string { return keyPrefix + name + activeSuffix }
func versionKey(name string, v uint64) string {
	return fmt.Sprintf("%s%s.v.%020d", keyPrefix, name, v)
}
func versionsFilter(name string) string { return keyPrefix + name + ".v.*" }

// nameOfActiveKey returns the function name of an "fn.{name}.active" key.
func nameOfActiveKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, keyPrefix)
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, activeSuffix)
	return name, ok && protocol.ValidateName(name) == nil
}

// versionOfKey returns the version of an "fn.{name}.v.{version}" key.
func versionOfKey(key string) (uint64, bool) {
	i := strings.LastIndexByte(key, '.')
	if i < 0 {
		return 0, false
	}
	v, err := strconv.ParseUint(key[i+1:], 10, 64)
	return v, err == nil && v > 0
}

// pointer is the value of fn.{name}.active: the active record, flattened, plus
// Head. Deploys only move the pointer forward (to a version above Head), so
// when concurrent deploys finish out of order the highest version wins;
// rollbacks move it anywhere and leave Head alone.
type pointer struct {
	Record
	Head uint64 `json:"head"`
}

// Registry stores function deployments: records in a JetStream KV bucket,
// module bytes in an Object Store bucket keyed by their sha256. It is safe
// for concurrent use, also by many processes sharing the buckets.
type Registry struct {
	kv        jetstream.KeyValue
	obs       jetstream.ObjectStore
	env       string
	retain    int
	log       *slog.Logger
	purgeOpts []jetstream.KVDeleteOpt

	// kvStream is the functions bucket's stream, asked for its latest
	// active-pointer revision by watchers checking they are not behind.
	kvStream jetstream.Stream
	// watchCheck is how often a Watcher makes that check.
	watchCheck time.Duration
	// objectRead and objectStall bound one read of a module, in all and
	// without progress (see readObject).
	objectRead, objectStall time.Duration
	// watchWait waits before a Watcher reopens its KV watch; tests
	// replace it to hold the watch closed while they change the state.
	watchWait func(ctx context.Context, stop <-chan struct{}, d time.Duration) bool
	// obsStream is the modules bucket's stream, whose delete markers of
	// collected objects are purged (see purgeDeleteMarker).
	obsStream jetstream.Stream
	// onStep, when set (tests only), is called at named points of Deploy
	// and Rollback so that a test can make another change exactly there.
	onStep func(point string)
}

// step calls onStep, if set.
func (r *Registry) step(point string) {
	if r.onStep != nil {
		r.onStep(point)
	}
}

// New creates the env's buckets, or binds them if they exist (an existing
// bucket keeps its configuration, so a node started with other options cannot
// shrink an operator's replicated bucket). The caller owns js's connection.
func New(ctx context.Context, js jetstream.JetStream, opts ...Option) (*Registry, error) {
	if js == nil {
		return nil, errors.New("registry: nil jetstream")
	}
	o := defaultOptions()
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
	}
	kv, err := openKV(ctx, js, jetstream.KeyValueConfig{
		Bucket:         FunctionsBucket(o.env),
		Description:    "nylon function deployment records (env " + o.env + ")",
		History:        kvHistory,
		Storage:        o.storage,
		Replicas:       o.replicas,
		LimitMarkerTTL: markerTTL,
	})
	if err != nil {
		return nil, err
	}
	obs, err := openObjectStore(ctx, js, jetstream.ObjectStoreConfig{
		Bucket:      ModulesBucket(o.env),
		Description: "nylon function modules by sha256 (env " + o.env + ")",
		Storage:     o.storage,
		Replicas:    o.replicas,
	})
	if err != nil {
		return nil, err
	}
	stream, err := js.Stream(ctx, FunctionsStream(o.env))
	if err != nil {
		return nil, fmt.Errorf("registry: bucket[%s]: stream: %w", kv.Bucket(), err)
	}
	obsStream, err := js.Stream(ctx, ModulesStream(o.env))
	if err != nil {
		return nil, fmt.Errorf("registry: bucket[%s]: stream: %w", ModulesBucket(o.env), err)
	}
	r := &Registry{kv: kv, obs: obs, env: o.env, retain: o.retain, log: o.logger,
		kvStream: stream, obsStream: obsStream, watchCheck: watchCheckInterval, watchWait: waitOrStop,
		objectRead: objectReadTimeout, objectStall: objectStallTimeout}

	// Purge markers of trimmed versions would pile up forever (one per
	// deploy) and slow every scan; a bucket with marker TTLs lets them
	// expire. (The stream's info is the bucket's status: KeyValue.Status
	// would ask the server for it again.)
	if stream.CachedInfo().Config.SubjectDeleteMarkerTTL > 0 {
		r.purgeOpts = []jetstream.KVDeleteOpt{jetstream.PurgeTTL(markerTTL)}
	}
	return r, nil
}

func openKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
		// Servers before 2.11: no marker TTLs, plain purges.
		cfg.LimitMarkerTTL = 0
		kv, err = js.CreateKeyValue(ctx, cfg)
	}
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.KeyValue(ctx, cfg.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: bucket[%s]: %w", cfg.Bucket, err)
	}
	return kv, nil
}

func openObjectStore(ctx context.Context, js jetstream.JetStream, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	obs, err := js.CreateObjectStore(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		obs, err = js.ObjectStore(ctx, cfg.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: bucket[%s]: %w", cfg.Bucket, err)
	}
	return obs, nil
}

// Env returns the environment the registry's buckets belong to.
func (r *Registry) Env() string { return r.env }

// Retain returns how many versions per function are kept.
func (r *Registry) Retain() int { return r.retain }

// Get returns the active version of function name.
func (r *Registry) Get(ctx context.Context, name string) (Record, error) {
	if err := protocol.ValidateName(name); err != nil {
		return Record{}, fmt.Errorf("function[%s]: %w", name, err)
	}
	p, _, err := r.getPointer(ctx, name)
	if err != nil {
		return Record{}, err
	}
	return p.Record, nil
}

// GetVersion returns version v of function name if it is retained, with
// Active set if it is the active one.
func (r *Registry) GetVersion(ctx context.Context, name string, v uint64) (Record, error) {
	if err := protocol.ValidateName(name); err != nil {
		return Record{}, fmt.Errorf("function[%s]: %w", name, err)
	}
	p, _, err := r.getPointer(ctx, name)
	switch {
	case err == nil && p.Version == v:
		return p.Record, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return Record{}, err
	}
	return r.getVersion(ctx, name, v)
}

// List returns the active record of every function, sorted by name.
func (r *Registry) List(ctx context.Context) ([]Record, error) {
	entries, err := r.scan(ctx, allActive)
	if err != nil {
		return nil, fmt.Errorf("list functions: %w", err)
	}
	out := make([]Record, 0, len(entries))
	for _, e := range entries {
		p, err := decodePointer(e)
		if err != nil {
			r.log.Warn("registry: skipping undecodable active record", "key", e.Key(), "err", err)
			continue
		}
		out = append(out, p.Record)
	}
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Versions returns the retained versions of function name, newest first,
// with Active set on the active one.
func (r *Registry) Versions(ctx context.Context, name string) ([]Record, error) {
	if err := protocol.ValidateName(name); err != nil {
		return nil, fmt.Errorf("function[%s]: %w", name, err)
	}
	p, _, err := r.getPointer(ctx, name)
	hasActive := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	entries, err := r.scan(ctx, versionsFilter(name))
	if err != nil {
		return nil, fmt.Errorf("function[%s]: versions: %w", name, err)
	}
	out := make([]Record, 0, len(entries)+1)
	for _, e := range entries {
		rec, err := decodeRecord(e)
		if err != nil {
			r.log.Warn("registry: skipping undecodable version record", "key", e.Key(), "err", err)
			continue
		}
		if hasActive && rec.Version == p.Version {
			continue // added from the pointer below
		}
		out = append(out, rec)
	}
	if hasActive {
		// Also when a trim raced a rollback and purged the active version's
		// record: the pointer carries the whole record.
		out = append(out, p.Record)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("function[%s]: %w", name, ErrNotFound)
	}
	slices.SortFunc(out, func(a, b Record) int { return cmp.Compare(b.Version, a.Version) })
	return out, nil
}

// getPointer reads the active pointer and its revision.
func (r *Registry) getPointer(ctx context.Context, name string) (pointer, uint64, error) {
	e, p, err := r.getPointerEntry(ctx, name)
	if err != nil {
		return pointer{}, 0, err
	}
	return p, e.Revision(), nil
}

// getPointerEntry reads the active pointer's entry and decodes it.
func (r *Registry) getPointerEntry(ctx context.Context, name string) (jetstream.KeyValueEntry, pointer, error) {
	e, err := r.kv.Get(ctx, activeKey(name))
	if err != nil {
		if isKeyNotFound(err) {
			return nil, pointer{}, &notFoundError{what: fmt.Sprintf("function[%s]", name), cause: err}
		}
		return nil, pointer{}, fmt.Errorf("function[%s]: read active: %w", name, err)
	}
	p, err := decodePointer(e)
	if err != nil {
		return nil, pointer{}, fmt.Errorf("function[%s]: %w", name, err)
	}
	return e, p, nil
}

// getVersion reads a version record; Active is left false.
func (r *Registry) getVersion(ctx context.Context, name string, v uint64) (Record, error) {
	if v == 0 {
		return Record{}, fmt.Errorf("function[%s] version 0: %w (versions start at 1)", name, ErrNotFound)
	}
	e, err := r.kv.Get(ctx, versionKey(name, v))
	if err != nil {
		if isKeyNotFound(err) {
			return Record{}, &notFoundError{what: fmt.Sprintf("function[%s] version %d", name, v), note: " (not retained)", cause: err}
		}
		return Record{}, fmt.Errorf("function[%s] version %d: %w", name, v, err)
	}
	return decodeRecord(e)
}

func decodeRecord(e jetstream.KeyValueEntry) (Record, error) {
	var rec Record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return Record{}, fmt.Errorf("record[%s]: decode: %w", e.Key(), err)
	}
	rec.Active = false
	return rec, nil
}

func decodePointer(e jetstream.KeyValueEntry) (pointer, error) {
	var p pointer
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		return pointer{}, fmt.Errorf("record[%s]: decode: %w", e.Key(), err)
	}
	p.Active = true
	return p, nil
}

func encodeRecord(rec Record) ([]byte, error) {
	rec.Active = false
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("function[%s] version %d: encode: %w", rec.Name, rec.Version, err)
	}
	return b, nil
}

func encodePointer(rec Record, head uint64) ([]byte, error) {
	rec.Active = false
	b, err := json.Marshal(pointer{Record: rec, Head: head})
	if err != nil {
		return nil, fmt.Errorf("function[%s] version %d: encode: %w", rec.Name, rec.Version, err)
	}
	return b, nil
}

// scan returns the latest live entry of every key matching the filters. It
// reads them with one ordered consumer instead of a Get per key.
func (r *Registry) scan(ctx context.Context, filters ...string) ([]jetstream.KeyValueEntry, error) {
	// WatchFiltered rewrites its slice in place; give it a copy.
	w, err := r.kv.WatchFiltered(ctx, slices.Clone(filters), jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("scan %v: %w", filters, err)
	}
	defer stopWatcher(w)
	var out []jetstream.KeyValueEntry
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("scan %v: watcher closed", filters)
			}
			if e == nil { // all initial values delivered
				return out, nil
			}
			out = append(out, e)
		case <-ctx.Done():
			return nil, fmt.Errorf("scan %v: %w", filters, ctx.Err())
		}
	}
}

// stopWatcher unsubscribes w and drains it: nats.go's delivery callback
// blocks on a full Updates channel, and the channel is closed only once that
// callback returns, so an undrained watcher would leak its goroutine.
func stopWatcher(w jetstream.KeyWatcher) {
	// Stop deletes the watch's consumer, a JetStream request: while NATS
	// is down it waits for its timeout (5 s) and then fails, and a node's
	// drain or a gateway's shutdown during an outage would wait with it.
	// Nothing needs it done: an ephemeral consumer the request does not
	// reach is removed by the server once inactive.
	go func() {
		_ = w.Stop()
		for range w.Updates() {
		}
	}()
}

package natsconn

import (
	"context"
	"io"

	"github.com/nats-io/nats.go/jetstream"
)

// watchedJS is the JetStream context Conn.JetStream returns: the same as
// nats.go's, except that the key-value and object stores it hands out report
// the outcome of every write to the storeWatch, so StoreHealth can tell
// when JetStream stops storing them. A stream stopped by a write error
// looks healthy in stream info and the server keeps answering reads, so the
// writes themselves are the signal that needs no extra traffic and works
// with any server.
type watchedJS struct {
	jetstream.JetStream
	w *storeWatch
}

func (j watchedJS) KeyValue(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	return j.kv(j.JetStream.KeyValue(ctx, bucket))
}

func (j watchedJS) CreateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return j.kv(j.JetStream.CreateKeyValue(ctx, cfg))
}

func (j watchedJS) UpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return j.kv(j.JetStream.UpdateKeyValue(ctx, cfg))
}

func (j watchedJS) CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return j.kv(j.JetStream.CreateOrUpdateKeyValue(ctx, cfg))
}

func (j watchedJS) ObjectStore(ctx context.Context, bucket string) (jetstream.ObjectStore, error) {
	return j.obs(bucket)(j.JetStream.ObjectStore(ctx, bucket))
}

func (j watchedJS) CreateObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	return j.obs(cfg.Bucket)(j.JetStream.CreateObjectStore(ctx, cfg))
}

func (j watchedJS) UpdateObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	return j.obs(cfg.Bucket)(j.JetStream.UpdateObjectStore(ctx, cfg))
}

func (j watchedJS) CreateOrUpdateObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	return j.obs(cfg.Bucket)(j.JetStream.CreateOrUpdateObjectStore(ctx, cfg))
}

func (j watchedJS) kv(kv jetstream.KeyValue, err error) (jetstream.KeyValue, error) {
	if err != nil {
		return nil, err
	}
	// nats.go names a bucket's stream KV_<bucket>, as nats-server's logs do.
	return watchedKV{KeyValue: kv, stream: "KV_" + kv.Bucket(), w: j.w}, nil
}

// obs wraps the object store of bucket (its Status would cost a round
// trip to learn the name).
func (j watchedJS) obs(bucket string) func(jetstream.ObjectStore, error) (jetstream.ObjectStore, error) {
	return func(store jetstream.ObjectStore, err error) (jetstream.ObjectStore, error) {
		if err != nil {
			return nil, err
		}
		// nats.go names a bucket's stream OBJ_<bucket>.
		return watchedObjectStore{ObjectStore: store, stream: "OBJ_" + bucket, w: j.w}, nil
	}
}

// watchedKV reports the outcome of every write of a key-value store.
type watchedKV struct {
	jetstream.KeyValue
	stream string
	w      *storeWatch
}

func (k watchedKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := k.KeyValue.Put(ctx, key, value)
	k.w.observe(k.stream, err)
	return rev, err
}

func (k watchedKV) PutString(ctx context.Context, key, value string) (uint64, error) {
	rev, err := k.KeyValue.PutString(ctx, key, value)
	k.w.observe(k.stream, err)
	return rev, err
}

func (k watchedKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	rev, err := k.KeyValue.Create(ctx, key, value, opts...)
	k.w.observe(k.stream, err)
	return rev, err
}

func (k watchedKV) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	rev, err := k.KeyValue.Update(ctx, key, value, revision)
	k.w.observe(k.stream, err)
	return rev, err
}

func (k watchedKV) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	err := k.KeyValue.Delete(ctx, key, opts...)
	k.w.observe(k.stream, err)
	return err
}

func (k watchedKV) Purge(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	err := k.KeyValue.Purge(ctx, key, opts...)
	k.w.observe(k.stream, err)
	return err
}

// watchedObjectStore reports the outcome of every write of an object store.
type watchedObjectStore struct {
	jetstream.ObjectStore
	stream string
	w      *storeWatch
}

func (o watchedObjectStore) Put(ctx context.Context, meta jetstream.ObjectMeta, r io.Reader) (*jetstream.ObjectInfo, error) {
	info, err := o.ObjectStore.Put(ctx, meta, r)
	o.w.observe(o.stream, err)
	return info, err
}

func (o watchedObjectStore) PutBytes(ctx context.Context, name string, data []byte) (*jetstream.ObjectInfo, error) {
	info, err := o.ObjectStore.PutBytes(ctx, name, data)
	o.w.observe(o.stream, err)
	return info, err
}

func (o watchedObjectStore) PutString(ctx context.Context, name, data string) (*jetstream.ObjectInfo, error) {
	info, err := o.ObjectStore.PutString(ctx, name, data)
	o.w.observe(o.stream, err)
	return info, err
}

func (o watchedObjectStore) PutFile(ctx context.Context, file string) (*jetstream.ObjectInfo, error) {
	info, err := o.ObjectStore.PutFile(ctx, file)
	o.w.observe(o.stream, err)
	return info, err
}

func (o watchedObjectStore) Delete(ctx context.Context, name string) error {
	err := o.ObjectStore.Delete(ctx, name)
	o.w.observe(o.stream, err)
	return err
}

func (o watchedObjectStore) UpdateMeta(ctx context.Context, name string, meta jetstream.ObjectMeta) error {
	err := o.ObjectStore.UpdateMeta(ctx, name, meta)
	o.w.observe(o.stream, err)
	return err
}

func (o watchedObjectStore) AddLink(ctx context.Context, name string, obj *jetstream.ObjectInfo) (*jetstream.ObjectInfo, error) {
	info, err := o.ObjectStore.AddLink(ctx, name, obj)
	o.w.observe(o.stream, err)
	return info, err
}

// AddBucketLink unwraps bucket: nats.go links only to its own object store
// type.
func (o watchedObjectStore) AddBucketLink(ctx context.Context, name string, bucket jetstream.ObjectStore) (*jetstream.ObjectInfo, error) {
	if wb, ok := bucket.(watchedObjectStore); ok {
		bucket = wb.ObjectStore
	}
	info, err := o.ObjectStore.AddBucketLink(ctx, name, bucket)
	o.w.observe(o.stream, err)
	return info, err
}

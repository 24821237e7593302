package wasmhost

import (
	"crypto/sha256"
	"sync"
)

// compileLocks serializes the compiles of identical bytes on one Host,
// while compiles of different modules still run in parallel.
//
// wazero v1.12 publishes a module it reads from the on-disk compilation
// cache to its runtime's in-memory cache before it has finished it (the
// entry preambles, engine_cache.go getCompiledModule), so a second
// CompileModule of the same bytes at that moment takes the half-made module
// and instantiates it: a data race, and at worst an index-out-of-range
// panic that would end the process (wazero/wazero#2547, open). Two
// uploads of one module, or an upload and a node's load of the same code,
// are such compiles.
type compileLocks struct {
	mu    sync.Mutex
	locks map[[sha256.Size]byte]*compileLock
}

type compileLock struct {
	mu    sync.Mutex
	users int // holders and waiters; the entry goes when the last leaves
}

// lock waits until no other compile of wasm runs on the host and returns
// the function that lets the next one in.
func (c *compileLocks) lock(wasm []byte) (unlock func()) {
	key := sha256.Sum256(wasm)
	c.mu.Lock()
	if c.locks == nil {
		c.locks = make(map[[sha256.Size]byte]*compileLock)
	}
	l := c.locks[key]
	if l == nil {
		l = &compileLock{}
		c.locks[key] = l
	}
	l.users++
	c.mu.Unlock()

	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		c.mu.Lock()
		if l.users--; l.users == 0 {
			delete(c.locks, key)
		}
		c.mu.Unlock()
	}
}

package abi

import (
	"context"
	"errors"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// ModuleName is the import module of the host functions.
const ModuleName = "nylon"

// ErrOutOfBounds is wrapped by the *BoundsError a host function panics with
// when a guest passes a pointer and length outside its memory.
var ErrOutOfBounds = errors.New("out of bounds memory access")

// BoundsError says which argument of which host function pointed outside the
// guest's memory. A host function panics with it; wazero turns the panic into
// a trap of the current call.
type BoundsError struct {
	Func string // "read", "write" or "log"
	Arg  string // "key", "buf", "a", "b" or "msg"
	Ptr  uint32
	Len  uint32
	Size uint32 // the guest memory's size in bytes
}

func (e *BoundsError) Error() string {
	return fmt.Sprintf("nylon.%s: %s [%d, +%d) is outside guest memory of %d bytes", e.Func, e.Arg, e.Ptr, e.Len, e.Size)
}

func (e *BoundsError) Unwrap() error { return ErrOutOfBounds }

// guestBytes returns the n bytes of mem at ptr, aliasing guest memory: valid
// only until the guest runs again. n == 0 yields nil whatever ptr is, because
// a guest language may legitimately pass any address (often 0 or one past an
// allocation) with an empty value.
func guestBytes(mem api.Memory, fn, arg string, ptr, n uint32) []byte {
	if n == 0 {
		return nil
	}
	if mem == nil {
		panic(&BoundsError{Func: fn, Arg: arg, Ptr: ptr, Len: n})
	}
	b, ok := mem.Read(ptr, n)
	if !ok {
		panic(&BoundsError{Func: fn, Arg: arg, Ptr: ptr, Len: n, Size: mem.Size()})
	}
	return b
}

var (
	i32 = api.ValueTypeI32
)

// Signature returns the parameter and result types the ABI requires of the
// host function name, and false for a name the "nylon" module does not have.
func Signature(name string) (params, results []api.ValueType, ok bool) {
	switch name {
	case "read":
		return []api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i32}, true
	case "write":
		return []api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i32}, true
	case "log":
		return []api.ValueType{i32, i32, i32}, nil, true
	}
	return nil, nil, false
}

// Register instantiates the host module "nylon" in r. Call it once per
// runtime, before instantiating any guest.
func Register(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder(ModuleName)
	fn := func(name string, f api.GoModuleFunc, paramNames ...string) {
		params, results, _ := Signature(name)
		b.NewFunctionBuilder().
			WithGoModuleFunction(f, params, results).
			WithParameterNames(paramNames...).
			Export(name)
	}
	fn("read", hostRead, "method", "key_ptr", "key_len", "buf_ptr", "buf_cap")
	fn("write", hostWrite, "method", "a_ptr", "a_len", "b_ptr", "b_len")
	fn("log", hostLog, "level", "ptr", "len")
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("host module %q: %w", ModuleName, err)
	}
	return nil
}

// hostRead implements read(method, key_ptr, key_len, buf_ptr, buf_cap) -> i32.
func hostRead(ctx context.Context, mod api.Module, stack []uint64) {
	method := uint32(stack[0])
	mem := mod.Memory()
	key := guestBytes(mem, "read", "key", uint32(stack[1]), uint32(stack[2]))
	// The buffer is checked even when nothing will be copied, so a bad
	// pointer fails the same way whatever the value's length.
	buf := guestBytes(mem, "read", "buf", uint32(stack[3]), uint32(stack[4]))
	n := int32(-1)
	if s := stateFrom(ctx); s != nil && s.active {
		n = s.read(method, key, buf)
	}
	stack[0] = api.EncodeI32(n)
}

// hostWrite implements write(method, a_ptr, a_len, b_ptr, b_len) -> i32.
func hostWrite(ctx context.Context, mod api.Module, stack []uint64) {
	method := uint32(stack[0])
	mem := mod.Memory()
	a := guestBytes(mem, "write", "a", uint32(stack[1]), uint32(stack[2]))
	b := guestBytes(mem, "write", "b", uint32(stack[3]), uint32(stack[4]))
	rc := ResultNotAllowed
	if s := stateFrom(ctx); s != nil && s.active {
		rc = s.write(method, a, b)
	}
	stack[0] = api.EncodeI32(rc)
}

// hostLog implements log(level, ptr, len).
func hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	level := api.DecodeI32(stack[0])
	msg := guestBytes(mod.Memory(), "log", "msg", uint32(stack[1]), uint32(stack[2]))
	if s := stateFrom(ctx); s != nil {
		s.log(ctx, level, msg)
	}
}

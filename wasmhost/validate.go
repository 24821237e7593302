package wasmhost

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/wasmhost/internal/abi"
)

// Info describes a module that passed validation.
type Info struct {
	// Phases the module handles (its nylon_phases result).
	Phases protocol.PhaseSet
	// Size of the module binary in bytes.
	Size int
	// MemoryPages is the module's initial memory in 64 KiB pages.
	MemoryPages uint32
}

// Export names of ABI v1.
const (
	exportMemory  = "memory"
	exportMarker  = "nylon_abi_v1"
	exportPhases  = "nylon_phases"
	exportHandle  = "nylon_handle"
	exportInit    = "_initialize"
	importWASI    = "wasi_snapshot_preview1"
	wasmPageBytes = 1 << 16
)

var wasmMagic = []byte{0x00, 'a', 's', 'm'}

// checkHeader tells apart "not wasm at all" from "wasm wazero cannot
// compile", so an upload of the wrong file gets a clear answer.
func checkHeader(wasm []byte) error {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], wasmMagic) {
		head := wasm
		if len(head) > 4 {
			head = head[:4]
		}
		return fmt.Errorf("%w: want magic \\0asm, got %q (%d bytes)", ErrNotWasm, head, len(wasm))
	}
	if v := binary.LittleEndian.Uint32(wasm[4:8]); v != 1 {
		return fmt.Errorf("%w: binary format version %d, want 1", ErrNotWasm, v)
	}
	return nil
}

type signature struct {
	params, results []api.ValueType
}

// requiredExports lists the functions ABI v1 requires, in the order problems
// are reported.
var requiredExports = [...]struct {
	name string
	sig  signature
}{
	{exportMarker, signature{}},
	{exportPhases, signature{results: []api.ValueType{api.ValueTypeI32}}},
	{exportHandle, signature{params: []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, results: []api.ValueType{api.ValueTypeI32}}},
	{exportInit, signature{}},
}

// checkABI reports every way cm's exports and imports break ABI v1, in one
// error wrapping ErrABI.
// wasi holds the functions of the host's WASI module, to check imports
// against before instantiation turns a mismatch into a link error.
func checkABI(cm wazero.CompiledModule, wasi map[string]api.FunctionDefinition) error {
	var problems []string
	if _, ok := cm.ExportedMemories()[exportMemory]; !ok {
		problems = append(problems, fmt.Sprintf("missing export %q (the guest's memory)", exportMemory))
	}
	exports := cm.ExportedFunctions()
	for _, want := range requiredExports {
		def, ok := exports[want.name]
		if !ok {
			problems = append(problems, fmt.Sprintf("missing export %q %s", want.name, formatSig(want.sig)))
			continue
		}
		if got := (signature{def.ParamTypes(), def.ResultTypes()}); !sameSig(got, want.sig) {
			problems = append(problems, fmt.Sprintf("export %q: signature %s, want %s", want.name, formatSig(got), formatSig(want.sig)))
		}
	}
	for _, def := range cm.ImportedMemories() {
		mod, name, _ := def.Import()
		problems = append(problems, fmt.Sprintf("import %q.%q: a memory import is not allowed (export one as %q)", mod, name, exportMemory))
	}
	for _, def := range cm.ImportedFunctions() {
		mod, name, _ := def.Import()
		switch mod {
		case abi.ModuleName:
			params, results, ok := abi.Signature(name)
			if !ok {
				problems = append(problems, fmt.Sprintf("import %q.%q: no such host function (want read, write or log)", mod, name))
				continue
			}
			want := signature{params, results}
			if got := (signature{def.ParamTypes(), def.ResultTypes()}); !sameSig(got, want) {
				problems = append(problems, fmt.Sprintf("import %q.%q: signature %s, want %s", mod, name, formatSig(got), formatSig(want)))
			}
		case importWASI:
			have, ok := wasi[name]
			if !ok {
				problems = append(problems, fmt.Sprintf("import %q.%q: no such WASI function", mod, name))
				continue
			}
			want := signature{have.ParamTypes(), have.ResultTypes()}
			if got := (signature{def.ParamTypes(), def.ResultTypes()}); !sameSig(got, want) {
				problems = append(problems, fmt.Sprintf("import %q.%q: signature %s, want %s", mod, name, formatSig(got), formatSig(want)))
			}
		case yieldModule:
			// The one import Compile's rewrite adds (the rewriter refuses a
			// module that imports it itself); any other name is the guest's.
			got := signature{def.ParamTypes(), def.ResultTypes()}
			if name != yieldName || !sameSig(got, signature{nil, []api.ValueType{api.ValueTypeI32}}) {
				problems = append(problems, fmt.Sprintf("import %q.%q: module %q is reserved for the host", mod, name, yieldModule))
			}
		default:
			problems = append(problems, fmt.Sprintf("import %q.%q: only %q and %q imports are allowed", mod, name, abi.ModuleName, importWASI))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrABI, strings.Join(problems, "; "))
	}
	return nil
}

// initialPages returns the initial size of the exported memory.
func initialPages(cm wazero.CompiledModule) uint32 {
	if m, ok := cm.ExportedMemories()[exportMemory]; ok {
		return m.Min()
	}
	return 0
}

func sameSig(a, b signature) bool {
	return bytes.Equal(a.params, b.params) && bytes.Equal(a.results, b.results)
}

// formatSig renders a signature like "(i32, i32) -> i32".
func formatSig(s signature) string {
	names := func(ts []api.ValueType) string {
		parts := make([]string, len(ts))
		for i, t := range ts {
			parts[i] = api.ValueTypeName(t)
		}
		return strings.Join(parts, ", ")
	}
	out := "(" + names(s.params) + ")"
	switch len(s.results) {
	case 0:
		return out
	case 1:
		return out + " -> " + names(s.results)
	}
	return out + " -> (" + names(s.results) + ")"
}

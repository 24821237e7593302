//go:build wasip1

package sdk

// The guest ABI v1 exports. The node calls _initialize (which runs every
// package's init, registering the handlers) once per instance, then these.

// nylonABIv1 marks the module as speaking guest ABI v1.
//
//go:wasmexport nylon_abi_v1
func nylonABIv1() {}

// nylonPhases reports the phases the module registered handlers for.
//
//go:wasmexport nylon_phases
func nylonPhases() int32 { return int32(guest.handlers.phases()) }

// nylonHandle runs one call; see instance.handle.
//
//go:wasmexport nylon_handle
func nylonHandle(phase, event int32) int32 { return guest.handle(uint32(phase), uint32(event)) }

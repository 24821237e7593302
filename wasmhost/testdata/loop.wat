;; loop.wasm: nylon_handle spins forever, to test call timeouts.
;; Built by loopModule in wasm_builder_test.go; rebuild with
;;   go test ./wasmhost -run TestCommittedModules -update
(module
  (import "nylon" "read"  (func $read  (param i32 i32 i32 i32 i32) (result i32)))
  (import "nylon" "write" (func $write (param i32 i32 i32 i32 i32) (result i32)))
  (import "nylon" "log"   (func $log   (param i32 i32 i32)))
  (memory (export "memory") 1)
  (func (export "nylon_abi_v1"))
  (func (export "nylon_phases") (result i32) (i32.const 2)) ;; request_filter
  (func (export "nylon_handle") (param i32 i32) (result i32)
    (loop $l (br $l))
    (unreachable))
  (func (export "_initialize")))

;; initloop.wasm: _initialize spins forever, so that validating or starting
;; the module runs until its deadline or its context ends.
;; Built by initLoopModule in wasm_builder_test.go; rebuild with
;;   go test ./wasmhost -run TestCommittedModules -update
(module
  (import "nylon" "read"  (func $read  (param i32 i32 i32 i32 i32) (result i32)))
  (import "nylon" "write" (func $write (param i32 i32 i32 i32 i32) (result i32)))
  (import "nylon" "log"   (func $log   (param i32 i32 i32)))
  (memory (export "memory") 1)
  (func (export "nylon_abi_v1"))
  (func (export "nylon_phases") (result i32) (i32.const 2)) ;; request_filter
  (func (export "nylon_handle") (param i32 i32) (result i32) (i32.const 0))
  (func (export "_initialize")
    (loop $l (br $l))))

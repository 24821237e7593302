;; hello.wasm: sets response header "x-hello: world" and ends the request.
;; Built by helloModule in wasm_builder_test.go; rebuild with
;;   go test ./wasmhost -run TestCommittedModules -update
(module
  (import "nylon" "read"  (func $read  (param i32 i32 i32 i32 i32) (result i32)))
  (import "nylon" "write" (func $write (param i32 i32 i32 i32 i32) (result i32)))
  (import "nylon" "log"   (func $log   (param i32 i32 i32)))
  (memory (export "memory") 1)
  (func (export "nylon_abi_v1"))
  (func (export "nylon_phases") (result i32) (i32.const 2)) ;; request_filter
  (func (export "nylon_handle") (param i32 i32) (result i32)
    (drop (call $write (i32.const 100) (i32.const 0) (i32.const 7) (i32.const 16) (i32.const 5)))
    (i32.const 1)) ;; End
  (func (export "_initialize"))
  (data (i32.const 0) "x-hello")
  (data (i32.const 16) "world"))

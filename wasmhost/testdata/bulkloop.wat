;; bulkloop.wasm: nylon_handle fills its 16 MiB memory in a loop forever, to
;; test that bulk memory instructions are charged by their length and the
;; call stops at its timeout. Built by bulkLoopModule in bulk_test.go;
;; rebuild with
;;   go test ./wasmhost -run TestCommittedModules -update
(module
  (import "nylon" "read"  (func $read  (param i32 i32 i32 i32 i32) (result i32)))
  (import "nylon" "write" (func $write (param i32 i32 i32 i32 i32) (result i32)))
  (import "nylon" "log"   (func $log   (param i32 i32 i32)))
  (memory (export "memory") 256)
  (func (export "nylon_abi_v1"))
  (func (export "nylon_phases") (result i32) (i32.const 2)) ;; request_filter
  (func (export "nylon_handle") (param i32 i32) (result i32)
    (loop $l
      (memory.fill (i32.const 0) (i32.const 0) (i32.const 0x1000000))
      (br $l))
    (unreachable))
  (func (export "_initialize")))

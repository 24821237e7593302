;; tablegrow.wasm: nylon_handle grows its table by 1000 entries, which must
;; work, then by 2^24, which the host's table cap (2^20 entries) must refuse;
;; it answers Next if both went so, else Error. Built by tableGrowModule in
;; bulk_test.go; rebuild with
;;   go test ./wasmhost -run TestCommittedModules -update
(module
  (import "nylon" "read"  (func $read  (param i32 i32 i32 i32 i32) (result i32)))
  (import "nylon" "write" (func $write (param i32 i32 i32 i32 i32) (result i32)))
  (import "nylon" "log"   (func $log   (param i32 i32 i32)))
  (table 0 funcref)
  (memory (export "memory") 1)
  (func (export "nylon_abi_v1"))
  (func (export "nylon_phases") (result i32) (i32.const 2)) ;; request_filter
  (func (export "nylon_handle") (param i32 i32) (result i32)
    (i32.and
      (i32.ne (table.grow 0 (ref.null func) (i32.const 1000)) (i32.const -1))
      (i32.eq (table.grow 0 (ref.null func) (i32.const 0x1000000)) (i32.const -1)))
    (if (result i32) (then (i32.const 0)) (else (i32.const 2))))
  (func (export "_initialize")))

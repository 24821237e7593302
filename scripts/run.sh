#!/usr/bin/env bash
# `make run`: start `nylon serve` on the embedded NATS server, deploy the
# example functions once the admin API answers, and keep serving until
# Ctrl-C (which drains and stops serve). Extra serve flags come as arguments.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=bin/nylon
wasm=build/wasm
admin=${NYLON_ADMIN:-127.0.0.1:8081}

"$bin" serve --admin "$admin" "$@" &
pid=$!
trap 'kill -INT "$pid" 2>/dev/null || true; wait "$pid" || true' INT TERM
trap 'kill -INT "$pid" 2>/dev/null || true' EXIT

export NYLON_ADMIN_URL="http://$admin"
for _ in $(seq 1 100); do
	if "$bin" ls >/dev/null 2>&1; then break; fi
	if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; exit 1; fi
	sleep 0.1
done

# --wait: a function answers once this returns (a node has compiled it).
deploy() { "$bin" deploy "$@" --quiet --wait 2m >/dev/null && echo "deployed $1"; }
deploy hello "$wasm/functions_examples_hello.wasm" --route /hello --route '/hello/{name}'
deploy chat "$wasm/functions_examples_chat.wasm" --route /chat/ws
deploy auth "$wasm/functions_examples_auth.wasm" --config token=dev-token --config user=dev
deploy headers "$wasm/functions_examples_headers.wasm"
deploy logger "$wasm/functions_examples_logger.wasm"
cat <<MSG

Try:  curl 'http://127.0.0.1:8080/hello?name=you'
      open http://127.0.0.1:8080/chat/ in two browser tabs
      $bin ls        (the admin API is $NYLON_ADMIN_URL)
Ctrl-C drains and stops.
MSG
wait "$pid"

#!/usr/bin/env bash
# The OpenAPI contract, held by schemathesis (PyPI) against a running `kuvert serve --dev`:
# no server error, no undocumented status code, no response outside its schema. Settings and
# the reasons for each exception are in .ci/schemathesis.toml.
#   usage: .ci/contract.sh [path of the kuvert binary, default target/debug/kuvert]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/debug/kuvert}"
dir="$(mktemp -d)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$dir/kuvert.toml" <<TOML
[http]
listen = "127.0.0.1:$port"
[smtp]
submission_listen = "127.0.0.1:0"
submission_tls_listen = "127.0.0.1:0"
inbound_listen = "127.0.0.1:0"
TOML
"$bin" serve --dev --data-dir "$dir/data" --config "$dir/kuvert.toml" >"$dir/out.log" 2>"$dir/err.log" &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 60); do
    if [ -s "$dir/data/dev-api-key" ] && curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; then break; fi
    sleep 1
done
key="$(cat "$dir/data/dev-api-key")"
# pip puts `st` beside the interpreter; under pyenv its shim may not exist yet.
st="$(dirname "$(python3 -c 'import sys; print(sys.executable)')")/st"
[ -x "$st" ] || st=st
"$st" --config-file .ci/schemathesis.toml run "http://127.0.0.1:$port/v1/openapi.json" \
    -H "Authorization: Bearer $key" --no-color

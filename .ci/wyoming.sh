#!/usr/bin/env bash
# The Wyoming intent service against a client nobody here wrote: the reference implementation (python3-wyoming,
# OHF-Voice/wyoming 1.6.2, pure Python) as Debian 13 packages it, fetched without touching this machine's apt setup
# (.ci/trixie-python.sh), driving the module the way Home Assistant does (deployment/ci/wyoming-client.py).
#
#   bash .ci/wyoming.sh EDGESLM_BINARY
#
# Starts `EDGESLM_BINARY run --profile wyoming --intents FOLDER` on a free port, FOLDER being Home Assistant's
# templates (tests/data/ha_intents_en/templates) with deployment/homeassistant/out-of-scope.jsonl beside them, as
# README.md tells a Home Assistant user to set it up (a model cache of its own under artifacts/wyoming;
# EDGESLM_WYOMING_MODEL=FILE.gguf, when that file exists, skips converting the bundled model), waits until it
# listens, runs the client, then checks that the module is still running. Prints one `check passed: ...` /
# `check FAILED: ...` line per case and `wyoming: N passed, N failed` last; exits non-zero when anything failed.
# Logs go to artifacts/wyoming/. Needs python3 (Debian 12's 3.11 is enough) and apt-get.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
OUT=$ROOT/artifacts/wyoming
BINARY=${1:-}
START_TIMEOUT=${WYOMING_START_TIMEOUT:-900}
PASSED=0
FAILED=0

check() { # check NAME OK(0|1) [detail]
    if [[ $2 == 0 ]]; then
        PASSED=$((PASSED + 1)); echo "check passed: $1${3:+ ($3)}"
    else
        FAILED=$((FAILED + 1)); echo "check FAILED: $1${3:+ ($3)}"
    fi
}
finish() {
    echo "wyoming: $PASSED passed, $FAILED failed"
    (( FAILED == 0 && PASSED > 0 ))
    exit $?
}

[[ -n $BINARY && -x $BINARY ]] || { check "edgeslm binary given" 1 "usage: $0 EDGESLM_BINARY (got '${BINARY}')"; finish; }
BINARY=$(realpath "$BINARY")
rm -rf "$OUT"
mkdir -p "$OUT"
# Debian 12's own python3 when there is one (what the packages are checked against), else the first on PATH.
PYTHON=/usr/bin/python3
[[ -x $PYTHON ]] || PYTHON=$(command -v python3)

# --- 1. the reference client --------------------------------------------------------------------------------
if site=$(bash .ci/trixie-python.sh "$OUT/trixie" python3-wyoming 2> "$OUT/fetch.log"); then
    version=$(PYTHONPATH=$site "$PYTHON" -c 'from wyoming.version import __version__; print(__version__)' 2>> "$OUT/fetch.log")
    check "python3-wyoming from Debian 13 fetched and imported by $("$PYTHON" --version 2>&1)" "$([[ -n $version ]]; echo $?)" "wyoming ${version:-not importable}"
else
    tail -15 "$OUT/fetch.log" | sed 's/^/    /'
    check "python3-wyoming from Debian 13 fetched" 1 "see $OUT/fetch.log"
    finish
fi

# The zeroconf announcement: avahi's service file names the Wyoming service type and the default port.
detail=$("$PYTHON" - deployment/avahi/edgeslm-wyoming.service src/EdgeModule/Wyoming/WyomingSettings.cs <<'PY' 2>&1
import re, sys, xml.etree.ElementTree as ET
service = ET.parse(sys.argv[1]).getroot().find("service")
default = re.search(r"int Port \{ get; set; \} = (\d+);", open(sys.argv[2]).read()).group(1)
kind, port = service.findtext("type"), service.findtext("port")
print(f"{kind} on port {port}, Wyoming:Port defaults to {default}")
sys.exit(0 if kind == "_wyoming._tcp" and port == default else 1)
PY
)
check "deployment/avahi/edgeslm-wyoming.service announces _wyoming._tcp on the default port" "$?" "$detail"

# --- 2. the module ------------------------------------------------------------------------------------------
intents=$OUT/intents
cp -r "$ROOT/tests/data/ha_intents_en/templates" "$intents"
cp "$ROOT/deployment/homeassistant/out-of-scope.jsonl" "$intents/"
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
args=(run --profile wyoming --intents "$intents" --Wyoming:Port "$port" --Wyoming:Address 127.0.0.1)
[[ ! -s ${EDGESLM_WYOMING_MODEL:-} ]] || args+=(--model "$EDGESLM_WYOMING_MODEL")
mkdir -p "$OUT/cache"
EDGESLM_CACHE=$OUT/cache "$BINARY" "${args[@]}" < /dev/null > "$OUT/module.log" 2>&1 &
module=$!
listening=1
t0=$SECONDS
while (( SECONDS - t0 < START_TIMEOUT )); do
    kill -0 "$module" 2> /dev/null || break
    if "$PYTHON" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$port" 2> /dev/null; then
        listening=0
        break
    fi
    sleep 1
done
check "edgeslm run --profile wyoming --intents <HA templates + out-of-scope examples> listens (no broker)" "$listening" \
    "port $port after $((SECONDS - t0)) s"
if (( listening != 0 )); then
    tail -20 "$OUT/module.log" | sed 's/^/    /'
    kill "$module" 2> /dev/null; wait "$module" 2> /dev/null
    finish
fi

# --- 3. the client's checks ---------------------------------------------------------------------------------
rc=0
PYTHONPATH=$site timeout 600 "$PYTHON" deployment/ci/wyoming-client.py --port "$port" < /dev/null > "$OUT/client.log" 2>&1 || rc=$?
grep -E '^check (passed|FAILED): ' "$OUT/client.log"
summary=$(grep -E '^wyoming: [0-9]+ passed, [0-9]+ failed$' "$OUT/client.log" | tail -1)
if [[ -n $summary ]]; then
    PASSED=$((PASSED + $(awk '{ print $2 }' <<< "$summary")))
    FAILED=$((FAILED + $(awk '{ print $4 }' <<< "$summary")))
else
    tail -20 "$OUT/client.log" | sed 's/^/    /'
    check "the client ran to its summary" 1 "exit $rc; see $OUT/client.log"
fi

# --- 4. the module survived all of it -----------------------------------------------------------------------
alive=1
kill -0 "$module" 2> /dev/null && alive=0
check "the module is still running after every check" "$alive"
health=0
"$BINARY" health --profile wyoming --Wyoming:Port "$port" --Wyoming:Address 127.0.0.1 < /dev/null > "$OUT/health.log" 2>&1 || health=$?
check "edgeslm health --profile wyoming says online" "$health" "$(head -1 "$OUT/health.log")"
kill -TERM "$module" 2> /dev/null
stopped=1
for _ in $(seq 100); do
    kill -0 "$module" 2> /dev/null || { stopped=0; break; }
    sleep 0.1
done
(( stopped == 0 )) || kill -KILL "$module" 2> /dev/null
wait "$module" 2> /dev/null
check "the module stops on SIGTERM within 10 s" "$stopped"
finish

#!/usr/bin/env bash
# Home Assistant sentences through EdgeSlm's Wyoming intent service against hassil 3.0.1 (Home Assistant's own
# matcher, python3-hassil from Debian 13) on the same templates and fixtures (tests/data/ha_intents_en/templates):
# intent right, intent and every slot value right, and the latency of one Wyoming request (p50/p99). A benchmark,
# not a test: it prints a Markdown table (docs/wyoming.md keeps one) and writes every answer to OUTPUT_DIR.
#
#   tests/EdgeSlm.Benchmarks/wyoming-vs-hassil.sh [OUTPUT_DIR] [EDGESLM_BINARY]
#
# The sentences: a dev split carved from ha_intents_en/train.jsonl (every 5th line, 165 sentences);
# EdgeSlm never trains on that file (it learns from the templates), and the dataset's test split is never used.
# Then 30 sentences that are no command (Wyoming/out-of-scope-dev.txt, written here, none of them in
# deployment/homeassistant/out-of-scope.jsonl). Without EDGESLM_BINARY, src/EdgeModule is built in Release. Three
# modules run: on the templates as they are; on the templates with deployment/homeassistant/out-of-scope.jsonl
# beside them (what README recommends); and that again with Wyoming:HomeAssistantIntentsOnly=false.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# The dev sentences come from ha_intents_en/train.jsonl: DATASETS_DIR, else tests/data when the repository holds
# it, else the shared datasets beside the repository.
datasets=${DATASETS_DIR:-$repo/tests/data}
[[ -f $datasets/ha_intents_en/train.jsonl ]] || datasets=$repo/../shared/datasets
datasets=$(cd "$datasets" && pwd)
out=$(realpath -m "${1:-$repo/artifacts/wyoming-vs-hassil}")
binary=${2:-}
templates=$repo/tests/data/ha_intents_en/templates
mkdir -p "$out"
python=/usr/bin/python3
[[ -x $python ]] || python=$(command -v python3)

if [[ -z $binary ]]; then
    dotnet build "$repo/src/EdgeModule" -c Release -o "$out/edgeslm" > "$out/build.log"
    binary=$out/edgeslm/edgeslm
fi
packages=(python3-wyoming python3-hassil python3-unicode-rbnf)
# hassil needs PyYAML; trixie's python3-yaml falls back to pure Python on another python3 version.
"$python" -c 'import yaml' 2> /dev/null || packages+=(python3-yaml)
site=$(bash "$repo/.ci/trixie-python.sh" "$out/trixie" "${packages[@]}" 2> "$out/fetch.log")

"$python" - "$datasets/ha_intents_en/train.jsonl" "$out/dev.jsonl" <<'PY'
import sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
open(sys.argv[2], "w", encoding="utf-8").write("".join(l + "\n" for i, l in enumerate(lines) if i % 5 == 4))
PY

# The recommended intents folder: the templates and the examples of what is no command.
rm -rf "$out/intents"
cp -r "$templates" "$out/intents"
cp "$repo/deployment/homeassistant/out-of-scope.jsonl" "$out/intents/"

free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pids=()
trap 'kill "${pids[@]}" 2> /dev/null || true' EXIT
start() { # start PORT LOG INTENTS EXTRA...: a module, its model cache in OUTPUT_DIR
    local port=$1 log=$2 intents=$3
    shift 3
    EDGESLM_CACHE=$out/cache "$binary" run --profile wyoming --intents "$intents" --Wyoming:Address 127.0.0.1 --Wyoming:Port "$port" "$@" \
        < /dev/null > "$log" 2>&1 &
    pids+=($!)
}
wait_for() { # wait_for PORT
    for _ in $(seq 900); do
        "$python" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" 2> /dev/null && return 0
        sleep 1
    done
    echo "the module on port $1 did not start; see $out/module-*.log" >&2
    return 1
}
# One at a time: the first start converts the model, and each set of intents is trained once (then cached).
port_templates=$(free_port)
start "$port_templates" "$out/module-templates.log" "$templates"
wait_for "$port_templates"
port=$(free_port)
start "$port" "$out/module-recommended.log" "$out/intents"
wait_for "$port"
port_all=$(free_port)
start "$port_all" "$out/module-every-intent.log" "$out/intents" --Wyoming:HomeAssistantIntentsOnly false
wait_for "$port_all"

echo "$(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $("$binary" --version 2>&1 | head -1)" | tee "$out/table.md"
PYTHONPATH=$site "$python" "$repo/tests/EdgeSlm.Benchmarks/Wyoming/wyoming_vs_hassil.py" --dev "$out/dev.jsonl" \
    --out-of-scope "$repo/tests/EdgeSlm.Benchmarks/Wyoming/out-of-scope-dev.txt" --templates "$templates" \
    --module "EdgeSlm, templates only=$port_templates" --module "EdgeSlm, templates + out-of-scope examples=$port" \
    --module "EdgeSlm, templates + out-of-scope examples, every intent=$port_all" \
    --out "$out/answers.jsonl" | tee -a "$out/table.md"

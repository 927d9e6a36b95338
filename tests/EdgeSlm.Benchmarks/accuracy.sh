#!/usr/bin/env bash
# Intent accuracy on dev splits carved from the shared datasets' train files (10% of each intent, seed
# 20241126; CLINC150 has its own dev split), for each model type. The datasets' test splits are held out
# and never used. Writes one JSON report per line: "<type> <dataset> {...}".
#
#   tests/EdgeSlm.Benchmarks/accuracy.sh [OUTPUT_DIR] [TYPES...]     (default types: q4_0 q8_0 f32)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
datasets=$(cd "$repo/../shared/datasets" && pwd)
out=${1:-$repo/artifacts/accuracy}
shift || true
types=("${@:-q4_0 q8_0 f32}")
mkdir -p "$out"
dotnet build "$repo/src/EdgeModule" -c Release -o "$out/edgeslm" > "$out/build.log"
python3 - "$datasets" "$out" <<'PY'
import collections, json, pathlib, random, sys
datasets, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for name in ["snips2017", "hwu64", "ha_intents_en"]:
    rows = [json.loads(l) for l in (datasets / name / "train.jsonl").read_text(encoding="utf-8").splitlines() if l.strip()]
    by_intent = collections.defaultdict(list)
    for row in rows:
        by_intent[row["intent"]].append(row)
    rng, train, dev = random.Random(20241126), [], []
    for intent in sorted(by_intent):
        group = by_intent[intent][:]
        rng.shuffle(group)
        n = max(1, round(len(group) * 0.1)) if len(group) >= 3 else 0
        dev += group[:n]
        train += group[n:]
    for split, items in (("train", train), ("dev", dev)):
        (out / f"{name}.{split}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items), encoding="utf-8")
PY
for type in ${types[*]}; do
    [[ -f $out/minilm-$type.gguf ]] || "$out/edgeslm/edgeslm" convert --bundled minilm --type "$type" -o "$out/minilm-$type.gguf" > /dev/null
    for dataset in snips2017 hwu64 ha_intents_en clinc150; do
        if [[ $dataset == clinc150 ]]; then
            train=$datasets/clinc150/train.jsonl test=$datasets/clinc150/dev.jsonl
        else
            train=$out/$dataset.train.jsonl test=$out/$dataset.dev.jsonl
        fi
        echo "$type $dataset $("$out/edgeslm/edgeslm" eval --model "$out/minilm-$type.gguf" --train "$train" --test "$test" --json)"
    done
done

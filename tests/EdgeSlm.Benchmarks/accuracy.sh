#!/usr/bin/env bash
# Intent accuracy on dev splits carved from the datasets' train files (10% of each intent, seed
# 20241126; CLINC150 has its own dev split), for each model type and encoder configuration. The datasets' test
# splits are held out and never used. Writes one JSON report per line: "<type> <config> <dataset> {...}".
#
#   tests/EdgeSlm.Benchmarks/accuracy.sh [OUTPUT_DIR] [TYPES...]     (default types: q4_0 q8_0 f32)
#
# CONFIGS (default "minilm minilm+arctic-xs") chooses the encoders, joined by "+" when used side by side;
# DATASETS (default "snips2017 hwu64 ha_intents_en clinc150") the datasets, read from DATASETS_DIR (default: the
# repository's tests/data). Embedded example sets are kept in
# OUTPUT_DIR/features, so a second run with another head setting only trains.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
datasets=$(cd "${DATASETS_DIR:-$repo/tests/data}" && pwd)
out=${1:-$repo/artifacts/accuracy}
shift || true
types=("${@:-q4_0 q8_0 f32}")
configs=(${CONFIGS:-minilm minilm+arctic-xs})
names=(${DATASETS:-snips2017 hwu64 ha_intents_en clinc150})
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
    for config in "${configs[@]}"; do
        models=()
        for model in ${config//+/ }; do
            [[ -f $out/$model-$type.gguf ]] || "$out/edgeslm/edgeslm" convert --bundled "$model" --type "$type" -o "$out/$model-$type.gguf" > /dev/null
            models+=("$out/$model-$type.gguf")
        done
        list=$(IFS=,; echo "${models[*]}")
        for dataset in "${names[@]}"; do
            if [[ $dataset == clinc150 ]]; then
                train=$datasets/clinc150/train.jsonl test=$datasets/clinc150/dev.jsonl
            else
                train=$out/$dataset.train.jsonl test=$out/$dataset.dev.jsonl
            fi
            echo "$type $config $dataset $("$out/edgeslm/edgeslm" eval --model "$list" --train "$train" --test "$test" --json --feature-cache "$out/features")"
        done
    done
done

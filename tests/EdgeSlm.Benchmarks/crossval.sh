#!/usr/bin/env bash
# K-fold cross-validation of the intent head on a dataset's train file: every intent's examples are
# shuffled (seed 777) and dealt round the folds; each fold is tested once by a head trained on the others. One
# dev split of about a thousand examples moves by 0.1 point an example and cannot tell changes of a few tenths
# apart; the mean over five folds tests every train example once, and the folds pair the runs of two builds.
# The datasets' test splits are held out and never used.
#
#   tests/EdgeSlm.Benchmarks/crossval.sh DATASET [OUTPUT_DIR] [MODEL.gguf]
#
# DATASET is a folder of DATASETS_DIR (default: the repository's tests/data: hwu64, snips2017, ha_intents_en, clinc150); MODEL defaults to the
# bundled MiniLM in q4_0. FOLDS (default 5). Prints one `edgeslm eval --json` report per fold, then a line
# "mean accuracy X over K folds". Embedded sets are cached in OUTPUT_DIR/features.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dataset=$1
out=${2:-$repo/artifacts/crossval}
folds=${FOLDS:-5}
mkdir -p "$out"
dotnet build "$repo/src/EdgeModule" -c Release -o "$out/edgeslm" > "$out/build.log"
model=${3:-}
if [[ -z $model ]]; then
    model=$out/minilm-q4_0.gguf
    [[ -f $model ]] || "$out/edgeslm/edgeslm" convert --bundled minilm --type q4_0 -o "$model" > /dev/null
fi
python3 - "${DATASETS_DIR:-$repo/tests/data}/$dataset/train.jsonl" "$out" "$folds" "$dataset" <<'PY'
import collections, json, pathlib, random, sys
source, out, k, name = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows = [json.loads(l) for l in source.read_text(encoding="utf-8").splitlines() if l.strip()]
by_intent = collections.defaultdict(list)
for row in rows:
    by_intent[row["intent"]].append(row)
rng, folds = random.Random(777), [[] for _ in range(k)]
for intent in sorted(by_intent):
    group = by_intent[intent][:]
    rng.shuffle(group)
    for i, row in enumerate(group):
        folds[i % k].append(row)
for f in range(k):
    splits = {"train": [r for j in range(k) if j != f for r in folds[j]], "dev": folds[f]}
    for split, items in splits.items():
        (out / f"{name}.f{f}.{split}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items), encoding="utf-8")
PY
reports=()
for ((f = 0; f < folds; f++)); do
    report=$("$out/edgeslm/edgeslm" eval --model "$model" --train "$out/$dataset.f$f.train.jsonl" --test "$out/$dataset.f$f.dev.jsonl" --json --feature-cache "$out/features")
    echo "fold $f $report"
    reports+=("$report")
done
printf '%s\n' "${reports[@]}" | python3 -c '
import json, sys
accuracies = [json.loads(line)["accuracy"] for line in sys.stdin if line.strip()]
print(f"mean accuracy {100 * sum(accuracies) / len(accuracies):.3f} over {len(accuracies)} folds: " + " ".join(f"{100 * a:.2f}" for a in accuracies))'

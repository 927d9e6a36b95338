#!/usr/bin/env bash
# Fuzzes every parser of outside data (docs/reliability.md) with afl-fuzz and SharpFuzz, each target for a bounded
# time, as root on Debian with the .NET 10 SDK (CI calls it from .ci/run; it runs as well on its own: bash .ci/fuzz.sh).
#
#  1. installs Debian's afl++ and the SharpFuzz.CommandLine dotnet tool, if they are missing;
#  2. publishes tests/EdgeSlm.Fuzz into artifacts/fuzz/app and instruments our assemblies there (edgeslm.dll,
#     EdgeSlm.Kernels.dll; not the framework, not third-party libraries);
#  3. runs afl-fuzz on each target (the list comes from the harness: `EdgeSlm.Fuzz list`) for FUZZ_SECONDS (60),
#     starting from tests/EdgeSlm.Fuzz/corpus/<target>/, with a per-input timeout of FUZZ_TIMEOUT_MS (5000);
#  4. prints `fuzz <target>: N execs, N paths, N crashes` per target and `fuzz: N passed, N failed` last. A target
#     fails on any crash or hang, or when afl-fuzz itself fails; the exit status is then non-zero. Crashing and
#     hanging inputs are copied to artifacts/fuzz/findings/<target>/ and the crashes are replayed into the log.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_TIMEOUT_MS=${FUZZ_TIMEOUT_MS:-5000}
OUT=$ROOT/artifacts/fuzz
APP=$OUT/app

export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
export DEBIAN_FRONTEND=noninteractive
export PATH="$PATH:${DOTNET_TOOLS:-$HOME/.dotnet/tools}"

rm -rf "$OUT"
mkdir -p "$OUT/findings"

die() { echo "fuzz: $*" >&2; echo "fuzz: 0 passed, 1 failed"; exit 1; }

# --- 1. tools -----------------------------------------------------------------------------------------------
if ! command -v afl-fuzz > /dev/null; then
    { apt-get update -q && apt-get install -y -q --no-install-recommends afl++; } > "$OUT/apt.log" 2>&1 \
        || { tail -20 "$OUT/apt.log" >&2; die "installing afl++ failed; see $OUT/apt.log"; }
fi
if ! command -v sharpfuzz > /dev/null; then
    dotnet tool install --global SharpFuzz.CommandLine --version 2.3.0 > "$OUT/tool.log" 2>&1 \
        || { cat "$OUT/tool.log" >&2; die "installing SharpFuzz.CommandLine failed"; }
fi
echo "fuzz: afl++ $(dpkg-query -W -f='${Version}' afl++ 2>/dev/null || echo '(not from Debian)'), sharpfuzz 2.3.0, dotnet $(dotnet --version)"

# --- 2. build and instrument ----------------------------------------------------------------------------------
# A publish folder of its own: instrumentation rewrites the assemblies in place, and must never reach a normal build.
dotnet publish tests/EdgeSlm.Fuzz -c Release -o "$APP" > "$OUT/build.log" 2>&1 \
    || { grep -E 'error [A-Z]+[0-9]+' "$OUT/build.log" | sort -u | head -20 >&2; die "building the fuzzing harness failed; see $OUT/build.log"; }
for assembly in edgeslm.dll EdgeSlm.Kernels.dll; do
    sharpfuzz "$APP/$assembly" >> "$OUT/instrument.log" 2>&1 \
        || { cat "$OUT/instrument.log" >&2; die "instrumenting $assembly failed"; }
done
mapfile -t TARGETS < <(dotnet "$APP/EdgeSlm.Fuzz.dll" list)
(( ${#TARGETS[@]} > 0 )) || die "the harness lists no targets"

# --- 3. fuzz --------------------------------------------------------------------------------------------------
# dotnet is not instrumented itself (SharpFuzz's fork server speaks for it); CI containers have no CPU frequency
# control and may pipe core dumps elsewhere; the shared cores are not ours to pin.
export AFL_SKIP_BIN_CHECK=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
export AFL_NO_UI=1 AFL_QUIET=1

stat_of() { # stat_of FILE KEY: a value of afl-fuzz's fuzzer_stats
    [[ -f $1 ]] && awk -F' *: *' -v key="$2" '$1 == key { print $2; exit }' "$1" || true
}
count_inputs() { # files afl-fuzz saved in a folder (not its README.txt)
    if [[ -d $1 ]]; then find "$1" -maxdepth 1 -type f -name 'id:*' | wc -l; else echo 0; fi
}

PASSED=0
FAILED=0
for target in "${TARGETS[@]}"; do
    seeds=$ROOT/tests/EdgeSlm.Fuzz/corpus/$target
    findings=$OUT/$target
    log=$OUT/$target.log
    rc=0
    if [[ ! -d $seeds ]] || [[ -z $(ls -A "$seeds") ]]; then
        echo "fuzz $target: no seed corpus in ${seeds#"$ROOT"/}"
        FAILED=$((FAILED + 1))
        continue
    fi
    # -V stops after the time; timeout only ends an afl-fuzz that hung itself. A hang (-t) or a crash of the
    # target is saved by afl-fuzz and counted below.
    timeout -k 15 $((FUZZ_SECONDS + 300)) \
        afl-fuzz -i "$seeds" -o "$findings" -t "$FUZZ_TIMEOUT_MS" -m none -V "$FUZZ_SECONDS" \
        -- dotnet "$APP/EdgeSlm.Fuzz.dll" "$target" < /dev/null > "$log" 2>&1 || rc=$?
    stats=$findings/default/fuzzer_stats
    execs=$(stat_of "$stats" execs_done)
    paths=$(stat_of "$stats" corpus_count)
    crashes=$(count_inputs "$findings/default/crashes")
    hangs=$(count_inputs "$findings/default/hangs")
    echo "fuzz $target: ${execs:-0} execs, ${paths:-0} paths, $crashes crashes$( (( hangs > 0 )) && echo ", $hangs hangs")"
    if (( rc == 0 && crashes == 0 && hangs == 0 )) && [[ -n $execs ]] && (( execs > 0 )); then
        PASSED=$((PASSED + 1))
        continue
    fi
    FAILED=$((FAILED + 1))
    if (( rc != 0 )) || [[ -z $execs ]]; then
        echo "  afl-fuzz exited $rc; last lines of $log:"
        grep -vE '^\s*$' "$log" | tail -15 | sed 's/^/    /'
    fi
    mkdir -p "$OUT/findings/$target"
    for input in "$findings"/default/crashes/id:* "$findings"/default/hangs/id:*; do
        [[ -f $input ]] || continue
        kind=$(basename "$(dirname "$input")")
        copy=$OUT/findings/$target/$kind-$(basename "$input" | cut -d, -f1 | tr ':' '-')
        cp "$input" "$copy"
        echo "  $kind: ${copy#"$ROOT"/} ($(stat -c %s "$input") bytes): $(head -c 160 "$input" | tr -c '[:print:]' '.')"
        if [[ $kind == crashes ]]; then
            # Outside afl-fuzz the harness runs the one input from standard input and lets the exception out.
            timeout 60 dotnet "$APP/EdgeSlm.Fuzz.dll" "$target" < "$input" 2>&1 | head -12 | sed 's/^/    /' || true
        fi
    done
done

echo "fuzz: $PASSED passed, $FAILED failed"
(( FAILED == 0 ))

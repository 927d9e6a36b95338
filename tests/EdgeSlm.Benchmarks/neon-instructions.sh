#!/usr/bin/env bash
# Counts the instructions the NEON kernels execute per 32-weight block, from the JIT's own listing of them
# under qemu (the code is what a board's JIT would produce for the same CPU features).
#
#   tests/EdgeSlm.Benchmarks/neon-instructions.sh [OUTPUT_DIR]
#
# Publishes the benchmark for linux-arm64, runs `jit-kernels` as a Cortex-A72 (NEON, ARMv8.0) and a Cortex-A76
# (NEON + SDOT) with DOTNET_JitDisasm on the tile kernels, and for each kernel's inner loop (from its label to
# the branch back to it) prints the instruction count per loop iteration and per (row, token, block).
# Needs qemu-user-static and Debian's arm64 libc (see README.md).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-$repo/artifacts/neon-instructions}
mkdir -p "$out"
dotnet publish "$repo/tests/EdgeSlm.Benchmarks" -c Release -r linux-arm64 --self-contained -o "$out/app" > "$out/publish.log" 2>&1 \
    || { tail -20 "$out/publish.log"; exit 1; }

for cpu in cortex-a72 cortex-a76; do
    listing=$out/$cpu.asm
    rm -f "$listing"
    # W^X off: qemu does not see code written through the JIT's second mapping (see .ci/run).
    DOTNET_EnableWriteXorExecute=0 DOTNET_JitDisasm='Tile4x1 Tile4x4' DOTNET_JitStdOutFile="$listing" \
        qemu-aarch64-static -cpu "$cpu" "$out/app/EdgeSlm.Benchmarks" jit-kernels > "$out/$cpu.log"
    echo "== $cpu ($(grep -c 'Assembly listing' "$listing") kernels compiled)"
    awk -v cpu="$cpu" '
        /^; Assembly listing for method/ {
            method = $0
            sub(/.*MatMul\.Vector128Tiles`2\[EdgeSlm\.Kernels\.MatMul\./, "", method)
            sub(/\(.*/, "", method)
            gsub(/EdgeSlm\.Kernels\.MatMul\./, "", method)
            delete line; n = 0; next
        }
        /^G_M[0-9]+_IG[0-9]+:/ { label[$1] = n; next }
        /^ +[a-z]/ && method != "" {
            if ($1 == "align") next
            n++; line[n] = $1
            if ($1 ~ /^b(lt|ne|lo|cc|ls|le|gt|ge|hs|hi)$/ || $1 == "cbnz" || $1 == "tbnz") {
                target = $NF ":"
                if (target in label && label[target] < n) {
                    count = n - label[target]
                    per = (method ~ /Tile4x4/) ? 16 : 4
                    printf "  %-60s loop %3d instructions, %.2f per row-token-block\n", method, count, count / per
                }
            }
        }' "$listing" | grep -v 'Vector128Dot' | sort -u
done

# llama.cpp's own loop, from the arm64 libggml-cpu.so that LLamaSharp.Backend.Cpu ships (built without the
# dot-product extension): ggml_vec_dot_q4_0_q8_0 handles two blocks per iteration.
ggml=$out/app/ggml/linux-arm64/libggml-cpu.so
if command -v aarch64-linux-gnu-objdump > /dev/null && [[ -f $ggml ]]; then
    echo "== llama.cpp (LLamaSharp.Backend.Cpu 0.30.0, linux-arm64 libggml-cpu.so)"
    aarch64-linux-gnu-objdump -d --no-show-raw-insn "$ggml" | awk '
        /<ggml_vec_dot_q4_0_q8_0>:/ { inside = 1; next }
        inside && /^$/ { exit }
        inside && /^ +[0-9a-f]+:/ {
            address = $1; sub(/:$/, "", address); n++; at[address] = n
            if ($2 ~ /^b\.(gt|ne|lt|le|ge|hi|lo)$/ && ($3 in at) && at[$3] < n) {
                count = n - at[$3] + 1
                printf "  ggml_vec_dot_q4_0_q8_0 (NEON, no SDOT)       loop %3d instructions, %.2f per block (2 blocks per iteration)\n", count, count / 2
                exit
            }
        }'
fi

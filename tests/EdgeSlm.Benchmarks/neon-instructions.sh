#!/usr/bin/env bash
# Counts the instructions the NEON kernels execute per 32-weight block, from the JIT's own listing of them
# under qemu (the code is what a board's JIT would produce for the same CPU features).
#
#   tests/EdgeSlm.Benchmarks/neon-instructions.sh [OUTPUT_DIR]
#
# Publishes the benchmark for linux-arm64, runs `jit-kernels` as a Cortex-A53 and a Cortex-A72 (NEON, ARMv8.0)
# and a Cortex-A76 (NEON + SDOT) with DOTNET_JitDisasm on the tile kernels, and for each kernel's inner loop
# (from its label to the branch back to it) prints the instruction count per loop iteration and per (row, token,
# block). For the single-token kernel, which every decode GEMV of the decoder runs, it also prints the
# instructions of the kernel outside its loop (set-up and return, once per 4-row tile: a static count of the
# listing) and what loop and set-up come to per row-block for the inner dimensions of SmolLM2-135M (576, 1536) and
# Qwen2.5-0.5B (896, 4864), and per row-block of a whole token's products of each model (every matrix weighted by
# its blocks). Needs qemu-user-static and Debian's arm64 libc (see README.md).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-$repo/artifacts/neon-instructions}
mkdir -p "$out"
dotnet publish "$repo/tests/EdgeSlm.Benchmarks" -c Release -r linux-arm64 --self-contained -o "$out/app" > "$out/publish.log" 2>&1 \
    || { tail -20 "$out/publish.log"; exit 1; }

for cpu in cortex-a53 cortex-a72 cortex-a76; do
    listing=$out/$cpu.asm
    rm -f "$listing"
    # W^X off: qemu does not see code written through the JIT's second mapping (see .ci/run).
    DOTNET_EnableWriteXorExecute=0 DOTNET_JitDisasm='Tile4x1 Tile4x4' DOTNET_JitStdOutFile="$listing" \
        qemu-aarch64-static -cpu "$cpu" "$out/app/EdgeSlm.Benchmarks" jit-kernels > "$out/$cpu.log"
    echo "== $cpu ($(grep -c 'Assembly listing' "$listing") kernels compiled)"
    awk -v cpu="$cpu" '
        function finish() {
            if (method ~ /Tile4x1/ && loop > 0) {
                printf "  %-60s set-up %3d instructions outside the loop\n", method, n - loop
                tile[method] = loop " " (n - loop)
            }
        }
        END { finish(); for (m in tile) print "TILE4X1 " m " " tile[m] > "/dev/stderr" }
        /^; Assembly listing for method/ {
            finish(); loop = 0
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
                    if (count > loop) loop = count
                    per = (method ~ /Tile4x4/) ? 16 : 4
                    printf "  %-60s loop %3d instructions, %.2f per row-token-block\n", method, count, count / per
                }
            }
        }' "$listing" 2> "$out/$cpu.tiles" | grep -v 'Vector128Dot' | sort -u
    # Per row-block of a decode GEMV: (loop · blocks + set-up) / (4 rows · blocks), blocks = k / 32.
    grep -v 'Vector128Dot' "$out/$cpu.tiles" | sort -u | while read -r _ method loop setup; do
        python3 - "$method" "$loop" "$setup" <<'PY'
import sys
method, loop, setup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
per = lambda k: (loop * (k // 32) + setup) / (4 * (k // 32))
# (rows, k) of one token's products: q, k, v, o, gate, up, down per layer, then the output matrix.
models = {
    "SmolLM2-135M": ([(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)], 30, (49152, 576)),
    "Qwen2.5-0.5B": ([(896, 896), (128, 896), (128, 896), (896, 896), (4864, 896), (4864, 896), (896, 4864)], 24, (151936, 896)),
}
shapes = ", ".join(f"k={k}: {per(k):.2f}" for k in (576, 896, 1536, 4864))
print(f"  {method:<60s} per row-block, decode GEMV  {shapes}")
for name, (layer, layers, output) in models.items():
    products = layer * layers + [output]
    blocks = sum(r * (k // 32) for r, k in products)
    total = sum(r * (k // 32) * per(k) for r, k in products)
    print(f"  {method:<60s} {name}: {total / blocks:.2f} per row-block over a token's {blocks / 1e6:.2f} M row-blocks")
PY
    done
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

#!/usr/bin/env bash
# Cross-compiles the edgeslm module for 64-bit ARM Linux boards as one stripped NativeAOT binary and puts the
# model it runs beside it, on an x86-64 Debian 12 machine (or in Dockerfile.arm64's build stage, or on an arm64 one).
#
#   deployment/publish-arm64.sh [OUTPUT_DIR] [extra dotnet publish arguments...]
#
# OUTPUT_DIR defaults to artifacts/publish/linux-arm64 under the repository root. What a board needs from it:
#   OUTPUT_DIR/edgeslm                    the module (stripped; its debug symbols stay beside it as edgeslm.dbg)
#   OUTPUT_DIR/models/minilm-q4_0.gguf    the bundled all-MiniLM-L6-v2 converted to q4_0 (`edgeslm run --model`)
# The rest of OUTPUT_DIR (the bundled ONNX models' DLLs in models/, .xml, .pdb) stays on the build machine.
# The model is converted by EDGESLM_CONVERTER if set (an edgeslm built for this machine), else by the binary just
# built on an arm64 machine, or by an edgeslm built for this machine (dotnet build) on another. Conversions on
# machines with other vector widths are equally good but not the same bytes: GPTQ carries each rounding forward,
# so a last-bit difference in a float sum changes later choices (CI checks the agreement, docs/performance.md).
# The build log is OUTPUT_DIR.log.
#
# Prints the binary's and the model's sizes. Exit status: 0 when all is well; 1 when the build or the
# conversion failed; 3 when the compiler or ILC warned about our code (under src/); 4 when the binary is
# 20 MB (20,000,000 bytes) or more, the most a board's update should have to carry.
#
# Needs (Debian 12): clang lld gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu libc6-dev-arm64-cross (the
# cross C runtime, which gcc-aarch64-linux-gnu only recommends, and objcopy) and NuGet access for the linux-arm64 ILCompiler and
# runtime packs. To try the binary without a board: qemu-aarch64-static -cpu cortex-a72 OUTPUT_DIR/edgeslm info --cpu
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$repo/artifacts/publish/linux-arm64}
shift || true
mkdir -p "$out"
out=$(cd "$out" && pwd)
log="$out.log"

missing=()
for tool in dotnet clang ld.lld aarch64-linux-gnu-objcopy; do
    command -v "$tool" > /dev/null || missing+=("$tool")
done
[[ -e /usr/aarch64-linux-gnu/lib/crt1.o ]] || missing+=("the aarch64 C runtime (/usr/aarch64-linux-gnu/lib/crt1.o)")
if (( ${#missing[@]} )); then
    echo "publish-arm64: missing ${missing[*]}." >&2
    echo "publish-arm64: apt-get install clang lld gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu libc6-dev-arm64-cross" >&2
    exit 1
fi

# SysRoot=/ with clang's --target=aarch64-linux-gnu finds the cross crt files and libc in /usr/aarch64-linux-gnu
# (from gcc-aarch64-linux-gnu); lld links, and the cross objcopy splits off and strips the debug symbols.
echo "publish-arm64: dotnet publish src/EdgeModule -r linux-arm64 (NativeAOT) -> $out"
status=0
dotnet publish "$repo/src/EdgeModule" -c Release -r linux-arm64 \
    -p:PublishAot=true -p:SysRoot=/ -p:LinkerFlavor=lld -p:ObjCopyName=aarch64-linux-gnu-objcopy \
    -p:StripSymbols=true -o "$out" "$@" > "$log" 2>&1 || status=$?

if (( status != 0 )) || [[ ! -x "$out/edgeslm" ]]; then
    grep -E ': error |error [A-Z]+[0-9]+' "$log" | sort -u | head -40 >&2 || tail -40 "$log" >&2
    echo "publish-arm64: FAILED (exit $status); full log: $log" >&2
    exit 1
fi

# Our code is everything under src/: a warning counts when it names a file there. MSBuild appends the project
# (under src/) to every warning, so the third-party ones are told apart by what they name. NU1603 (a package
# resolved to a newer version) is the registry's doing; IL2104 and IL3053 sum up the trim and AOT warnings of
# Iot.Device.Bindings and UnitsNet, which are not trim-annotated (see src/EdgeModule/EdgeModule.csproj).
third_party="warning IL(2104|3053): Assembly '(Iot\.Device\.Bindings|UnitsNet)'|warning NU1603"
ours=$(grep -E 'warning [A-Z]+[0-9]+' "$log" | grep -F '/src/' | grep -vE "$third_party" | sort -u || true)
others=$(grep -E 'warning [A-Z]+[0-9]+' "$log" | grep -vF '/src/' | sort -u || true)
known=$(grep -E 'warning [A-Z]+[0-9]+' "$log" | grep -F '/src/' | grep -E "$third_party" | sed 's/ \[.*\]$//' | sort -u || true)
[[ -z "$others$known" ]] || { echo "publish-arm64: warnings not about our code:"; printf "%s\n" "$others" "$known" | sed '/^$/d'; }

# The model. A file already there is converted again: the bundled ONNX may have changed.
model="$out/models/minilm-q4_0.gguf"
convert=(convert --bundled minilm --type q4_0 -o "$model")
if [[ -n ${EDGESLM_CONVERTER:-} ]]; then
    converter=("$EDGESLM_CONVERTER")
elif [[ $(uname -m) == aarch64 ]]; then
    converter=("$out/edgeslm")
else
    # On another machine, an edgeslm built for it (JIT, not published): the conversion's GPTQ and calibration are
    # float-heavy, and under qemu-aarch64-static they take over ten minutes against seconds natively.
    host="$out.converter"
    echo "publish-arm64: dotnet build src/EdgeModule (this machine's converter) -> $host"
    if ! dotnet build "$repo/src/EdgeModule" -c Release -o "$host" >> "$log" 2>&1; then
        tail -20 "$log" >&2
        echo "publish-arm64: FAILED to build a converter for this machine; full log: $log" >&2
        exit 1
    fi
    converter=("$host/edgeslm")
fi
rm -f "$model"
echo "publish-arm64: ${converter[*]} ${convert[*]}"
if ! timeout 600 "${converter[@]}" "${convert[@]}" < /dev/null >> "$log" 2>&1 || [[ ! -s $model ]]; then
    tail -5 "$log" >&2
    echo "publish-arm64: FAILED to convert the bundled model; full log: $log" >&2
    exit 1
fi

file_info=$(file -b "$out/edgeslm" 2>/dev/null || true)
size=$(stat -c %s "$out/edgeslm")
model_size=$(stat -c %s "$model")
limit=20000000
echo "publish-arm64: binary $out/edgeslm: $size bytes ($(numfmt --to=iec-i --suffix=B "$size"))${file_info:+, $file_info}"
echo "publish-arm64: model  $model: $model_size bytes ($(numfmt --to=iec-i --suffix=B "$model_size"))"

status=0
if [[ -n "$ours" ]]; then
    echo "$ours" >&2
    echo "publish-arm64: the build warned about our code (see above); full log: $log" >&2
    status=3
fi
if (( size >= limit )); then
    echo "publish-arm64: the binary is $size bytes, at or over the limit of $limit" >&2
    status=4
fi
exit $status

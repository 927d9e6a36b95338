#!/usr/bin/env bash
# Cross-compiles the edgeslm module for 64-bit ARM Linux boards as one stripped NativeAOT binary,
# on an x86-64 Debian 12 machine (or in a Dockerfile based on one).
#
#   deployment/publish-arm64.sh [OUTPUT_DIR] [extra dotnet publish arguments...]
#
# OUTPUT_DIR defaults to artifacts/publish/linux-arm64 under the repository root. The binary is
# OUTPUT_DIR/edgeslm; its debug symbols are kept beside it as edgeslm.dbg (not needed on the board).
# The build log is OUTPUT_DIR.log. Exit status: 0 when the binary was built without a warning from our
# code, 1 when the build failed, 3 when it built but the compiler or ILC warned about something under src/.
#
# Needs (Debian 12): clang lld gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu (the cross C runtime and
# objcopy), and NuGet access for the linux-arm64 ILCompiler and runtime packs. To try the binary without
# a board: qemu-aarch64-static -cpu cortex-a72 OUTPUT_DIR/edgeslm info --cpu
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
    echo "publish-arm64: apt-get install clang lld gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu" >&2
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

# Our code is everything under src/. NU1603 (a package resolved to a newer version) is the registry's doing.
ours=$(grep -E 'warning [A-Z]+[0-9]+' "$log" | grep -F '/src/' | grep -v 'NU1603' | sort -u || true)
others=$(grep -E 'warning [A-Z]+[0-9]+' "$log" | grep -vF '/src/' | sort -u || true)
[[ -z "$others" ]] || { echo "publish-arm64: warnings from outside src/:"; echo "$others"; }

file_info=$(file -b "$out/edgeslm" 2>/dev/null || true)
size=$(stat -c %s "$out/edgeslm")
echo "publish-arm64: $out/edgeslm: $size bytes ($(numfmt --to=iec-i --suffix=B "$size"))${file_info:+, $file_info}"

if [[ -n "$ours" ]]; then
    echo "$ours" >&2
    echo "publish-arm64: the build warned about our code (see above); full log: $log" >&2
    exit 3
fi

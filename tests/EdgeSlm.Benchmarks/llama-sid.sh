#!/usr/bin/env bash
# The second llama.cpp peer for the decoder benchmark: Debian unstable's llama.cpp (llama-bench, llama-completion,
# libllama0, libggml0 with its per-CPU backends), run on this machine without installing anything.
#
#   tests/EdgeSlm.Benchmarks/llama-sid.sh fetch            download and extract into the cache folder (once)
#   tests/EdgeSlm.Benchmarks/llama-sid.sh bench ARGS...    llama-bench ARGS through sid's own dynamic loader
#   tests/EdgeSlm.Benchmarks/llama-sid.sh run TOOL ARGS... any tool of the packages the same way
#
# sid's llama.cpp needs sid's glibc (newer than the host's Debian 12), so the packages, sid's libc6 and the C++
# runtime it was built against are downloaded with a PRIVATE apt configuration (its own sources file, lists and
# cache under the cache folder; the machine's apt sources and state are not touched), from the Debian mirror the
# machine's apt already uses, and unpacked with dpkg-deb -x. The tools then start through the extracted
# ld-linux-x86-64.so.2 --library-path <extracted lib dirs>, so every library, libc included, comes from sid.
#
# ggml loads its CPU backends (libggml-cpu-<variant>.so, one per instruction-set level) with dlopen from the
# directory compiled into it, /usr/lib/x86_64-linux-gnu/ggml/backends0, and from the executable's directory.
# --library-path does not reach a dlopen of a full path, and neither directory has the extracted backends, so
# llama.cpp alone finds no CPU backend (it prints "failed to enumerate .../backends0" for every backend kind it
# looks for; those lines stay on stderr and are harmless). GGML_BACKEND_PATH=<one backend library> makes ggml
# load that library as well: it works, and this script sets it to the variant ggml itself would pick on this CPU
# (backend_for_cpu), remembered in the cache folder. No mount or chroot is needed.
#
# Cache folder: $EDGESLM_LLAMA_SID (default ~/.cache/edgeslm/llama-sid).
set -euo pipefail

CACHE=${EDGESLM_LLAMA_SID:-$HOME/.cache/edgeslm/llama-sid}
ROOT=$CACHE/root
# libggml0 carries the CPU backends itself (one library per instruction-set level); llama.cpp-tools needs libssl.
PACKAGES=(llama.cpp-tools libllama0 libggml0 libc6 libstdc++6 libgcc-s1 libgomp1 libssl3t64 zlib1g libzstd1)

APT=()
apt_options() {
    local dir=$1
    APT=(-q -o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$dir/lists" -o "Dir::State::Status=$dir/status" -o "Dir::Cache=$dir/cache"
        -o APT::Architecture=amd64 -o APT::Architectures=amd64 -o APT::Sandbox::User=root)
}

fetch() {
    local dir=$CACHE/apt mirror
    # The first Debian release (not -updates, not -security) in apt's own sources, as .ci/run finds it.
    # shellcheck disable=SC2016
    mirror=$(apt-get indextargets --format '$(REPO_URI) $(CODENAME)' | awk '$2 !~ /-/ && $1 ~ /debian\/?$/ { print $1; exit }')
    [[ -n $mirror ]] || { echo "llama-sid: no Debian mirror found in apt's sources" >&2; return 1; }
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/debs" "$ROOT"
    : > "$dir/status"
    echo "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/} sid main" > "$dir/sources.list"
    apt_options "$dir"
    apt-get "${APT[@]}" update
    local available=() package candidate
    for package in "${PACKAGES[@]}"; do
        candidate=$(apt-cache "${APT[@]}" policy "$package" 2>/dev/null | awk '/Candidate:/ { print $2 }')
        if [[ -n $candidate && $candidate != "(none)" ]]; then
            available+=("$package")
        else
            echo "llama-sid: sid has no package $package" >&2
            return 1
        fi
    done
    rm -f "$dir"/debs/*.deb
    (cd "$dir/debs" && apt-get "${APT[@]}" download "${available[@]}")
    rm -rf "$ROOT"
    mkdir -p "$ROOT"
    for deb in "$dir"/debs/*.deb; do
        dpkg-deb -x "$deb" "$ROOT"
    done
    # A library some tool or backend needs that none of the packages above carries would come from nowhere (the
    # host's are not on the library path): name it, so the package list above can be completed.
    local missing
    missing=$(missing_libraries)
    [[ -z $missing ]] || { echo "llama-sid: no package above provides: $missing" >&2; return 1; }
    ls "$dir"/debs > "$CACHE/packages.txt"
    echo "llama-sid: extracted $(wc -l < "$CACHE/packages.txt") packages into $ROOT"
    backend_for_cpu > "$CACHE/backend"
    echo "llama-sid: CPU backend $(basename "$(cat "$CACHE/backend")")"
    "$0" run llama-bench --version 2>&1 | grep -v 'failed to enumerate' | head -3 || true
}

library_path() {
    # llama/ holds the tools' own libllama-*-impl.so (their RUNPATH names the system path).
    echo "$ROOT/usr/lib/x86_64-linux-gnu:$ROOT/usr/lib/x86_64-linux-gnu/llama:$ROOT/usr/lib/x86_64-linux-gnu/ggml/backends0"
}

loader() {
    local l
    for l in "$ROOT/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" "$ROOT/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" "$ROOT/lib64/ld-linux-x86-64.so.2"; do
        [[ -e $l ]] && { echo "$l"; return; }
    done
    echo "llama-sid: no ld-linux-x86-64.so.2 under $ROOT (run '$0 fetch')" >&2
    return 1
}

tool() {
    local name=$1 t
    for t in "$ROOT/usr/bin/$name" "$ROOT/usr/lib/x86_64-linux-gnu/llama.cpp/$name" "$ROOT/usr/libexec/llama.cpp/$name"; do
        [[ -x $t ]] && { echo "$t"; return; }
    done
    t=$(find "$ROOT" -name "$name" -type f -perm -u+x 2>/dev/null | head -1)
    [[ -n $t ]] && { echo "$t"; return; }
    echo "llama-sid: no $name under $ROOT" >&2
    return 1
}

# Libraries a tool or a backend names in DT_NEEDED that none of the library directories holds.
missing_libraries() {
    local files needed lib found dir
    files=$(find "$ROOT/usr/bin" "$ROOT/usr/lib/x86_64-linux-gnu" -maxdepth 3 -type f \( -name 'llama-*' -o -name 'lib*.so*' \) 2>/dev/null)
    needed=$(for f in $files; do objdump -p "$f" 2>/dev/null | awk '$1 == "NEEDED" { print $2 }'; done | sort -u)
    for lib in $needed; do
        found=0
        for dir in ${ROOT}/usr/lib/x86_64-linux-gnu ${ROOT}/usr/lib/x86_64-linux-gnu/llama ${ROOT}/usr/lib/x86_64-linux-gnu/ggml/backends0; do
            [[ -e $dir/$lib ]] && { found=1; break; }
        done
        (( found )) || echo -n "$lib "
    done
}

# ggml's CPU backend variants each export ggml_backend_score(), 0 when this CPU lacks an instruction the variant
# was built for, and ggml refuses to load a variant that scores 0 even when GGML_BACKEND_PATH names it
# ("backend ... is not supported on this system"). The variants are tried from the most basic instruction set to
# the richest (the order of their scores), and the last one that loads is the one ggml_backend_load_best would
# have picked from the system directory.
backend_for_cpu() {
    local dir=$ROOT/usr/lib/x86_64-linux-gnu/ggml/backends0 best="" variant ld out
    ld=$(loader)
    for variant in x64 sse42 sandybridge ivybridge piledriver haswell alderlake skylakex cascadelake cannonlake cooperlake icelake zen4 sapphirerapids; do
        [[ -e $dir/libggml-cpu-$variant.so ]] || continue
        out=$(GGML_BACKEND_PATH=$dir/libggml-cpu-$variant.so "$ld" --library-path "$(library_path)" "$(tool llama-bench)" --list-devices 2>&1 || true)
        [[ $out == *"loaded CPU backend"* ]] && best=$dir/libggml-cpu-$variant.so
    done
    [[ -n $best ]] || { echo "llama-sid: no CPU backend under $dir loads on this CPU" >&2; return 1; }
    echo "$best"
}

run() {
    local name=$1
    shift
    local ld backend
    ld=$(loader)
    backend=${GGML_BACKEND_PATH:-}
    if [[ -z $backend ]]; then
        if [[ -f $CACHE/backend ]]; then
            backend=$(cat "$CACHE/backend")
        else
            backend=$(backend_for_cpu)
            echo "$backend" > "$CACHE/backend"
        fi
    fi
    GGML_BACKEND_PATH=$backend exec "$ld" --library-path "$(library_path)" "$(tool "$name")" "$@"
}

case ${1:-} in
    fetch) fetch ;;
    bench) shift; run llama-bench "$@" ;;
    run) shift; run "$@" ;;
    backend) backend_for_cpu ;;
    *) echo "usage: $0 fetch | bench LLAMA-BENCH-ARGS... | run TOOL ARGS... | backend" >&2; exit 2 ;;
esac

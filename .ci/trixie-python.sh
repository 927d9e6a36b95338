#!/usr/bin/env bash
# Fetches pure-Python packages from Debian 13 (trixie) without touching this machine's apt setup, as .ci/run fetches
# Debian 13's arm64 glibc: a private apt configuration (its own sources list, lists and cache under DIR) on the
# Debian mirror that apt's own sources name, `apt-get download`, `dpkg-deb -x`. Nothing is installed.
#
#   bash .ci/trixie-python.sh DIR PACKAGE...
#
# Leaves the packages' files under DIR/root and prints the folder to put on PYTHONPATH
# (DIR/root/usr/lib/python3/dist-packages). Debian puts pure-Python modules there for every python3 version, so
# trixie's packages run on Debian 12's python3 (3.11) as long as their code does.
set -euo pipefail
(( $# >= 2 )) || { echo "usage: $0 DIR PACKAGE..." >&2; exit 2; }
dir=$(realpath -m "$1")
shift
mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/debs" "$dir/root"
# The first Debian release (not -updates, not -security) in apt's own sources.
# shellcheck disable=SC2016
mirror=$(apt-get indextargets --format '$(REPO_URI) $(CODENAME)' | awk '$2 !~ /-/ && $1 ~ /debian\/?$/ { print $1; exit }')
[[ -n $mirror ]] || { echo "no Debian mirror found in apt's sources (run apt-get update once)" >&2; exit 1; }
echo "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/} trixie main" > "$dir/sources.list"
opts=(-q -o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache" -o APT::Architecture=amd64
    -o APT::Architectures=amd64,all -o APT::Sandbox::User=root)
apt-get "${opts[@]}" update >&2
(cd "$dir/debs" && apt-get "${opts[@]}" download "$@" >&2)
for deb in "$dir"/debs/*.deb; do
    dpkg-deb -x "$deb" "$dir/root"
    echo "fetched $(basename "$deb")" >&2
done
echo "$dir/root/usr/lib/python3/dist-packages"

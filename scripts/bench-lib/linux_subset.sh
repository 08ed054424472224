# scripts/bench-lib/linux_subset.sh — the Linux source subset both benchmarks use as their
# "many small files" tree (scripts/bench untars it; scripts/bench-remote uploads it).
# Sourced; needs die() and log() from the caller.

LINUX_SRC_PKG=linux-source-6.1
LINUX_SRC_TXZ=/usr/src/linux-source-6.1.tar.xz
SUBSET_DIRS=(fs kernel mm include)

# linux_subset CACHE_DIR SCRATCH -> sets SUBSET_TAR and SUBSET_MD5: a tarball of
# SUBSET_DIRS (top directory linux-source-6.1, sorted, owner 0) and the md5sum of each of
# its files, built once from the linux-source package into CACHE_DIR; SCRATCH is where it
# is extracted while building.
linux_subset() {
    local cache=$1 scratch=$2 ver tarball ref tmp
    mkdir -p "$cache"
    ver=$(dpkg-query -W -f='${Version}' "$LINUX_SRC_PKG" 2>/dev/null || true)
    if [[ -n $ver ]]; then
        tarball="$cache/linux-subset-$ver.tar"
    else
        # package removed but a cached subset is there: use the newest one
        # shellcheck disable=SC2012  # our own file names, no odd characters
        tarball=$(ls -t "$cache"/linux-subset-*.tar 2>/dev/null | head -n 1)
        [[ -n $tarball ]] || die "no $LINUX_SRC_PKG and no cached subset in $cache (apt-get install $LINUX_SRC_PKG)"
    fi
    ref="${tarball%.tar}.md5"
    if [[ ! -s $tarball || ! -s $ref ]]; then
        log "building the source subset from $LINUX_SRC_TXZ (once; cached in $cache)"
        [[ -e $LINUX_SRC_TXZ ]] || die "$LINUX_SRC_TXZ is missing"
        tmp="$scratch/extract"
        mkdir -p "$tmp"
        tar -C "$tmp" -xJf "$LINUX_SRC_TXZ" "${SUBSET_DIRS[@]/#/linux-source-6.1/}" ||
            die "extracting $LINUX_SRC_TXZ failed"
        tar -C "$tmp" --sort=name --owner=0 --group=0 --numeric-owner \
            -cf "$tarball.tmp" linux-source-6.1 || die "creating the subset tarball failed"
        (cd "$tmp" && find . -type f -print0 | xargs -0 md5sum | sort) >"$ref.tmp" ||
            die "computing reference md5s failed"
        mv "$ref.tmp" "$ref" && mv "$tarball.tmp" "$tarball"
        rm -rf "$tmp"
    fi
    SUBSET_TAR=$tarball
    SUBSET_MD5=$ref
}

# A one-line description of the subset for reports.
linux_subset_label() {
    echo "Linux $(dpkg-query -W -f='${Version}' "$LINUX_SRC_PKG" 2>/dev/null || echo '(cached)'): ${SUBSET_DIRS[*]}"
}

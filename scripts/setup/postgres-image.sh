# Sourced by scripts/setup-engines.sh: the PostgreSQL 15 image that the interactive, pool and
# benchmark tests boot, built offline from Debian's packages (no image registry is reachable).
#
#   localhost/ociman-postgres:15   PostgreSQL 15 as user postgres on 5432 (all addresses),
#                                  trust authentication, data in /var/lib/postgresql/data;
#                                  logs "database system is ready to accept connections".
#
# The root filesystem is made once with debootstrap (≈ 2.5 min) and kept as a tar under
# /var/cache/ociman, named by this file's hash, so a changed recipe rebuilds it and an unchanged
# one is only imported into an engine that lacks the image.

PG_IMAGE_REPO=localhost/ociman-postgres
PG_IMAGE_TAG=15
PG_IMAGE="$PG_IMAGE_REPO:$PG_IMAGE_TAG"
PG_CACHE_DIR=/var/cache/ociman
PG_MIRROR=${OCIMAN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PG_BIN=/usr/lib/postgresql/15/bin
# The image's configuration, as `changes` of the engines' import (Dockerfile instructions).
PG_IMAGE_CHANGES=(
    "USER postgres"
    "WORKDIR /var/lib/postgresql"
    "ENV PATH=$PG_BIN:/usr/local/bin:/usr/bin:/bin"
    "ENV PGDATA=/var/lib/postgresql/data"
    "EXPOSE 5432"
    "CMD [\"postgres\", \"-D\", \"/var/lib/postgresql/data\"]"
)

PG_ROOTFS_TAR=""
ensure_pg_rootfs_tar() {   # sets PG_ROOTFS_TAR to the cached tar, building it first when absent
    local recipe_hash tar root
    recipe_hash=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
    tar="$PG_CACHE_DIR/postgres-15-rootfs-$recipe_hash.tar"
    if [ ! -s "$tar" ]; then
        mkdir -p "$PG_CACHE_DIR"
        root=$(mktemp -d /tmp/ociman-pgroot.XXXXXX)
        chmod 0755 "$root"     # mktemp's 0700 would become the image's / (postgres could not enter it)
        log "debootstrap bookworm with postgresql-15 into $root (log: /var/log/ociman-debootstrap.log)"
        if ! debootstrap --variant=minbase --include=postgresql-15 bookworm "$root" "$PG_MIRROR" \
            >/var/log/ociman-debootstrap.log 2>&1; then
            tail -n 30 /var/log/ociman-debootstrap.log >&2
            rm -rf "$root"
            die "debootstrap of the PostgreSQL image failed"
        fi
        # A cluster of our own: trust for every client (throwaway test databases), listening on
        # all addresses so a published port answers; Debian's packaged cluster is not used.
        rm -rf "$root/var/lib/postgresql/15" "$root/etc/postgresql/15"
        chroot "$root" su postgres -s /bin/sh -c \
            "$PG_BIN/initdb -D /var/lib/postgresql/data -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8" \
            >>/var/log/ociman-debootstrap.log 2>&1 || die "initdb in the PostgreSQL image failed"
        printf 'host all all 0.0.0.0/0 trust\nhost all all ::/0 trust\n' \
            >>"$root/var/lib/postgresql/data/pg_hba.conf"
        printf "listen_addresses = '*'\n" >>"$root/var/lib/postgresql/data/postgresql.conf"
        # What a database container never needs: package caches, documentation, translations.
        rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc \
            "$root"/usr/share/man "$root"/usr/share/locale "$root"/usr/share/info
        tar -C "$root" --numeric-owner -cf "$tar.partial" . && mv "$tar.partial" "$tar"
        rm -rf "$root"
        # Older recipes' tars are dead weight.
        find "$PG_CACHE_DIR" -name 'postgres-15-rootfs-*.tar' ! -path "$tar" -delete
        ACTIONS+=("built the PostgreSQL root filesystem")
    fi
    PG_ROOTFS_TAR=$tar
}

ensure_postgres_image() {   # ensure_postgres_image SOCKET ENGINE
    image_present "$1" "$PG_IMAGE" && return 0
    log "importing $PG_IMAGE into $2"
    ensure_pg_rootfs_tar
    import_rootfs "$1" "$2" "$PG_ROOTFS_TAR" "$PG_IMAGE" "${PG_IMAGE_CHANGES[@]}"
    ACTIONS+=("imported $PG_IMAGE into $2")
}

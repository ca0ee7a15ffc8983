-- Images and VMs. A VM references its image by name: an image in use cannot
-- be deleted, and a VM cannot name an image that does not exist.
CREATE TABLE images (
    name           TEXT PRIMARY KEY,
    distro         TEXT NOT NULL,
    suite          TEXT NOT NULL DEFAULT '',
    rootfs_path    TEXT NOT NULL,
    kernel_path    TEXT NOT NULL DEFAULT '',
    initrd_path    TEXT NOT NULL DEFAULT '',
    size_bytes     INTEGER NOT NULL DEFAULT 0,
    sha256         TEXT NOT NULL DEFAULT '',
    kernel_version TEXT NOT NULL DEFAULT '',
    created_at     TEXT NOT NULL
);

CREATE TABLE vms (
    id          TEXT PRIMARY KEY CHECK (length(id) = 8),
    name        TEXT NOT NULL UNIQUE,
    image       TEXT NOT NULL REFERENCES images(name) ON DELETE RESTRICT,
    vcpus       INTEGER NOT NULL CHECK (vcpus > 0),
    memory_mib  INTEGER NOT NULL CHECK (memory_mib > 0),
    disk_bytes  INTEGER NOT NULL CHECK (disk_bytes > 0),
    state       TEXT NOT NULL,
    vmm         TEXT NOT NULL DEFAULT '',
    ip          TEXT NOT NULL UNIQUE,
    mac         TEXT NOT NULL,
    tap         TEXT NOT NULL UNIQUE,
    vsock_path  TEXT NOT NULL DEFAULT '',
    vsock_cid   INTEGER NOT NULL UNIQUE CHECK (vsock_cid >= 3),
    pid         INTEGER NOT NULL DEFAULT 0,
    handle_json TEXT NOT NULL DEFAULT '',
    last_error  TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    started_at  TEXT
);

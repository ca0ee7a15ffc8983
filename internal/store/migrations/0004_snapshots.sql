-- Snapshots of a VM. A row is written only once the snapshot's files are
-- complete (bangerd removes snapshot directories without a row at start),
-- so the list never shows a half snapshot.
CREATE TABLE snapshots (
    vm_id      TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    has_memory INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL DEFAULT 0,
    manifest   TEXT NOT NULL,
    PRIMARY KEY (vm_id, name)
);

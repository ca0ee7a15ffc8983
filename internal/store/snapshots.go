package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/banger-dev/banger/internal/api"
)

// AddSnapshot records a complete snapshot of VM snap.VMID.
func (s *Store) AddSnapshot(ctx context.Context, snap api.Snapshot) (api.Snapshot, error) {
	manifest, err := json.Marshal(snap.Manifest)
	if err != nil {
		return api.Snapshot{}, err
	}
	if snap.CreatedAt.IsZero() {
		snap.CreatedAt = parseTime(now())
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO snapshots(vm_id, name, created_at, has_memory, size_bytes, manifest)
		VALUES (?,?,?,?,?,?)`, snap.VMID, snap.Name, snap.CreatedAt.UTC().Format(time.RFC3339Nano), snap.HasMemory, snap.SizeBytes, string(manifest))
	if isUnique(err, "snapshots.vm_id") || isUnique(err, "snapshots.name") {
		return api.Snapshot{}, newErr(ErrNameTaken, "VM %s already has a snapshot named %q", snap.VM, snap.Name)
	}
	if isForeignKey(err) {
		return api.Snapshot{}, newErr(ErrNotFound, "VM %q does not exist", snap.VMID)
	}
	if err != nil {
		return api.Snapshot{}, fmt.Errorf("add snapshot: %w", err)
	}
	return s.GetSnapshot(ctx, snap.VMID, snap.Name)
}

const snapCols = `s.vm_id, v.name, s.name, s.created_at, s.has_memory, s.size_bytes, s.manifest`

// GetSnapshot finds one snapshot of VM vmID by name.
func (s *Store) GetSnapshot(ctx context.Context, vmID, name string) (api.Snapshot, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+snapCols+` FROM snapshots s JOIN vms v ON v.id = s.vm_id
		WHERE s.vm_id = ? AND s.name = ?`, vmID, name)
	snap, err := scanSnapshot(row)
	if errors.Is(err, sql.ErrNoRows) {
		return api.Snapshot{}, newErr(ErrNotFound, "no snapshot named %q", name)
	}
	return snap, err
}

// ListSnapshots returns VM vmID's snapshots, oldest first.
func (s *Store) ListSnapshots(ctx context.Context, vmID string) ([]api.Snapshot, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+snapCols+` FROM snapshots s JOIN vms v ON v.id = s.vm_id
		WHERE s.vm_id = ? ORDER BY s.created_at, s.name`, vmID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []api.Snapshot{}
	for rows.Next() {
		snap, err := scanSnapshot(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, snap)
	}
	return out, rows.Err()
}

// DeleteSnapshot removes a snapshot's row.
func (s *Store) DeleteSnapshot(ctx context.Context, vmID, name string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM snapshots WHERE vm_id = ? AND name = ?`, vmID, name)
	if err != nil {
		return fmt.Errorf("delete snapshot %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return newErr(ErrNotFound, "no snapshot named %q", name)
	}
	return nil
}

func scanSnapshot(r scanner) (api.Snapshot, error) {
	var snap api.Snapshot
	var created, manifest string
	if err := r.Scan(&snap.VMID, &snap.VM, &snap.Name, &created, &snap.HasMemory, &snap.SizeBytes, &manifest); err != nil {
		return api.Snapshot{}, err
	}
	snap.CreatedAt = parseTime(created)
	if err := json.Unmarshal([]byte(manifest), &snap.Manifest); err != nil {
		return api.Snapshot{}, fmt.Errorf("snapshot %s: stored manifest: %w", snap.Name, err)
	}
	return snap, nil
}

package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/hostnet"
)

const vmCols = `id, name, image, vcpus, memory_mib, disk_bytes, state, vmm, ip, mac, tap, vsock_path, vsock_cid, pid, last_error, created_at, updated_at, started_at, publish, auto_forward`

// NewVM is what CreateVM needs; the store allocates the id, IP, MAC, tap and
// vsock CID inside the insert transaction.
type NewVM struct {
	Name      string
	Image     string
	VCPUs     int
	MemoryMiB int
	DiskBytes int64
	// Subnet the IP comes from; .1 is the gateway (bridge address).
	Subnet netip.Prefix
	// VsockPath derives the per-VM vsock socket path from the new id.
	VsockPath func(id string) string
	// Publish lists the VM's persistent port forwards.
	Publish []api.PortForward
	// AutoForward: nil follows the configuration.
	AutoForward *bool
}

// CreateVM inserts a stopped VM with freshly allocated addresses. The
// allocation and the insert share one BEGIN IMMEDIATE transaction, so two
// concurrent creates can never pick the same IP or CID; the unique indexes
// back that up.
func (s *Store) CreateVM(ctx context.Context, n NewVM) (api.VM, error) {
	for attempt := 0; ; attempt++ {
		vm, err := s.createVM(ctx, n, s.newID())
		// A random 32-bit id collides rarely; draw again. The collision
		// shows on any column derived from the id (the tap name is checked
		// before the primary key), so all of them count.
		if collidesOnID(err) && attempt < 5 {
			continue
		}
		return vm, err
	}
}

// idColumns are the unique columns whose value derives from the VM id.
var idColumns = []string{"vms.id", "vms.tap"}

func collidesOnID(err error) bool {
	cols, ok := uniqueColumns(err)
	if !ok {
		return false
	}
	for _, c := range cols {
		if slices.Contains(idColumns, c) {
			return true
		}
	}
	return false
}

func (s *Store) createVM(ctx context.Context, n NewVM, id string) (api.VM, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return api.VM{}, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()

	var exists int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM images WHERE name = ?`, n.Image).Scan(&exists); err != nil {
		return api.VM{}, err
	}
	if exists == 0 {
		return api.VM{}, newErr(ErrImageNotFound, "image %q does not exist", n.Image)
	}
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM vms WHERE name = ?`, n.Name).Scan(&exists); err != nil {
		return api.VM{}, err
	}
	if exists > 0 {
		return api.VM{}, newErr(ErrNameTaken, "a VM named %q already exists", n.Name)
	}
	ip, err := allocIP(ctx, tx, n.Subnet)
	if err != nil {
		return api.VM{}, err
	}
	cid, err := allocCID(ctx, tx)
	if err != nil {
		return api.VM{}, err
	}
	vsock := ""
	if n.VsockPath != nil {
		vsock = n.VsockPath(id)
	}
	ts := now()
	_, err = tx.ExecContext(ctx, `INSERT INTO vms(id, name, image, vcpus, memory_mib, disk_bytes, state, ip, mac, tap, vsock_path, vsock_cid, created_at, updated_at, publish, auto_forward)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		id, n.Name, n.Image, n.VCPUs, n.MemoryMiB, n.DiskBytes, string(api.VMStopped), ip.String(), hostnet.MACForIP(ip),
		hostnet.TapName(id), vsock, cid, ts, ts, encodePublish(n.Publish), n.AutoForward)
	if isUnique(err, "vms.name") {
		return api.VM{}, newErr(ErrNameTaken, "a VM named %q already exists", n.Name)
	}
	if isForeignKey(err) {
		return api.VM{}, newErr(ErrImageNotFound, "image %q does not exist", n.Image)
	}
	if err != nil {
		return api.VM{}, err
	}
	if err := tx.Commit(); err != nil {
		return api.VM{}, fmt.Errorf("commit: %w", err)
	}
	return s.GetVM(ctx, id)
}

// allocIP returns the lowest free host address of subnet, excluding the
// network address, the gateway (.1) and the broadcast address.
func allocIP(ctx context.Context, tx *sql.Tx, subnet netip.Prefix) (netip.Addr, error) {
	if !subnet.IsValid() || !subnet.Addr().Is4() {
		return netip.Addr{}, fmt.Errorf("invalid VM subnet %v", subnet)
	}
	rows, err := tx.QueryContext(ctx, `SELECT ip FROM vms`)
	if err != nil {
		return netip.Addr{}, err
	}
	used := map[netip.Addr]bool{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return netip.Addr{}, err
		}
		if a, err := netip.ParseAddr(s); err == nil {
			used[a] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return netip.Addr{}, err
	}
	subnet = subnet.Masked()
	gw := hostnet.Gateway(subnet)
	for a := gw.Next(); subnet.Contains(a); a = a.Next() {
		if !subnet.Contains(a.Next()) {
			break // a is the broadcast address
		}
		if !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, newErr(ErrSubnetFull, "no free address left in subnet %s (%d VMs hold addresses)", subnet, len(used))
}

// allocCID returns the lowest free vsock CID >= 3 (0-2 are reserved).
func allocCID(ctx context.Context, tx *sql.Tx) (uint32, error) {
	rows, err := tx.QueryContext(ctx, `SELECT vsock_cid FROM vms ORDER BY vsock_cid`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	next := uint32(3)
	for rows.Next() {
		var c uint32
		if err := rows.Scan(&c); err != nil {
			return 0, err
		}
		if c > next {
			break // gap
		}
		if c == next {
			next++
		}
	}
	if next == 0 || next == ^uint32(0) {
		return 0, ErrCIDsExhausted
	}
	return next, rows.Err()
}

// GetVM finds a VM by name, or by id when no name matches.
func (s *Store) GetVM(ctx context.Context, nameOrID string) (api.VM, error) {
	// A name wins over an id that happens to look the same.
	row := s.db.QueryRowContext(ctx, `SELECT `+vmCols+` FROM vms WHERE name = ?1 OR id = ?1
		ORDER BY name = ?1 DESC LIMIT 1`, nameOrID)
	vm, err := scanVM(row)
	if errors.Is(err, sql.ErrNoRows) {
		return api.VM{}, newErr(ErrNotFound, "VM %q does not exist", nameOrID)
	}
	return vm, err
}

// readVMs reads all VMs by name (ListVMs caches it).
func (s *Store) readVMs(ctx context.Context) ([]api.VM, error) {
	return s.queryVMs(ctx, `SELECT `+vmCols+` FROM vms ORDER BY name`)
}

// queryVMs runs a query selecting vmCols and scans every row.
func (s *Store) queryVMs(ctx context.Context, query string, args ...any) ([]api.VM, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	vms := []api.VM{}
	for rows.Next() {
		vm, err := scanVM(rows)
		if err != nil {
			return nil, err
		}
		vms = append(vms, vm)
	}
	return vms, rows.Err()
}

// readVMSummaries reads the list table's columns of every VM by name
// (ListVMSummaries caches it). The driver's cost is per cell, so reading
// half of the columns takes about half the time of readVMs.
func (s *Store) readVMSummaries(ctx context.Context) ([]api.VMSummary, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, state, ip, vcpus, memory_mib, disk_bytes, image, created_at
		FROM vms ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []api.VMSummary{}
	for rows.Next() {
		var v api.VMSummary
		var state, created string
		if err := rows.Scan(&v.ID, &v.Name, &state, &v.IP, &v.VCPUs, &v.MemoryMiB, &v.DiskBytes, &v.Image, &created); err != nil {
			return nil, err
		}
		v.State, v.CreatedAt = api.VMState(state), parseTime(created)
		out = append(out, v)
	}
	return out, rows.Err()
}

// ListVMsInState returns the full records of the VMs in state, by name
// (the vms_state index finds them without reading the others).
func (s *Store) ListVMsInState(ctx context.Context, state api.VMState) ([]api.VM, error) {
	return s.queryVMs(ctx, `SELECT `+vmCols+` FROM vms WHERE state = ? ORDER BY name`, string(state))
}

// VMUpdate lists fields to change; nil fields are left alone.
type VMUpdate struct {
	VCPUs     *int
	MemoryMiB *int
	DiskBytes *int64
	State     *api.VMState
	VMM       *string
	PID       *int
	LastError *string
	// StartedAt sets started_at; ClearStartedAt sets it to NULL (stopped).
	StartedAt      *time.Time
	ClearStartedAt bool
	// Publish replaces the persistent port forwards.
	Publish *[]api.PortForward
	// AutoForward sets auto_forward (on or off for this VM).
	AutoForward *bool
}

// UpdateVM changes the given fields of VM id and returns the new record.
func (s *Store) UpdateVM(ctx context.Context, id string, u VMUpdate) (api.VM, error) {
	var sets []string
	var args []any
	add := func(col string, v any) {
		sets = append(sets, col+" = ?")
		args = append(args, v)
	}
	if u.VCPUs != nil {
		add("vcpus", *u.VCPUs)
	}
	if u.MemoryMiB != nil {
		add("memory_mib", *u.MemoryMiB)
	}
	if u.DiskBytes != nil {
		add("disk_bytes", *u.DiskBytes)
	}
	if u.State != nil {
		add("state", string(*u.State))
	}
	if u.VMM != nil {
		add("vmm", *u.VMM)
	}
	if u.PID != nil {
		add("pid", *u.PID)
	}
	if u.LastError != nil {
		add("last_error", *u.LastError)
	}
	if u.StartedAt != nil {
		add("started_at", u.StartedAt.UTC().Format(time.RFC3339Nano))
	} else if u.ClearStartedAt {
		add("started_at", nil)
	}
	if u.Publish != nil {
		add("publish", encodePublish(*u.Publish))
	}
	if u.AutoForward != nil {
		add("auto_forward", *u.AutoForward)
	}
	add("updated_at", now())
	args = append(args, id)
	res, err := s.db.ExecContext(ctx, `UPDATE vms SET `+strings.Join(sets, ", ")+` WHERE id = ?`, args...)
	if err != nil {
		return api.VM{}, fmt.Errorf("update VM %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return api.VM{}, newErr(ErrNotFound, "VM %q does not exist", id)
	}
	return s.GetVM(ctx, id)
}

// SetVMState records a state and the last error ("" clears it).
func (s *Store) SetVMState(ctx context.Context, id string, state api.VMState, lastError string) (api.VM, error) {
	return s.UpdateVM(ctx, id, VMUpdate{State: &state, LastError: &lastError})
}

// DeleteVM removes the VM record, releasing its IP and CID.
func (s *Store) DeleteVM(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM vms WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete VM %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return newErr(ErrNotFound, "VM %q does not exist", id)
	}
	return nil
}

func scanVM(r scanner) (api.VM, error) {
	var vm api.VM
	var state, created, updated string
	var started sql.NullString
	var publish string
	var auto sql.NullBool
	err := r.Scan(&vm.ID, &vm.Name, &vm.Image, &vm.VCPUs, &vm.MemoryMiB, &vm.DiskBytes, &state, &vm.VMM, &vm.IP,
		&vm.MAC, &vm.Tap, &vm.VsockPath, &vm.VsockCID, &vm.PID, &vm.LastError, &created, &updated, &started, &publish, &auto)
	if err != nil {
		return api.VM{}, err
	}
	if auto.Valid {
		vm.AutoForward = &auto.Bool
	}
	if publish != "" {
		if err := json.Unmarshal([]byte(publish), &vm.Publish); err != nil {
			return api.VM{}, fmt.Errorf("VM %s: stored port forwards %q: %w", vm.Name, publish, err)
		}
	}
	vm.State = api.VMState(state)
	vm.CreatedAt = parseTime(created)
	vm.UpdatedAt = parseTime(updated)
	if started.Valid {
		t := parseTime(started.String)
		vm.StartedAt = &t
	}
	return vm, nil
}

// encodePublish stores forwards as JSON (” for none).
func encodePublish(p []api.PortForward) string {
	if len(p) == 0 {
		return ""
	}
	b, _ := json.Marshal(p)
	return string(b)
}

package store

import (
	"context"
	"database/sql"
	"slices"
	"sync"

	"github.com/banger-dev/banger/internal/api"
)

// listCache keeps the last full read of the VM list and of its summaries.
// The pure-Go driver's cost is per cell (1,000 VMs x 18 columns took 4-12
// ms), while `banger vm list`, the TUI's refresh and the forward and DNS
// loops read the whole list far more often than anything writes it. A read
// is reused while the database's data_version is unchanged: SQLite moves
// it on every commit by any other connection (this process's pool and
// other processes alike), so the cache can never hand out a list older than
// the last commit, and costs one small query per read.
type listCache struct {
	mu      sync.Mutex
	conn    *sql.Conn // data_version is per connection: this one only reads it
	version int64
	vms     []api.VM        // nil: not cached
	sums    []api.VMSummary // nil: not cached
	reads   int             // lists read from the tables (tests count them)
}

// dataVersion reads data_version on the cache's own connection (opened
// on first use). Called with mu held.
func (c *listCache) dataVersion(ctx context.Context, db *sql.DB) (int64, error) {
	if c.conn == nil {
		conn, err := db.Conn(ctx)
		if err != nil {
			return 0, err
		}
		c.conn = conn
	}
	var v int64
	if err := c.conn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v); err != nil {
		c.conn.Close()
		c.conn = nil
		return 0, err
	}
	return v, nil
}

// current drops what was cached when the database changed since it was
// read, and returns the version the next read will be cached under. The
// version is read before the rows: a commit between the two makes the next
// call read again, never keep an older list. Called with mu held.
func (c *listCache) current(ctx context.Context, db *sql.DB) (int64, bool) {
	v, err := c.dataVersion(ctx, db)
	if err != nil {
		c.vms, c.sums = nil, nil
		return 0, false
	}
	if v != c.version {
		c.vms, c.sums, c.version = nil, nil, v
	}
	return v, true
}

func (c *listCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	c.vms, c.sums = nil, nil
}

// ListVMs returns every VM by name.
func (s *Store) ListVMs(ctx context.Context) ([]api.VM, error) {
	c := &s.lists
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.current(ctx, s.db)
	if !ok || c.vms == nil {
		c.reads++
		vms, err := s.readVMs(ctx)
		if err != nil {
			return nil, err
		}
		if !ok {
			return vms, nil
		}
		c.vms, c.version = vms, v
	}
	return cloneVMs(c.vms), nil
}

// ListVMSummaries returns every VM's summary by name: the columns of the
// list table only.
func (s *Store) ListVMSummaries(ctx context.Context) ([]api.VMSummary, error) {
	c := &s.lists
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.current(ctx, s.db)
	if !ok || c.sums == nil {
		c.reads++
		sums, err := s.readVMSummaries(ctx)
		if err != nil {
			return nil, err
		}
		if !ok {
			return sums, nil
		}
		c.sums, c.version = sums, v
	}
	return slices.Clone(c.sums), nil
}

// cloneVMs copies the records deeply enough that a caller changing one
// (the services fill in live fields) cannot change the cached list.
// TestCloneVMCoversReferenceFields fails when api.VM gains a pointer,
// slice or map this does not copy.
func cloneVMs(vms []api.VM) []api.VM {
	out := slices.Clone(vms)
	for i := range out {
		vm := &out[i]
		vm.Publish = slices.Clone(vm.Publish)
		vm.Forwards = slices.Clone(vm.Forwards)
		if vm.StartedAt != nil {
			t := *vm.StartedAt
			vm.StartedAt = &t
		}
		if vm.AutoForward != nil {
			b := *vm.AutoForward
			vm.AutoForward = &b
		}
		if vm.Provision != nil {
			p := *vm.Provision
			p.Scripts = slices.Clone(p.Scripts)
			vm.Provision = &p
		}
	}
	return out
}

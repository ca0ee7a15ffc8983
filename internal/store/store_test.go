package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
)

var ctx = context.Background()

func openTest(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "banger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func seedImage(t testing.TB, s *Store, name string) {
	t.Helper()
	if _, err := s.PutImage(ctx, api.Image{Name: name, Distro: "debian", RootfsPath: "/x/" + name + ".ext4"}, false); err != nil {
		t.Fatal(err)
	}
}

func newVM(name string, subnet string) NewVM {
	return NewVM{Name: name, Image: "debian", VCPUs: 2, MemoryMiB: 1024, DiskBytes: 8 << 30,
		Subnet: netip.MustParsePrefix(subnet), VsockPath: func(id string) string { return "/run/" + id + "/v.sock" }}
}

func TestCreateGetUpdateDelete(t *testing.T) {
	s := openTest(t)
	seedImage(t, s, "debian")
	vm, err := s.CreateVM(ctx, newVM("dev", "172.30.0.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	if len(vm.ID) != 8 || vm.IP != "172.30.0.2" || vm.MAC != "06:00:ac:1e:00:02" || vm.Tap != "bg-"+vm.ID ||
		vm.VsockCID != 3 || vm.State != api.VMStopped || vm.VsockPath != "/run/"+vm.ID+"/v.sock" {
		t.Fatalf("unexpected VM %+v", vm)
	}
	byID, err := s.GetVM(ctx, vm.ID)
	if err != nil || byID.Name != "dev" {
		t.Fatalf("by id: %+v %v", byID, err)
	}
	if _, err := s.CreateVM(ctx, newVM("dev", "172.30.0.0/24")); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("duplicate name: %v", err)
	}
	n := newVM("other", "172.30.0.0/24")
	n.Image = "nope"
	if _, err := s.CreateVM(ctx, n); !errors.Is(err, ErrImageNotFound) {
		t.Fatalf("missing image: %v", err)
	}
	v4, st := 4, time.Now()
	up, err := s.UpdateVM(ctx, vm.ID, VMUpdate{VCPUs: &v4, StartedAt: &st})
	if err != nil || up.VCPUs != 4 || up.MemoryMiB != 1024 || up.StartedAt == nil {
		t.Fatalf("update: %+v %v", up, err)
	}
	up, err = s.UpdateVM(ctx, vm.ID, VMUpdate{ClearStartedAt: true})
	if err != nil || up.StartedAt != nil {
		t.Fatalf("clear: %+v %v", up, err)
	}
	if up, err := s.SetVMState(ctx, vm.ID, api.VMError, "boom"); err != nil || up.State != api.VMError || up.LastError != "boom" {
		t.Fatalf("state: %+v %v", up, err)
	}
	if err := s.DeleteImage(ctx, "debian"); !errors.Is(err, ErrImageInUse) {
		t.Fatalf("delete used image: %v", err)
	}
	if users, _ := s.ImageInUse(ctx, "debian"); len(users) != 1 || users[0] != "dev" {
		t.Fatalf("in use by %v", users)
	}
	if err := s.DeleteVM(ctx, vm.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetVM(ctx, "dev"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := s.DeleteVM(ctx, vm.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("double delete: %v", err)
	}
	if err := s.DeleteImage(ctx, "debian"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteImage(ctx, "debian"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
}

func TestImages(t *testing.T) {
	s := openTest(t)
	seedImage(t, s, "b")
	seedImage(t, s, "a")
	if _, err := s.PutImage(ctx, api.Image{Name: "a", Distro: "void", RootfsPath: "/y"}, false); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("duplicate: %v", err)
	}
	if img, err := s.PutImage(ctx, api.Image{Name: "a", Distro: "void", RootfsPath: "/y"}, true); err != nil || img.Distro != "void" {
		t.Fatalf("replace: %+v %v", img, err)
	}
	imgs, err := s.ListImages(ctx)
	if err != nil || len(imgs) != 2 || imgs[0].Name != "a" {
		t.Fatalf("%+v %v", imgs, err)
	}
	if _, err := s.GetImage(ctx, "zz"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
}

func TestIPExhaustionAndReuse(t *testing.T) {
	s := openTest(t)
	seedImage(t, s, "debian")
	// /29: 8 addresses - network - gateway - broadcast = 5 VMs.
	var vms []api.VM
	for i := 0; i < 5; i++ {
		vm, err := s.CreateVM(ctx, newVM(fmt.Sprintf("vm%d", i), "10.1.2.0/29"))
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("10.1.2.%d", i+2); vm.IP != want {
			t.Fatalf("vm%d got %s, want %s", i, vm.IP, want)
		}
		vms = append(vms, vm)
	}
	_, err := s.CreateVM(ctx, newVM("full", "10.1.2.0/29"))
	if !errors.Is(err, ErrSubnetFull) {
		t.Fatalf("want ErrSubnetFull, got %v", err)
	}
	if want := "10.1.2.0/29"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name the subnet", err)
	}
	// Release the middle one: the next create gets exactly that address, and its CID.
	if err := s.DeleteVM(ctx, vms[2].ID); err != nil {
		t.Fatal(err)
	}
	vm, err := s.CreateVM(ctx, newVM("again", "10.1.2.0/29"))
	if err != nil || vm.IP != vms[2].IP || vm.VsockCID != vms[2].VsockCID {
		t.Fatalf("reuse: %+v %v (released %s cid %d)", vm, err, vms[2].IP, vms[2].VsockCID)
	}
}

func contains(s, sub string) bool {
	return len(s) >= len(sub) && (s == sub || len(sub) == 0 || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestConcurrentAllocationsUnique(t *testing.T) {
	s := openTest(t)
	seedImage(t, s, "debian")
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := s.CreateVM(ctx, newVM(fmt.Sprintf("c%d", i), "172.30.0.0/24"))
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	vms, err := s.ListVMs(ctx)
	if err != nil || len(vms) != n {
		t.Fatalf("%d VMs, %v", len(vms), err)
	}
	ips, cids, taps := map[string]bool{}, map[uint32]bool{}, map[string]bool{}
	for _, vm := range vms {
		if ips[vm.IP] || cids[vm.VsockCID] || taps[vm.Tap] {
			t.Fatalf("duplicate allocation in %+v", vm)
		}
		ips[vm.IP], cids[vm.VsockCID], taps[vm.Tap] = true, true, true
		if vm.VsockCID < 3 {
			t.Fatalf("CID %d < 3", vm.VsockCID)
		}
	}
}

// TestMigrationsOnSeededData builds a database at each older version, seeds
// it, then opens it normally (applying the rest) and checks the data
// survived and each later migration took effect.
func TestMigrationsOnSeededData(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	// What each migration must leave behind, checked after a full Open.
	effects := map[int]func(*testing.T, *Store){
		1: func(t *testing.T, s *Store) {
			for _, tbl := range []string{"images", "vms"} {
				var n int
				s.db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?`, tbl).Scan(&n)
				if n != 1 {
					t.Errorf("0001: table %s missing", tbl)
				}
			}
		},
		2: func(t *testing.T, s *Store) {
			var n int
			s.db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type='index' AND name IN ('vms_image','vms_state')`).Scan(&n)
			if n != 2 {
				t.Errorf("0002: %d of 2 indexes", n)
			}
		},
		3: func(t *testing.T, s *Store) {
			vm, err := s.GetVM(ctx, "seeded")
			if err != nil || vm.Publish != nil {
				t.Fatalf("0003: a VM from before has publish %v, %v; want none", vm.Publish, err)
			}
			want := []api.PortForward{{HostAddr: "127.0.0.1", HostPort: 8080, GuestPort: 80}}
			vm, err = s.UpdateVM(ctx, vm.ID, VMUpdate{Publish: &want})
			if err != nil || !reflect.DeepEqual(vm.Publish, want) {
				t.Errorf("0003: publish after update %v, %v; want %v", vm.Publish, err, want)
			}
		},
		4: func(t *testing.T, s *Store) {
			vm, err := s.GetVM(ctx, "seeded")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.AddSnapshot(ctx, api.Snapshot{VMID: vm.ID, Name: "s1"}); err != nil {
				t.Errorf("0004: add a snapshot to a VM from before: %v", err)
			}
		},
	}
	for _, m := range ms {
		if effects[m.version] == nil {
			t.Errorf("migration %s has no effect check in this test: add one", m.name)
		}
	}
	for _, from := range ms {
		t.Run(fmt.Sprintf("from-%d", from.version), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.db")
			old, err := openMigrated(path, from.version)
			if err != nil {
				t.Fatal(err)
			}
			if v, _ := old.SchemaVersion(ctx); v != from.version {
				t.Fatalf("built at version %d, want %d", v, from.version)
			}
			seedImage(t, old, "debian")
			// Raw SQL with version 1's columns: CreateVM writes today's.
			vm := api.VM{ID: "5eed0001", IP: "172.30.0.2", VsockCID: 3}
			if _, err := old.db.ExecContext(ctx, `INSERT INTO vms(id, name, image, vcpus, memory_mib, disk_bytes, state, ip, mac, tap, vsock_path, vsock_cid, created_at, updated_at)
				VALUES (?, 'seeded', 'debian', 1, 512, 1073741824, 'stopped', ?, '06:00:ac:1e:00:02', 'bg-5eed0001', '', ?, ?, ?)`,
				vm.ID, vm.IP, vm.VsockCID, now(), now()); err != nil {
				t.Fatal(err)
			}
			old.Close()

			s, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if v, _ := s.SchemaVersion(ctx); v != ms[len(ms)-1].version {
				t.Fatalf("version %d after Open", v)
			}
			got, err := s.GetVM(ctx, "seeded")
			if err != nil || got.ID != vm.ID || got.IP != vm.IP || got.VsockCID != vm.VsockCID || got.Image != "debian" {
				t.Fatalf("seeded VM after migration: %+v %v", got, err)
			}
			if err := s.DeleteImage(ctx, "debian"); !errors.Is(err, ErrImageInUse) {
				t.Fatalf("foreign key lost after migration: %v", err)
			}
			for _, m := range ms {
				effects[m.version](t, s)
			}
			var fk int
			var mode string
			s.db.QueryRow(`PRAGMA foreign_keys`).Scan(&fk)
			s.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
			if fk != 1 || mode != "wal" {
				t.Fatalf("foreign_keys=%d journal_mode=%s", fk, mode)
			}
		})
	}
}

func TestGetVMNameWinsOverID(t *testing.T) {
	s := openTest(t)
	seedImage(t, s, "debian")
	a, err := s.CreateVM(ctx, newVM("first", "172.30.0.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	// A VM whose name equals the other's id.
	b, err := s.CreateVM(ctx, newVM(a.ID, "172.30.0.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetVM(ctx, a.ID)
	if err != nil || got.ID != b.ID {
		t.Fatalf("GetVM(%s) = %+v, want the VM named so", a.ID, got)
	}
}

// The list table's columns match the full records, and ListVMsInState
// returns only the VMs in that state.
func TestListVMSummariesAndInState(t *testing.T) {
	s := openTest(t)
	seedImage(t, s, "debian")
	for _, name := range []string{"web", "db", "cache"} {
		if _, err := s.CreateVM(ctx, newVM(name, "172.30.0.0/24")); err != nil {
			t.Fatal(err)
		}
	}
	db, _ := s.GetVM(ctx, "db")
	running := api.VMRunning
	if _, err := s.UpdateVM(ctx, db.ID, VMUpdate{State: &running}); err != nil {
		t.Fatal(err)
	}
	vms, err := s.ListVMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sums, err := s.ListVMSummaries(ctx)
	if err != nil || len(sums) != len(vms) {
		t.Fatalf("%d summaries for %d VMs: %v", len(sums), len(vms), err)
	}
	for i, vm := range vms {
		want := api.VMSummary{ID: vm.ID, Name: vm.Name, State: vm.State, IP: vm.IP, VCPUs: vm.VCPUs, MemoryMiB: vm.MemoryMiB,
			DiskBytes: vm.DiskBytes, Image: vm.Image, CreatedAt: vm.CreatedAt}
		if sums[i] != want {
			t.Errorf("summary %+v, want %+v", sums[i], want)
		}
	}
	if sums[0].Name != "cache" || sums[2].Name != "web" {
		t.Errorf("not by name: %+v", sums)
	}
	run, err := s.ListVMsInState(ctx, api.VMRunning)
	if err != nil || len(run) != 1 || run[0].Name != "db" || run[0].Tap == "" {
		t.Fatalf("running VMs %+v %v", run, err)
	}
}

// seed1000 writes 1,000 VMs with sequential ids, so a random id collision
// (CreateVM's business) cannot fail a benchmark.
func seed1000(b *testing.B) *Store {
	s := openTest(b)
	seedImage(b, s, "debian")
	for i := 0; i < 1000; i++ {
		if _, err := s.createVM(ctx, newVM(fmt.Sprintf("vm-%04d", i), "10.9.0.0/16"), fmt.Sprintf("%08x", i+1)); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkListVMs1000: the SQL read of 1,000 full records, without the
// list cache (what every read cost before it, and what a read after a
// commit still costs).
func BenchmarkListVMs1000(b *testing.B) {
	s := seed1000(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		vms, err := s.readVMs(ctx)
		if err != nil || len(vms) != 1000 {
			b.Fatal(err)
		}
	}
}

// A random id that collides with an existing VM's surfaces as a UNIQUE
// violation on the tap name (derived from the id, checked before the
// primary key): CreateVM draws again rather than failing.
func TestCreateVMRetriesAnIDCollision(t *testing.T) {
	s := openTest(t)
	seedImage(t, s, "debian")
	ids := []string{"0000abcd", "0000abcd", "0000abcd", "1111abcd"}
	s.newID = func() string {
		id := ids[0]
		ids = ids[1:]
		return id
	}
	first, err := s.CreateVM(ctx, newVM("one", "172.30.0.0/24"))
	if err != nil || first.ID != "0000abcd" {
		t.Fatalf("first: %+v %v", first, err)
	}
	second, err := s.CreateVM(ctx, newVM("two", "172.30.0.0/24"))
	if err != nil || second.ID != "1111abcd" || second.Tap != "bg-1111abcd" {
		t.Fatalf("second create after two colliding ids: %+v %v", second, err)
	}
	if len(ids) != 0 {
		t.Fatalf("ids left undrawn: %v", ids)
	}
	// Endless collisions end in an error, not a loop.
	s.newID = func() string { return "0000abcd" }
	if _, err := s.CreateVM(ctx, newVM("three", "172.30.0.0/24")); !collidesOnID(err) {
		t.Fatalf("endless collisions: %v", err)
	}
}

// Constraint errors are recognised by the driver's error type and code,
// naming the columns SQLite reports.
func TestConstraintErrorsByType(t *testing.T) {
	s := openTest(t)
	seedImage(t, s, "debian")
	_, err := s.db.ExecContext(ctx, `INSERT INTO images(name, distro, rootfs_path, created_at) VALUES ('debian', 'debian', '/r', 't')`)
	if cols, ok := uniqueColumns(err); !ok || len(cols) != 1 || cols[0] != "images.name" {
		t.Fatalf("duplicate image: %v -> %v %v", err, cols, ok)
	}
	if isForeignKey(err) || isUnique(err, "images.distro") {
		t.Fatal("a UNIQUE violation taken for another")
	}
	if _, ok := uniqueColumns(errors.New("UNIQUE constraint failed: vms.tap")); ok {
		t.Fatal("a plain error with the words taken for a constraint violation")
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO vms(id, name, image, vcpus, memory_mib, disk_bytes, state, ip, mac, tap, vsock_cid, created_at, updated_at)
		VALUES ('0000abcd','x','nope',1,256,1,'stopped','172.30.0.9','m','bg-0000abcd',9,'t','t')`)
	if !isForeignKey(err) {
		t.Fatalf("missing image: %v", err)
	}
}

// A database migrated by a newer banger is refused, naming both versions.
func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "banger.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	known, _ := s.SchemaVersion(ctx)
	if _, err := s.db.ExecContext(ctx, `INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, 'future.sql', 't')`, known+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(path)
	if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), fmt.Sprintf("version %d", known+1)) ||
		!strings.Contains(err.Error(), fmt.Sprintf("(%d)", known)) {
		t.Fatalf("open a newer database: %v", err)
	}
}

// BenchmarkListVMSummaries1000: the list table's SQL read of the same
// rows, without the list cache.
func BenchmarkListVMSummaries1000(b *testing.B) {
	s := seed1000(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		vms, err := s.readVMSummaries(ctx)
		if err != nil || len(vms) != 1000 {
			b.Fatal(err)
		}
	}
}

// BenchmarkListVMs1000Cached: ListVMs of an unchanged database, served by
// the list cache (one data_version query and a copy).
func BenchmarkListVMs1000Cached(b *testing.B) {
	s := seed1000(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		vms, err := s.ListVMs(ctx)
		if err != nil || len(vms) != 1000 {
			b.Fatal(err)
		}
	}
}

package store

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
)

// The cached list follows every commit: this store's own writes, and
// another connection's (a second Store on the same file stands for another
// process), whichever list is read.
func TestListCacheFollowsCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "banger.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seedImage(t, s, "debian")
	names := func() []string {
		t.Helper()
		vms, err := s.ListVMs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sums, err := s.ListVMSummaries(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for i, vm := range vms {
			if sums[i].Name != vm.Name || sums[i].State != vm.State {
				t.Fatalf("summaries %+v disagree with the records %+v", sums, vms)
			}
			out = append(out, vm.Name+":"+string(vm.State))
		}
		return out
	}
	if got := names(); len(got) != 0 {
		t.Fatalf("empty database lists %v", got)
	}
	a, err := s.CreateVM(ctx, newVM("a", "172.30.0.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	if got := names(); !reflect.DeepEqual(got, []string{"a:stopped"}) {
		t.Fatalf("after create: %v", got)
	}
	reads := s.lists.reads
	names() // both lists come from the cache: nothing was committed
	if s.lists.reads != reads {
		t.Errorf("an unchanged database was read again (%d reads, then %d)", reads, s.lists.reads)
	}
	if _, err := s.SetVMState(ctx, a.ID, api.VMRunning, ""); err != nil {
		t.Fatal(err)
	}
	if got := names(); !reflect.DeepEqual(got, []string{"a:running"}) {
		t.Fatalf("after a state change: %v", got)
	}

	other, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.CreateVM(ctx, newVM("b", "172.30.0.0/24")); err != nil {
		t.Fatal(err)
	}
	if got := names(); !reflect.DeepEqual(got, []string{"a:running", "b:stopped"}) {
		t.Fatalf("after another connection's create: %v", got)
	}
	if err := other.DeleteVM(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if got := names(); !reflect.DeepEqual(got, []string{"b:stopped"}) {
		t.Fatalf("after another connection's delete: %v", got)
	}
}

// What a caller does to a returned list never reaches the cache.
func TestListCacheHandsOutCopies(t *testing.T) {
	s := openTest(t)
	seedImage(t, s, "debian")
	n := newVM("a", "172.30.0.0/24")
	vm, err := s.CreateVM(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	if _, err := s.SetVMState(ctx, vm.ID, api.VMRunning, ""); err != nil {
		t.Fatal(err)
	}
	first, _ := s.ListVMs(ctx)
	want := first[0]
	want.Publish = append([]api.PortForward(nil), want.Publish...)
	first[0].Name = "changed"
	first[0].Publish = append(first[0].Publish, api.PortForward{HostAddr: "127.0.0.1", HostPort: 1, GuestPort: 1})
	if first[0].StartedAt != nil {
		*first[0].StartedAt = now.Add(time.Hour)
	}
	sums, _ := s.ListVMSummaries(ctx)
	sums[0].Name = "changed"
	again, _ := s.ListVMs(ctx)
	if !reflect.DeepEqual(again[0], want) {
		t.Errorf("a caller's change reached the cache:\n got %+v\nwant %+v", again[0], want)
	}
	if sums, _ := s.ListVMSummaries(ctx); sums[0].Name != "a" {
		t.Errorf("a caller's change reached the cached summaries: %+v", sums[0])
	}
}

// cloneVMs copies every field that refers to shared memory; a new pointer,
// slice or map field in api.VM must be added to it (and here).
func TestCloneVMCoversReferenceFields(t *testing.T) {
	copied := map[string]bool{"Publish": true, "Forwards": true, "StartedAt": true, "AutoForward": true, "Provision": true}
	typ := reflect.TypeFor[api.VM]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		switch f.Type.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface, reflect.Chan, reflect.Func:
			if !copied[f.Name] {
				t.Errorf("api.VM.%s (%s) is shared by cloneVMs: copy it there", f.Name, f.Type)
			}
		}
	}
	// VMProvision's only reference field is Scripts.
	for i := range reflect.TypeFor[api.VMProvision]().NumField() {
		f := reflect.TypeFor[api.VMProvision]().Field(i)
		switch f.Type.Kind() {
		case reflect.Pointer, reflect.Map, reflect.Interface, reflect.Chan, reflect.Func:
			t.Errorf("api.VMProvision.%s (%s) is shared by cloneVMs: copy it there", f.Name, f.Type)
		case reflect.Slice:
			if f.Name != "Scripts" {
				t.Errorf("api.VMProvision.%s (%s) is shared by cloneVMs: copy it there", f.Name, f.Type)
			}
		}
	}
	for i := range reflect.TypeFor[api.VMSummary]().NumField() {
		switch reflect.TypeFor[api.VMSummary]().Field(i).Type.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface, reflect.Chan, reflect.Func:
			t.Errorf("api.VMSummary gained a reference field: ListVMSummaries' slices.Clone no longer copies it")
		}
	}
}

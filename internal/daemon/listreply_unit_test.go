package daemon

import (
	"reflect"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
)

// sameVM must see a change in any field of api.VM, nested ones included:
// a field it missed would let vm.list hand out a stale reply. Each leaf
// (and each pointer and slice as a whole) is changed in turn.
func TestSameVMCoversEveryField(t *testing.T) {
	var a api.VM
	fillValue(reflect.ValueOf(&a).Elem(), 1)
	b := deepCopyVM(a)
	if !sameVM(a, b) {
		t.Fatal("sameVM says a copy differs")
	}
	n := 0
	eachLeaf(reflect.ValueOf(&b).Elem(), "VM", func(path string, change, undo func()) {
		n++
		change()
		if sameVM(a, b) {
			t.Errorf("sameVM misses a change of %s", path)
		}
		undo()
		if !sameVM(a, b) {
			t.Fatalf("after restoring %s, sameVM says the copy differs", path)
		}
	})
	if n < 30 {
		t.Fatalf("only %d fields changed: the walk lost some", n)
	}
}

func TestReplyCacheReusesOnlyTheSameList(t *testing.T) {
	var c replyCache[api.VMSummariesResult]
	one := api.VMSummariesResult{VMs: []api.VMSummary{{ID: "1", Name: "a"}}}
	b1, _ := c.encode(one, sameSummaries)
	b2, _ := c.encode(api.VMSummariesResult{VMs: []api.VMSummary{{ID: "1", Name: "a"}}}, sameSummaries)
	if &b1[0] != &b2[0] {
		t.Fatal("an equal list was encoded again")
	}
	b3, _ := c.encode(api.VMSummariesResult{VMs: []api.VMSummary{{ID: "1", Name: "a", VCPUs: 2}}}, sameSummaries)
	if string(b3) == string(b1) {
		t.Fatalf("a changed list got the old reply %s", b3)
	}
	b4, _ := c.encode(api.VMSummariesResult{VMs: []api.VMSummary{}}, sameSummaries)
	b5, _ := c.encode(api.VMSummariesResult{}, sameSummaries)
	if string(b4) != `{"vms":[]}` || string(b5) != `{"vms":null}` {
		t.Fatalf("empty and nil lists: %s %s", b4, b5)
	}
}

func deepCopyVM(v api.VM) api.VM {
	var out api.VM
	fillValue(reflect.ValueOf(&out).Elem(), 1)
	return out
}

// fillValue sets every field to a non-zero value derived from n, so two
// calls with the same n build equal values that share no memory.
func fillValue(v reflect.Value, n int) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("s")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(int64(n))
	case reflect.Uint, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(n))
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillValue(v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		fillValue(v.Index(0), n)
		fillValue(v.Index(1), n)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Unix(int64(n), 0).UTC()))
			return
		}
		for i := range v.NumField() {
			fillValue(v.Field(i), n)
		}
	default:
		panic("fillValue: add " + v.Kind().String())
	}
}

// eachLeaf calls visit for every leaf field under v, and for every pointer
// (set to nil) and slice (one element fewer), with a change and its undo.
func eachLeaf(v reflect.Value, path string, visit func(path string, change, undo func())) {
	old := reflect.New(v.Type()).Elem()
	old.Set(v)
	undo := func() { v.Set(old) }
	switch v.Kind() {
	case reflect.Pointer:
		visit(path+" (nil)", func() { v.Set(reflect.Zero(v.Type())) }, undo)
		eachLeaf(v.Elem(), path, visit)
	case reflect.Slice:
		visit(path+" (shorter)", func() { v.Set(v.Slice(0, v.Len()-1)) }, undo)
		visit(path+" (nil)", func() { v.Set(reflect.Zero(v.Type())) }, undo)
		for i := range v.Len() {
			eachLeaf(v.Index(i), path+"[i]", visit)
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			visit(path, func() { v.Set(reflect.ValueOf(old.Interface().(time.Time).Add(time.Nanosecond))) }, undo)
			return
		}
		for i := range v.NumField() {
			eachLeaf(v.Field(i), path+"."+v.Type().Field(i).Name, visit)
		}
	default:
		changed := reflect.New(v.Type()).Elem()
		fillValue(changed, 99)
		if v.Kind() == reflect.String {
			changed.SetString("other")
		}
		if v.Kind() == reflect.Bool {
			changed.SetBool(false)
		}
		visit(path, func() { v.Set(changed) }, undo)
	}
}

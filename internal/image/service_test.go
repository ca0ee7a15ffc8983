package image

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/bundle"
	"github.com/banger-dev/banger/internal/store"
)

func apiCode(err error) api.ErrorCode {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

// The image service on a real store: register, the error mapping of each
// store outcome, and verify's offline checks plus the Boot hook.
func TestServiceOnStore(t *testing.T) {
	tree, pub, agent := fakeTree(t)
	os.Symlink("/usr/bin/busybox", filepath.Join(tree, "usr/sbin/sshd"))
	if out, err := customize(t, tree, pub, agent, "", ""); err != nil {
		t.Fatalf("customize: %v\n%s", err, out)
	}
	rootfs := pack(t, tree)
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	booted := 0
	s := &Service{Store: st, Builder: &Builder{},
		Bundle: func() (*bundle.Bundle, error) { return &bundle.Bundle{SSHPubKeyPath: pub}, nil },
		Preflight: func(context.Context, api.ImageBuildParams) error {
			t.Error("preflight ran for a build refused by its name")
			return nil
		},
		Boot: func(_ context.Context, img api.Image, _ *bundle.Bundle, _ func(api.Progress)) []api.CheckResult {
			booted++
			return []api.CheckResult{{Name: "boot", Status: api.CheckFail, Detail: "test boot of " + img.Name}}
		},
	}
	ctx := context.Background()

	img, err := s.Register(ctx, api.ImageRegisterParams{Name: "mine", RootfsPath: rootfs})
	if err != nil || img.Name != "mine" || img.SHA256 == "" {
		t.Fatalf("register: %+v %v", img, err)
	}
	if _, err := s.Register(ctx, api.ImageRegisterParams{Name: "mine", RootfsPath: rootfs}); apiCode(err) != api.CodeAlreadyExists {
		t.Errorf("second register: %v", err)
	}
	if list, err := s.List(ctx); err != nil || len(list) != 1 {
		t.Errorf("list: %+v %v", list, err)
	}
	if _, err := s.Get(ctx, "other"); apiCode(err) != api.CodeNotFound || !strings.Contains(err.Error(), "banger image list") {
		t.Errorf("get missing: %v", err)
	}
	// The one name rule: what vm create refuses cannot be built.
	if _, err := s.Build(ctx, api.ImageBuildParams{Name: "deb_12"}, nil); apiCode(err) != api.CodeInvalidArgument {
		t.Errorf("build deb_12: %v", err)
	}

	res, err := s.Verify(ctx, "mine", func(api.Progress) {})
	if err != nil || res.Passed || booted != 1 || res.Checks[len(res.Checks)-1].Detail != "test boot of mine" {
		t.Errorf("verify: %+v %v (booted %d)", res, err, booted)
	}
	for _, c := range res.Checks[:len(res.Checks)-1] {
		if c.Status == api.CheckFail {
			t.Errorf("offline check failed on a good image: %+v", c)
		}
	}

	if _, err := st.CreateVM(ctx, store.NewVM{Name: "dev", Image: "mine", VCPUs: 1, MemoryMiB: 256, DiskBytes: 1 << 30,
		Subnet: netip.MustParsePrefix("172.30.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "mine"); apiCode(err) != api.CodeConflict || !strings.Contains(err.Error(), "dev") {
		t.Errorf("delete image in use: %v", err)
	}
	vm, _ := st.GetVM(ctx, "dev")
	if err := st.DeleteVM(ctx, vm.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "mine"); err != nil {
		t.Errorf("delete: %v", err)
	}
	if err := s.Delete(ctx, "mine"); apiCode(err) != api.CodeNotFound {
		t.Errorf("delete again: %v", err)
	}
}

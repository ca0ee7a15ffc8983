package image

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/bundle"
	"github.com/banger-dev/banger/internal/ociimage/ocitest"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/store"
)

// ociLayout writes an image of one layer holding files to an OCI layout
// tagged tag, and returns the layout's directory and the image's digest.
func ociLayout(t *testing.T, tag string, files map[string]string) (string, string) {
	t.Helper()
	var entries []ocitest.Entry
	for n, body := range files {
		entries = append(entries, ocitest.File(n, body, 0o755))
	}
	img := ocitest.Image(t, v1.Config{}, ocitest.Layer(t, entries...))
	d, _ := img.Digest()
	return ocitest.Layout(t, tag, img), d.String()
}

// image.import answers a re-import of the digest an image has at once
// (no bundle, no build), refuses another digest under a taken name without
// --force, refuses an image without systemd before writing anything, and
// refuses bad references.
func TestServiceImportRules(t *testing.T) {
	root := t.TempDir()
	l := paths.UnderRoot(root)
	l.CacheDir = filepath.Join(root, "cache")
	st, err := store.Open(filepath.Join(root, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pub := filepath.Join(root, "id.pub")
	agent := filepath.Join(root, "agent")
	os.WriteFile(pub, []byte("ssh-ed25519 AAAA test\n"), 0o644)
	os.WriteFile(agent, []byte("#!/bin/sh\n"), 0o755)
	bundleCalls := 0
	s := &Service{Store: st, Builder: &Builder{Layout: l},
		Bundle: func() (*bundle.Bundle, error) {
			bundleCalls++
			return &bundle.Bundle{SSHPubKeyPath: pub, AgentPath: agent}, nil
		}}
	ctx := context.Background()

	dir, digest := ociLayout(t, "v1", map[string]string{"bin/busybox": "not really"})
	ref := "oci:" + dir + ":v1"
	rootfs := filepath.Join(root, "app.ext4")
	os.WriteFile(rootfs, []byte("image"), 0o644)
	if _, err := st.PutImage(ctx, api.Image{Name: "app", Distro: "oci", RootfsPath: rootfs}, false); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(Origin{Source: ref, Digest: digest, Init: "systemd"})
	os.WriteFile(OriginPath(rootfs), data, 0o644)

	var steps []string
	got, err := s.Import(ctx, api.ImageImportParams{Name: "app", Ref: ref}, func(p api.Progress) { steps = append(steps, p.Message) })
	if err != nil || got.Digest != digest || got.Source != ref || bundleCalls != 0 {
		t.Fatalf("re-import of the same digest: %+v, %v (bundle loaded %d times)", got, err, bundleCalls)
	}
	if !strings.Contains(strings.Join(steps, "\n"), "already "+digest) {
		t.Errorf("progress %q does not say the image is already that digest", steps)
	}
	if shown, _ := s.Get(ctx, "app"); shown.Digest != digest || shown.Source != ref {
		t.Errorf("image.get: %+v", shown)
	}

	other, otherDigest := ociLayout(t, "v2", map[string]string{"bin/other": "x"})
	_, err = s.Import(ctx, api.ImageImportParams{Name: "app", Ref: "oci:" + other + ":v2"}, nil)
	if apiCode(err) != api.CodeAlreadyExists || !strings.Contains(err.Error(), digest) {
		t.Errorf("another digest under a taken name: %v", err)
	}
	// With --force it is rebuilt: this tree has no systemd (so would boot
	// with the agent as PID 1) but no /etc either, which is refused before
	// any image file is written.
	_, err = s.Import(ctx, api.ImageImportParams{Name: "app", Ref: "oci:" + other + ":v2", Force: true}, nil)
	if apiCode(err) != api.CodeFailedPrecondition || !strings.Contains(err.Error(), "no /etc") {
		t.Errorf("an image without /etc: %v", err)
	}
	if _, err := os.Stat(filepath.Join(l.ImagesDir(), "app.ext4")); !os.IsNotExist(err) {
		t.Errorf("a refused import left %s: %v", filepath.Join(l.ImagesDir(), "app.ext4"), err)
	}
	if cached, _ := filepath.Glob(filepath.Join(l.BuildCacheDir(), "oci", strings.ReplaceAll(otherDigest, ":", "-")+".tar")); len(cached) != 1 {
		t.Errorf("the flattened tree of %s is not cached", otherDigest)
	}
	if _, err := s.Import(ctx, api.ImageImportParams{Name: "app", Ref: "oci:" + other + ":v2", Force: true, Packages: []string{"--allow-untrusted"}}, nil); apiCode(err) != api.CodeInvalidArgument {
		t.Errorf("a bad package name: %v", err)
	}
	// The same digest with other packages is another image.
	if _, err := s.Import(ctx, api.ImageImportParams{Name: "app", Ref: ref, Packages: []string{"curl"}}, nil); apiCode(err) != api.CodeAlreadyExists {
		t.Errorf("the same digest with --packages: %v; want already_exists", err)
	}
	for _, tc := range []struct{ ref, want string }{
		{"Bad Ref!", "not an image reference"},
		{"oci:" + filepath.Join(root, "none"), "not an OCI image layout"},
		{"docker-archive:" + filepath.Join(root, "none.tar"), "no such file"},
	} {
		if _, err := s.Import(ctx, api.ImageImportParams{Name: "x", Ref: tc.ref}, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("import %s: %v; want %q", tc.ref, err, tc.want)
		}
	}
	if _, err := s.Import(ctx, api.ImageImportParams{Name: "Bad", Ref: ref}, nil); apiCode(err) != api.CodeInvalidArgument {
		t.Errorf("a bad name: %v", err)
	}
}

package e2e

import (
	"compress/gzip"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/e2etest"
	"github.com/banger-dev/banger/internal/ociimage/ocitest"
)

// TestImportedImageBoots is issue 19's import proof in a real guest: an
// OCI layout the test writes (the cached Debian base tree as one layer, an
// application layer with a whiteout above it) is imported with `banger image
// import oci:DIR:TAG`, a VM boots from it, and the application layer's file
// is there (the whited-out one is not); a second import of the same digest
// is answered at once.
func TestImportedImageBoots(t *testing.T) {
	env := e2etest.New(t, e2etest.Options{Subnet: "172.30.94.0/24", Bridge: "bangeroci", Config: "nat = false\n"})
	base, err := tarball.LayerFromFile(e2etest.NewestBaseTree(t), tarball.WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		t.Fatal(err)
	}
	body := "from the application layer\n"
	app := ocitest.Layer(t, ocitest.Dir("srv", 0o755), ocitest.File("srv/index.html", body, 0o644), ocitest.Whiteout("etc/issue.net"))
	img := ocitest.Image(t, v1.Config{}, base, app)
	dir := ocitest.Layout(t, "v1", img)
	digest, _ := img.Digest()

	env.MustBanger("image", "import", "oci:"+dir+":v1", "--name", "app")
	var got api.Image
	env.JSON(&got, "image", "show", "app")
	if got.Digest != digest.String() || got.Source != "oci:"+dir+":v1" {
		t.Errorf("image show: source %q digest %q; want oci:%s:v1 %s", got.Source, got.Digest, dir, digest)
	}
	if _, errOut, code := env.Banger("image", "import", "oci:"+dir+":v1", "--name", "app"); code != 0 || !strings.Contains(errOut, "already "+digest.String()) {
		t.Errorf("re-import of the same digest: exit %d\n%s", code, errOut)
	}

	env.MustBanger("vm", "create", "--name", "web", "--image", "app")
	if out := env.MustBanger("vm", "exec", "web", "--", "cat", "/srv/index.html"); out != body {
		t.Errorf("/srv/index.html in the guest: %q", out)
	}
	if _, _, code := env.Banger("vm", "exec", "web", "--", "test", "-e", "/etc/issue.net"); code != 1 {
		t.Errorf("/etc/issue.net: test -e exited %d, want 1 (whited out)", code)
	}
	if out, _, code := env.SSH("web", "cat", "/etc/issue"); code != 0 || !strings.Contains(out, "Debian") {
		t.Errorf("ssh into the imported image: exit %d, %q", code, out)
	}
}

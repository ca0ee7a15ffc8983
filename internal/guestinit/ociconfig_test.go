package guestinit

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "oci-config.json")
	os.WriteFile(p, []byte(`{"Entrypoint":["/docker-entrypoint.sh"],"Cmd":["nginx","-g","daemon off;"],"Env":["PATH=/opt/bin:/bin","LANG=C"],"WorkingDir":"/srv","User":"www"}`), 0o644)
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Argv(); !reflect.DeepEqual(got, []string{"/docker-entrypoint.sh", "nginx", "-g", "daemon off;"}) {
		t.Errorf("argv %q", got)
	}
	if got := c.Environ("/home/www"); !reflect.DeepEqual(got, []string{"PATH=/opt/bin:/bin", "LANG=C", "HOME=/home/www"}) {
		t.Errorf("environ %q (the image's PATH kept, HOME added)", got)
	}
	if c.Dir() != "/srv" {
		t.Errorf("dir %q", c.Dir())
	}
	empty := Config{}
	if len(empty.Argv()) != 0 || empty.Dir() != "/" || !strings.HasPrefix(empty.Environ("/root")[0], "PATH=/usr/local/sbin:") {
		t.Errorf("defaults: %q %q %q", empty.Argv(), empty.Dir(), empty.Environ("/root"))
	}
	os.WriteFile(p, []byte(`{"Cmd": "not a list"}`), 0o644)
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("a malformed config: %v", err)
	}
}

func TestResolveUser(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nwww:x:33:34:www:/var/www:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nstaff:x:50:\n"), 0o644)
	for _, tc := range []struct {
		user string
		want Identity
	}{
		{"", Identity{0, 0, "/root"}},
		{"www", Identity{33, 34, "/var/www"}},
		{"33", Identity{33, 34, "/var/www"}},
		{"1000", Identity{1000, 1000, "/"}},
		{"www:staff", Identity{33, 50, "/var/www"}},
		{"www:7", Identity{33, 7, "/var/www"}},
	} {
		got, err := ResolveUser(root, tc.user)
		if err != nil || got != tc.want {
			t.Errorf("ResolveUser(%q) = %+v, %v; want %+v", tc.user, got, err, tc.want)
		}
	}
	for _, u := range []string{"nobody", "www:nogroup"} {
		if _, err := ResolveUser(root, u); err == nil || !strings.Contains(err.Error(), "no ") {
			t.Errorf("ResolveUser(%q): %v; want not found", u, err)
		}
	}
}

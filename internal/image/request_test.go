package image

import (
	"errors"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/paths"
)

func validRequest() BuildRequest {
	return BuildRequest{Name: "dev", PublicKeyPath: "/b/id.pub", AgentPath: "/b/banger-agent"}.
		withDefaults(paths.UnderRoot("/r"), func() string { return "" })
}

func TestDefaults(t *testing.T) {
	r := validRequest()
	if r.Distro != "debian" || r.Suite != "bookworm" || r.Mirror != DefaultMirror || r.SizeBytes != DefaultSizeBytes {
		t.Errorf("defaults: %+v", r)
	}
	if r.OutputPath != "/r/data/images/dev.ext4" || r.WorkDir != "/r/cache/build" {
		t.Errorf("paths: out %s work %s", r.OutputPath, r.WorkDir)
	}
	r = BuildRequest{Name: "dev"}.withDefaults(paths.UnderRoot("/r"), func() string { return "http://mirror.example/debian" })
	if r.Mirror != "http://mirror.example/debian" {
		t.Errorf("host mirror not used: %s", r.Mirror)
	}
	if err := validRequest().Validate(); err != nil {
		t.Fatalf("valid request rejected: %v", err)
	}
}

func TestValidateRejects(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*BuildRequest)
		want   string
	}{
		{"empty name", func(r *BuildRequest) { r.Name = "" }, "image name"},
		{"upper name", func(r *BuildRequest) { r.Name = "Dev" }, "image name"},
		{"slash name", func(r *BuildRequest) { r.Name = "../x" }, "image name"},
		// vm create refuses it, so a build must too (one rule: validate.ImageName).
		{"underscore name", func(r *BuildRequest) { r.Name = "deb_12" }, "image name"},
		{"distro", func(r *BuildRequest) { r.Distro = "arch" }, "distro"},
		{"suite", func(r *BuildRequest) { r.Suite = "--foreign" }, "suite"},
		{"mirror scheme", func(r *BuildRequest) { r.Mirror = "ftp://x/debian" }, "mirror"},
		{"mirror space", func(r *BuildRequest) { r.Mirror = "http://x/debian --arch=arm64" }, "mirror"},
		{"small", func(r *BuildRequest) { r.SizeBytes = 100 << 20 }, "minimum"},
		{"unaligned", func(r *BuildRequest) { r.SizeBytes = 1<<30 + 1 }, "multiple of 4096"},
		{"pkg option", func(r *BuildRequest) { r.ExtraPackages = []string{"--no-check-gpg"} }, "package name"},
		{"pkg comma", func(r *BuildRequest) { r.ExtraPackages = []string{"a,b"} }, "package name"},
		{"pkg upper", func(r *BuildRequest) { r.ExtraPackages = []string{"Vim"} }, "package name"},
		{"pkg one char", func(r *BuildRequest) { r.ExtraPackages = []string{"a"} }, "package name"},
		{"no key", func(r *BuildRequest) { r.PublicKeyPath = "" }, "public key"},
		{"relative agent", func(r *BuildRequest) { r.AgentPath = "agent" }, "absolute"},
		{"modules no version", func(r *BuildRequest) { r.ModulesDir = "/b/modules" }, "kernel version"},
		{"modules bad version", func(r *BuildRequest) { r.ModulesDir = "/b/modules"; r.KernelVersion = "6.1 x" }, "kernel version"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := validRequest()
			c.mutate(&r)
			err := r.Validate()
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != api.CodeInvalidArgument {
				t.Fatalf("want invalid_argument, got %v", err)
			}
			if !strings.Contains(ae.Message, c.want) || ae.Hint == "" {
				t.Errorf("error %q (hint %q) should mention %q and carry a hint", ae.Message, ae.Hint, c.want)
			}
		})
	}
	r := validRequest()
	r.ExtraPackages = []string{"build-essential", "g++", "libc6.1-dev", "python3"}
	r.ModulesDir, r.KernelVersion = "/b/m", "6.1.0-28-amd64"
	if err := r.Validate(); err != nil {
		t.Errorf("valid packages/modules rejected: %v", err)
	}
}

func TestCacheKey(t *testing.T) {
	pk := []string{"bash", "git"}
	base := CacheKey("mmdebstrap", "bookworm", DefaultMirror, pk, []byte("script"))
	if len(base) != 64 || base != CacheKey("mmdebstrap", "bookworm", DefaultMirror, []string{"bash", "git"}, []byte("script")) {
		t.Fatalf("key not stable: %s", base)
	}
	for name, k := range map[string]string{
		"suite":    CacheKey("mmdebstrap", "trixie", DefaultMirror, pk, []byte("script")),
		"mirror":   CacheKey("mmdebstrap", "bookworm", "http://other/debian", pk, []byte("script")),
		"packages": CacheKey("mmdebstrap", "bookworm", DefaultMirror, []string{"bash", "git", "jq"}, []byte("script")),
		"split":    CacheKey("mmdebstrap", "bookworm", DefaultMirror, []string{"bash,git"}, []byte("script")),
		"script":   CacheKey("mmdebstrap", "bookworm", DefaultMirror, pk, []byte("script2")),
		"tool":     CacheKey("debootstrap", "bookworm", DefaultMirror, pk, []byte("script")),
	} {
		if k == base && name != "split" {
			t.Errorf("changing %s kept the key", name)
		}
	}
}

func TestBaselineMapping(t *testing.T) {
	base, err := Baseline()
	if err != nil {
		t.Fatal(err)
	}
	if len(base) < 20 {
		t.Fatalf("baseline has only %d entries", len(base))
	}
	seen := map[string]bool{}
	for _, e := range base {
		if e.Debian == "" || e.Void == "" || e.Command == "" {
			t.Errorf("entry %q lacks a mapping: %+v", e.Name, e)
		}
		if !debPkgRe.MatchString(e.Debian) {
			t.Errorf("entry %q: %q is not a Debian package name", e.Name, e.Debian)
		}
		if seen[e.Name] {
			t.Errorf("entry %q listed twice", e.Name)
		}
		seen[e.Name] = true
	}
	for _, want := range []string{"git", "curl", "openssh-server", "sudo", "jq", "ripgrep", "tmux", "ping", "dig"} {
		if !seen[want] {
			t.Errorf("baseline lacks %s", want)
		}
	}
	for _, lang := range []string{"golang", "python3", "nodejs", "rustc"} {
		if seen[lang] {
			t.Errorf("baseline carries a language toolchain: %s", lang)
		}
	}
	if _, err := parseBaseline([]byte("git\tgit\t\tgit\n")); err == nil {
		t.Error("an entry without a Void name was accepted")
	}
	if _, err := parseBaseline([]byte("git\tgit\tgit\n")); err == nil {
		t.Error("an entry with 3 fields was accepted")
	}
}

func TestDebianPackages(t *testing.T) {
	pk, err := DebianPackages([]string{"zsh", "git"})
	if err != nil {
		t.Fatal(err)
	}
	joined := "," + strings.Join(pk, ",") + ","
	for _, want := range []string{"systemd-sysv", "openssh-server", "iputils-ping", "bind9-dnsutils", "xz-utils", "kmod", "zsh"} {
		if !strings.Contains(joined, ","+want+",") {
			t.Errorf("package list lacks %s: %s", want, joined)
		}
	}
	if strings.Count(joined, ",git,") != 1 || strings.Count(joined, ",openssh-server,") != 1 {
		t.Errorf("duplicates in %s", joined)
	}
	for i := 1; i < len(pk); i++ {
		if pk[i-1] >= pk[i] {
			t.Errorf("not sorted/unique at %d: %s %s", i, pk[i-1], pk[i])
		}
	}
}

func TestMkfsArgv(t *testing.T) {
	got := strings.Join(MkfsArgv("/w/rootfs", "/d/img.ext4", 4<<30), " ")
	want := "mkfs.ext4 -F -q -L banger-rootfs -m 1 -d /w/rootfs /d/img.ext4 4194304k"
	if got != want {
		t.Errorf("mkfs argv\n got %s\nwant %s", got, want)
	}
	got = strings.Join(sandboxArgv("/w/s.sh"), " ")
	want = "unshare --mount --propagation private --pid --fork --kill-child -- bash /w/s.sh"
	if got != want {
		t.Errorf("sandbox argv\n got %s\nwant %s", got, want)
	}
}

func TestHostMirrorParsing(t *testing.T) {
	deb822 := `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
`
	oneLine := `# comment
deb [arch=amd64 signed-by=/k.gpg] https://packages.example.com/apt stable main
deb http://security.debian.org/debian-security bookworm-security main
deb http://mirror.local/debian/ bookworm main
`
	cases := []struct {
		order []string
		files map[string]string
		want  string
	}{
		{[]string{"a.sources"}, map[string]string{"a.sources": deb822}, "http://deb.debian.org/debian"},
		{[]string{"s.list"}, map[string]string{"s.list": oneLine}, "http://mirror.local/debian"},
		{[]string{"s.list", "a.sources"}, map[string]string{"s.list": "", "a.sources": deb822}, "http://deb.debian.org/debian"},
		{[]string{"x.sources"}, map[string]string{"x.sources": "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n"}, ""},
		{[]string{"d.sources"}, map[string]string{"d.sources": "Enabled: no\nTypes: deb\nURIs: http://x/debian\nSuites: bookworm\n"}, ""},
	}
	for i, c := range cases {
		if got := debianMirrorFrom(c.order, c.files); got != c.want {
			t.Errorf("case %d: got %q, want %q", i, got, c.want)
		}
	}
}

func TestLineWriter(t *testing.T) {
	var got []string
	lw := &lineWriter{emit: func(s string) { got = append(got, s) }}
	out, errw := lw.stream(), lw.stream()
	out.Write([]byte("one\ntw"))
	errw.Write([]byte("err1\r\n\n"))
	out.Write([]byte("o\nthree"))
	lw.flush()
	if strings.Join(got, "|") != "one|err1|two|three" {
		t.Errorf("lines: %q", got)
	}
}

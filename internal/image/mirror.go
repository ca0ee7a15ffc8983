package image

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// HostDebianMirror returns the Debian mirror the host's apt is configured
// with (so builds use the mirror known to be reachable here), or "" when the
// host names none.
func HostDebianMirror() string {
	files := map[string]string{}
	names := []string{"/etc/apt/sources.list"}
	for _, pat := range []string{"/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources"} {
		m, _ := filepath.Glob(pat)
		sort.Strings(m)
		names = append(names, m...)
	}
	var order []string
	for _, n := range names {
		if b, err := os.ReadFile(n); err == nil {
			files[n] = string(b)
			order = append(order, n)
		}
	}
	return debianMirrorFrom(order, files)
}

// debianMirrorFrom picks the first URI that serves the main Debian archive
// (not security, not a third-party repository) from apt source files, in
// one-line (.list) or deb822 (.sources) format.
func debianMirrorFrom(order []string, files map[string]string) string {
	for _, name := range order {
		content := files[name]
		var uris []string
		if strings.HasSuffix(name, ".sources") {
			uris = deb822MainURIs(content)
		} else {
			uris = oneLineMainURIs(content)
		}
		for _, u := range uris {
			if isDebianArchive(u) {
				return strings.TrimSuffix(u, "/")
			}
		}
	}
	return ""
}

func isDebianArchive(u string) bool {
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return false
	}
	u = strings.TrimSuffix(u, "/")
	return strings.HasSuffix(u, "/debian") && !strings.Contains(u, "security")
}

func oneLineMainURIs(content string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(content))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		i := 1
		if strings.HasPrefix(f[i], "[") { // options: [arch=amd64 signed-by=...]
			for i < len(f) && !strings.HasSuffix(f[i], "]") {
				i++
			}
			i++
		}
		if i+1 < len(f) && !strings.Contains(f[i+1], "security") {
			out = append(out, f[i])
		}
	}
	return out
}

func deb822MainURIs(content string) []string {
	var out []string
	for _, stanza := range strings.Split(content, "\n\n") {
		fields := map[string]string{}
		for _, line := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if ok {
				fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		if !strings.Contains(" "+fields["types"]+" ", " deb ") || strings.EqualFold(fields["enabled"], "no") ||
			strings.Contains(fields["suites"], "security") {
			continue
		}
		out = append(out, strings.Fields(fields["uris"])...)
	}
	return out
}

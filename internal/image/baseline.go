package image

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/banger-dev/banger/images"
)

// BaselineEntry is one line of images/baseline.txt.
type BaselineEntry struct {
	Name    string
	Debian  string
	Void    string
	Command string // proves the entry is installed (looked up in /usr/bin, /usr/sbin)
}

// Baseline returns the dev package baseline shared by every distro.
func Baseline() ([]BaselineEntry, error) {
	data, err := fs.ReadFile(images.FS, "baseline.txt")
	if err != nil {
		return nil, err
	}
	return parseBaseline(data)
}

func parseBaseline(data []byte) ([]BaselineEntry, error) {
	var out []BaselineEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			return nil, fmt.Errorf("baseline.txt line %d: want 4 tab-separated fields (name, debian, void, command), got %d", n, len(f))
		}
		for i := range f {
			if f[i] = strings.TrimSpace(f[i]); f[i] == "" {
				return nil, fmt.Errorf("baseline.txt line %d: field %d is empty: every entry needs its Debian and Void names and a command", n, i+1)
			}
		}
		out = append(out, BaselineEntry{Name: f[0], Debian: f[1], Void: f[2], Command: f[3]})
	}
	return out, sc.Err()
}

// listFile reads a one-item-a-line data file from images/ (comments with #).
func listFile(name string) ([]string, error) {
	data, err := fs.ReadFile(images.FS, name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out, nil
}

// DebianPackages is the sorted, de-duplicated --include list for a Debian
// build: what the image needs to boot, the baseline, and extra.
func DebianPackages(extra []string) ([]string, error) {
	req, err := listFile("distro/debian.packages")
	if err != nil {
		return nil, err
	}
	base, err := Baseline()
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, p := range req {
		set[p] = true
	}
	for _, e := range base {
		set[e.Debian] = true
	}
	for _, p := range extra {
		set[p] = true
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// GuestService is one line of images/services.tsv.
type GuestService struct {
	Name, Kind, Command, Description string
}

// Services returns the guest services every image installs and enables.
func Services() ([]GuestService, error) { return parseServices("services.tsv") }

func parseServices(name string) ([]GuestService, error) {
	lines, err := listFile(name)
	if err != nil {
		return nil, err
	}
	var out []GuestService
	for _, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) != 6 {
			return nil, fmt.Errorf("%s: %q: want 6 tab-separated fields", name, l)
		}
		out = append(out, GuestService{Name: f[0], Kind: f[1], Command: f[2], Description: f[3]})
	}
	return out, nil
}

// VoidPackages is the sorted, de-duplicated package list for a Void build:
// what the image needs to boot (distro/void.packages), the baseline's Void
// names, and extra. Each required or baseline entry is "NAME=COMMAND" (a
// tarball build installs it only when COMMAND is missing); extra packages
// are bare names, always installed.
func VoidPackages(extra []string) ([]string, error) {
	lines, err := listFile("distro/void.packages")
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 2 {
			return nil, fmt.Errorf("distro/void.packages: %q: want a package and its command", l)
		}
		set[f[0]+"="+f[1]] = true
	}
	base, err := Baseline()
	if err != nil {
		return nil, err
	}
	for _, e := range base {
		set[e.Void+"="+e.Command] = true
	}
	for _, p := range extra {
		set[p] = true
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// DistroServices returns the services only distro needs, on top of
// Services (distro/<distro>.services; none when the file is absent).
func DistroServices(distro string) ([]GuestService, error) {
	if _, err := fs.Stat(images.FS, "distro/"+distro+".services"); err != nil {
		return nil, nil
	}
	return parseServices("distro/" + distro + ".services")
}

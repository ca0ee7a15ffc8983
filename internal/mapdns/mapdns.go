// Package mapdns feeds an external mapdns server (github.com/bahlo/mapdns,
// config keys mapdns_bin and mapdns_data_file): Write puts banger's
// `<name>.<domain>.` A records into the server's JSON data file, and a
// Supervisor runs the server so that it serves the current file.
//
// What mapdns (v0.2.0) is: it takes no arguments, reads mapdns.json from its
// working directory once, at start, serves UDP on :53 on all addresses, and
// has no reload signal (SIGHUP ends it). So the data file must be named
// mapdns.json, the server runs in its directory, and a changed file takes a
// restart.
//
// Ownership rule: the data file may hold other people's entries. Beside it,
// banger keeps `<data file>.banger-managed`, a JSON list of the names it
// wrote last time. Write removes exactly those names, then adds the current
// entries; every other member of the file is kept byte for byte, where it
// was (removing what banger added gives back the file it found). A name banger
// now writes replaces a foreign entry of the same name (the VM wins) and
// becomes banger's.
package mapdns

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// ManagedSuffix names the file listing the names banger manages.
const ManagedSuffix = ".banger-managed"

// Port is where mapdns serves (UDP, every address of the host).
const Port = 53

// FileName is the data file's name: mapdns reads ./mapdns.json and no other.
const FileName = "mapdns.json"

// CheckDataFile says what is wrong with a mapdns_data_file for mapdns: it
// must be an absolute path named mapdns.json.
func CheckDataFile(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("mapdns_data_file %q must be an absolute path", path)
	}
	if filepath.Base(path) != FileName {
		return fmt.Errorf("mapdns_data_file %q: mapdns reads %s in its working directory and no other file, so the data file must be named %s (e.g. %s)",
			path, FileName, FileName, filepath.Join(filepath.Dir(path), FileName))
	}
	return nil
}

type record struct {
	A string `json:"A"`
}

// Write sets the file's banger entries to entries (VM name -> address; names
// without the domain) in domain, keeping every entry banger does not manage.
// Files are replaced atomically (temp file + rename, mode 0644).
func Write(path, domain string, entries map[string]netip.Addr) error {
	_, err := Update(path, domain, entries)
	return err
}

// Update is Write that leaves the files alone when they already say the
// same, and reports whether it changed them (a running mapdns serves the
// new file only after a restart).
func Update(path, domain string, entries map[string]netip.Addr) (changed bool, err error) {
	if !filepath.IsAbs(path) {
		return false, fmt.Errorf("mapdns data file %q must be an absolute path (mapdns_data_file in config.toml)", path)
	}
	domain = strings.ToLower(strings.Trim(domain, "."))
	if domain == "" {
		return false, errors.New("mapdns: empty domain")
	}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("read mapdns data file: %w", err)
	}
	file, err := parseObject(data)
	if err != nil {
		return false, fmt.Errorf("mapdns data file %s is not a JSON object (%v): fix or remove it", path, err)
	}
	prev, err := readManaged(path)
	if err != nil {
		return false, err
	}
	next := make([]string, 0, len(entries))
	for name, addr := range entries {
		if !addr.Is4() {
			return false, fmt.Errorf("mapdns: %s has address %s; only IPv4 is written", name, addr)
		}
		if name == "" || strings.ContainsAny(name, ". \t\n") {
			return false, fmt.Errorf("mapdns: VM name %q cannot be a DNS label", name)
		}
		next = append(next, strings.ToLower(name)+"."+domain+".")
	}
	sort.Strings(next)
	// Our names of last time, and names we take over (the VM wins).
	drop := map[string]bool{}
	for _, k := range append(slices.Clone(prev), next...) {
		drop[k] = true
	}
	file.drop(drop)
	names := make([]string, 0, len(entries))
	for name := range entries {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := file.add(strings.ToLower(name)+"."+domain+".", record{A: entries[name].String()}); err != nil {
			return false, err
		}
	}
	out := file.render()
	if !json.Valid(out) {
		return false, fmt.Errorf("mapdns: edited %s is not valid JSON (a bug): left unchanged", path)
	}
	if bytes.Equal(out, data) && slices.Equal(prev, next) {
		return false, nil
	}
	// Record the union first: if we crash between the two writes, the next
	// Update still knows every name we may have put in the data file.
	if err := writeManaged(path, union(prev, next)); err != nil {
		return false, err
	}
	if err := writeAtomic(path, out); err != nil {
		return false, err
	}
	return true, writeManaged(path, next)
}

func readManaged(path string) ([]string, error) {
	data, err := os.ReadFile(path + ManagedSuffix)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path+ManagedSuffix, err)
	}
	var names []string
	if err := json.Unmarshal(data, &names); err != nil {
		return nil, fmt.Errorf("%s is corrupt (%v): remove it and the banger entries from %s", path+ManagedSuffix, err, path)
	}
	return names, nil
}

func writeManaged(path string, names []string) error {
	if names == nil {
		names = []string{}
	}
	data, _ := json.Marshal(names)
	return writeAtomic(path+ManagedSuffix, append(data, '\n'))
}

func union(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string(nil), a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// findProcesses returns the pids under procRoot whose argv[0] is bin (or
// whose executable resolves to bin).
func findProcesses(procRoot, bin string) ([]int, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	realBin, _ := filepath.EvalSymlinks(bin)
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		argv0, _, _ := bytes.Cut(cmdline, []byte{0})
		if string(argv0) == bin || (realBin != "" && string(argv0) == realBin) {
			pids = append(pids, pid)
			continue
		}
		if exe, err := os.Readlink(filepath.Join(procRoot, e.Name(), "exe")); err == nil && realBin != "" && exe == realBin {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids, nil
}

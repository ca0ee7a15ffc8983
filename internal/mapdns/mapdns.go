// Package mapdns feeds an external mapdns server (config keys mapdns_bin and
// mapdns_data_file): it writes banger's `<name>.<domain>.` A records into the
// server's JSON data file and makes the server reload it.
//
// Ownership rule: the data file may hold other people's entries. Beside it,
// banger keeps `<data file>.banger-managed`, a JSON list of the names it
// wrote last time. Write removes exactly those names, then adds the current
// entries; every other key in the file is kept byte for byte. A name banger
// now writes replaces a foreign entry of the same name (the VM wins) and
// becomes banger's.
package mapdns

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/banger-dev/banger/internal/sysexec"
)

// ManagedSuffix names the file listing the names banger manages.
const ManagedSuffix = ".banger-managed"

type record struct {
	A string `json:"A"`
}

// Write sets the file's banger entries to entries (VM name -> address; names
// without the domain) in domain, keeping every entry banger does not manage.
// Files are replaced atomically (temp file + rename, mode 0644).
func Write(path, domain string, entries map[string]netip.Addr) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("mapdns data file %q must be an absolute path (mapdns_data_file in config.toml)", path)
	}
	domain = strings.ToLower(strings.Trim(domain, "."))
	if domain == "" {
		return errors.New("mapdns: empty domain")
	}
	file := map[string]json.RawMessage{}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if len(bytes.TrimSpace(data)) > 0 {
			if err := json.Unmarshal(data, &file); err != nil {
				return fmt.Errorf("mapdns data file %s is not a JSON object (%v): fix or remove it", path, err)
			}
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return fmt.Errorf("read mapdns data file: %w", err)
	}
	prev, err := readManaged(path)
	if err != nil {
		return err
	}
	next := make([]string, 0, len(entries))
	for name, addr := range entries {
		if !addr.Is4() {
			return fmt.Errorf("mapdns: %s has address %s; only IPv4 is written", name, addr)
		}
		if name == "" || strings.ContainsAny(name, ". \t\n") {
			return fmt.Errorf("mapdns: VM name %q cannot be a DNS label", name)
		}
		next = append(next, strings.ToLower(name)+"."+domain+".")
	}
	sort.Strings(next)
	// Record the union first: if we crash between the two writes, the next
	// Write still knows every name we may have put in the data file.
	if err := writeManaged(path, union(prev, next)); err != nil {
		return err
	}
	for _, k := range prev {
		delete(file, k)
	}
	for name, addr := range entries {
		raw, _ := json.Marshal(record{A: addr.String()})
		file[strings.ToLower(name)+"."+domain+"."] = raw
	}
	out, err := json.MarshalIndent(file, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(path, append(out, '\n')); err != nil {
		return err
	}
	return writeManaged(path, next)
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

// Reload makes the mapdns server at bin pick up dataFile: it sends SIGHUP to
// every running process whose command line starts with bin, or, when none
// runs, starts `bin dataFile` detached (new session, output to
// dataFile+".log").
func Reload(ctx context.Context, bin, dataFile string) error {
	if !filepath.IsAbs(bin) || !filepath.IsAbs(dataFile) {
		return fmt.Errorf("mapdns_bin (%q) and mapdns_data_file (%q) must be absolute paths", bin, dataFile)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	pids, err := findProcesses("/proc", bin)
	if err != nil {
		return err
	}
	signalled := 0
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGHUP); err == nil {
			signalled++
		}
	}
	if signalled > 0 {
		return nil
	}
	logf, err := os.OpenFile(dataFile+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open mapdns log: %w", err)
	}
	defer logf.Close()
	cmd, err := sysexec.Start(sysexec.Cmd{Argv: []string{bin, dataFile}, Stdout: logf, Stderr: logf}, true)
	if err != nil {
		return fmt.Errorf("start mapdns (mapdns_bin = %q): %w", bin, err)
	}
	go func() { _ = cmd.Wait() }() // reap it if it exits while we run
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

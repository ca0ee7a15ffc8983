package guestinit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ConfigPath is where `image import` records the image's OCI config for
// PID 1 to run.
const ConfigPath = "/etc/banger/oci-config.json"

// Config is the part of an OCI image config PID 1 uses.
type Config struct {
	Entrypoint []string `json:"Entrypoint,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	Env        []string `json:"Env,omitempty"`
	WorkingDir string   `json:"WorkingDir,omitempty"`
	User       string   `json:"User,omitempty"`
}

// LoadConfig reads a recorded config.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Argv is what the image runs: ENTRYPOINT followed by CMD, as a container
// runtime joins them. Empty when the image names nothing to run.
func (c Config) Argv() []string {
	return append(append([]string{}, c.Entrypoint...), c.Cmd...)
}

// Environ is the service's environment: the image's ENV, with PATH and
// HOME defaulted as a container runtime does when the image sets none.
func (c Config) Environ(home string) []string {
	env := append([]string{}, c.Env...)
	has := func(k string) bool {
		for _, e := range env {
			if strings.HasPrefix(e, k+"=") {
				return true
			}
		}
		return false
	}
	if !has("PATH") {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	if !has("HOME") {
		env = append(env, "HOME="+home)
	}
	return env
}

// Dir is the working directory (WORKDIR), / when the image sets none.
func (c Config) Dir() string {
	if c.WorkingDir == "" {
		return "/"
	}
	return c.WorkingDir
}

// Identity is who the service runs as.
type Identity struct {
	UID, GID uint32
	Home     string
}

// ResolveUser reads USER ("name", "uid", "name:group", "uid:gid") against
// the image's passwd and group files under root. Empty is root.
func ResolveUser(root, user string) (Identity, error) {
	id := Identity{Home: "/root"}
	if user == "" {
		return id, nil
	}
	u, g, hasGroup := strings.Cut(user, ":")
	uid, err := strconv.ParseUint(u, 10, 32)
	if err == nil {
		id.UID, id.GID, id.Home = uint32(uid), uint32(uid), "/"
		if f, ok := findEntry(filepath.Join(root, "etc/passwd"), 2, u); ok {
			gid, _ := strconv.ParseUint(f[3], 10, 32)
			id.GID, id.Home = uint32(gid), f[5]
		}
	} else {
		f, ok := findEntry(filepath.Join(root, "etc/passwd"), 0, u)
		if !ok {
			return Identity{}, fmt.Errorf("USER %q: no user %q in /etc/passwd", user, u)
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			return Identity{}, fmt.Errorf("USER %q: malformed /etc/passwd entry", user)
		}
		id.UID, id.GID, id.Home = uint32(uid), uint32(gid), f[5]
	}
	if hasGroup {
		if gid, err := strconv.ParseUint(g, 10, 32); err == nil {
			id.GID = uint32(gid)
		} else if f, ok := findEntry(filepath.Join(root, "etc/group"), 0, g); ok {
			gid, err := strconv.ParseUint(f[2], 10, 32)
			if err != nil {
				return Identity{}, fmt.Errorf("USER %q: malformed /etc/group entry", user)
			}
			id.GID = uint32(gid)
		} else {
			return Identity{}, fmt.Errorf("USER %q: no group %q in /etc/group", user, g)
		}
	}
	if id.Home == "" {
		id.Home = "/"
	}
	return id, nil
}

// findEntry finds the colon-separated line whose field col is val.
func findEntry(path string, col int, val string) ([]string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 7 || (len(fields) >= 3 && strings.HasSuffix(path, "group")) {
			if fields[col] == val {
				return fields, true
			}
		}
	}
	return nil, false
}

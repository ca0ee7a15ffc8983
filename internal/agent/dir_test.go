package agent

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/agentproto"
	"github.com/banger-dev/banger/internal/api"
)

// GET /v1/dir lists by name without following symlinks, numbers modes as
// chmod does, caps the entries at max and refuses what it cannot list.
func TestDirListsEntries(t *testing.T) {
	p := newProcTree(t, true)
	h := p.handler()
	dir := filepath.Join(p.workDir, "proj")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "b.txt"), []byte("12345"), 0o640)
	os.WriteFile(filepath.Join(dir, "run"), nil, 0o755)
	os.Chmod(filepath.Join(dir, "run"), 0o755|os.ModeSetuid)
	os.Symlink("/nowhere", filepath.Join(dir, "a-link"))
	if err := os.Chmod(filepath.Join(dir, "sub"), os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	list := func(path, max string) (int, agentproto.DirResult, api.Error) {
		rec := do(t, h, http.MethodGet, agentproto.DirPath+"?"+url.Values{"path": {path}, "max": {max}}.Encode(), "")
		if rec.Code != http.StatusOK {
			return rec.Code, agentproto.DirResult{}, decode[api.Error](t, rec)
		}
		return rec.Code, decode[agentproto.DirResult](t, rec), api.Error{}
	}
	// Relative to the work directory, as the other endpoints.
	code, res, _ := list("proj", "10")
	var got []string
	for _, e := range res.Entries {
		got = append(got, e.Name+" "+e.Type+" "+strconv.FormatUint(uint64(e.Mode), 8)+" "+strconv.FormatInt(e.Size, 10))
	}
	sub, _ := os.Lstat(filepath.Join(dir, "sub")) // a directory's size is the filesystem's
	want := []string{"a-link symlink 777 8", "b.txt file 640 5", "run file 4755 0", "sub dir 1777 " + strconv.FormatInt(sub.Size(), 10)}
	if code != http.StatusOK || res.Truncated || strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("listing: %d %v truncated=%v\nwant %v", code, got, res.Truncated, want)
	}
	if _, res, _ := list(dir, "2"); len(res.Entries) != 2 || !res.Truncated || res.Entries[1].Name != "b.txt" {
		t.Errorf("max 2: %+v", res)
	}
	if _, res, _ := list(filepath.Join(dir, "sub"), "5"); res.Entries == nil || len(res.Entries) != 0 || res.Truncated {
		t.Errorf("empty directory: %+v (want an empty list, not null)", res)
	}
	for _, tc := range []struct {
		path, max string
		code      int
		msg       string
	}{
		{filepath.Join(dir, "missing"), "5", http.StatusNotFound, "does not exist in the guest"},
		{filepath.Join(dir, "b.txt"), "5", http.StatusBadRequest, "is not a directory"},
		{dir, "0", http.StatusBadRequest, "must be between 1 and 10000"},
		{dir, "10001", http.StatusBadRequest, "must be between 1 and 10000"},
		{dir, "x", http.StatusBadRequest, "must be between 1 and 10000"},
		{"", "5", http.StatusBadRequest, "missing path"},
	} {
		code, _, ae := list(tc.path, tc.max)
		if code != tc.code || !strings.Contains(ae.Message, tc.msg) {
			t.Errorf("path %q max %q: %d %q; want %d %q", tc.path, tc.max, code, ae.Message, tc.code, tc.msg)
		}
	}
	if rec := do(t, h, http.MethodPost, agentproto.DirPath+"?path=/&max=1", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}

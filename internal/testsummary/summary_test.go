package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stream is a hand-written `go test -json` stream: a pass, a failure with
// its log, a skip whose message arrives after the outcome, a subtest skip, a
// build failure and a package that died in TestMain.
const stream = `{"Action":"start","Package":"m/a"}
{"Action":"run","Package":"m/a","Test":"TestPass"}
{"Action":"output","Package":"m/a","Test":"TestPass","Output":"=== RUN   TestPass\n"}
{"Action":"output","Package":"m/a","Test":"TestPass","Output":"--- PASS: TestPass (0.00s)\n"}
{"Action":"pass","Package":"m/a","Test":"TestPass"}
{"Action":"run","Package":"m/a","Test":"TestFail"}
{"Action":"output","Package":"m/a","Test":"TestFail","Output":"=== RUN   TestFail\n"}
{"Action":"output","Package":"m/a","Test":"TestFail","Output":"    a_test.go:5: the context\n"}
{"Action":"output","Package":"m/a","Test":"TestFail","Output":"--- FAIL: TestFail (0.00s)\n"}
{"Action":"fail","Package":"m/a","Test":"TestFail"}
{"Action":"run","Package":"m/a","Test":"TestSkip"}
{"Action":"output","Package":"m/a","Test":"TestSkip","Output":"=== RUN   TestSkip\n"}
{"Action":"output","Package":"m/a","Test":"TestSkip","Output":"--- SKIP: TestSkip (0.00s)\n"}
{"Action":"skip","Package":"m/a","Test":"TestSkip"}
{"Action":"output","Package":"m/a","Test":"TestSkip","Output":"    a_test.go:9: no widget here\n"}
{"Action":"run","Package":"m/a","Test":"TestSub/one"}
{"Action":"output","Package":"m/a","Test":"TestSub/one","Output":"    a_test.go:12: sub reason\n"}
{"Action":"skip","Package":"m/a","Test":"TestSub/one"}
{"Action":"pass","Package":"m/a","Test":"TestSub"}
{"Action":"output","Package":"m/a","Output":"FAIL\n"}
{"Action":"output","Package":"m/a","Output":"FAIL\tm/a\t0.01s\n"}
{"Action":"fail","Package":"m/a"}
{"ImportPath":"m/b [m/b.test]","Action":"build-output","Output":"b/x.go:2:12: undefined: y\n"}
{"ImportPath":"m/b [m/b.test]","Action":"build-fail"}
{"Action":"output","Package":"m/b","Output":"FAIL\tm/b [build failed]\n"}
{"Action":"fail","Package":"m/b","FailedBuild":"m/b [m/b.test]"}
{"Action":"output","Package":"m/c","Output":"TestMain could not start\n"}
{"Action":"fail","Package":"m/c"}
{"Action":"output","Package":"m/d","Output":"ok  \tm/d\t0.01s\n"}
{"Action":"pass","Package":"m/d"}
`

func TestCollectorCountsAndShowsFailures(t *testing.T) {
	var out bytes.Buffer
	c := NewCollector(&out, false)
	if err := c.Read(strings.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	s := c.Summary()
	// TestPass, TestSub; TestFail, m/b's build, m/c's TestMain; TestSkip, TestSub/one.
	if got := s.Line(); got != "2 passed, 3 failed, 2 skipped" {
		t.Errorf("summary %q", got)
	}
	text := out.String()
	for _, want := range []string{"a_test.go:5: the context", "--- FAIL: TestFail", "b/x.go:2:12: undefined: y",
		"TestMain could not start", "ok  \tm/d"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	for _, noise := range []string{"=== RUN   TestPass", "no widget here"} {
		if strings.Contains(text, noise) {
			t.Errorf("output of a run without -v shows %q:\n%s", noise, text)
		}
	}
	reasons := map[string]string{}
	for _, r := range s.Skips {
		reasons[r.Test] = r.Reason
	}
	if reasons["TestSkip"] != "a_test.go:9: no widget here" || reasons["TestSub/one"] != "a_test.go:12: sub reason" {
		t.Errorf("skip reasons %q", reasons)
	}
}

func TestAllowList(t *testing.T) {
	list, err := ParseAllowList(strings.NewReader(`
# comment
internal/vmm TestKVM   # no /dev/kvm on these machines
a TestSub/*  # subtests
`))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[Result]bool{
		{Package: "github.com/x/internal/vmm", Test: "TestKVM"}:    true,
		{Package: "github.com/x/internal/vmm", Test: "TestKVM2"}:   false,
		{Package: "github.com/x/notinternal/vmm", Test: "TestKVM"}: false,
		{Package: "m/a", Test: "TestSub/one"}:                      true,
		{Package: "m/a", Test: "TestSub"}:                          false,
		{Package: "m/ba", Test: "TestSub/one"}:                     false,
	}
	for r, want := range cases {
		if got := Allowed(list, r); got != want {
			t.Errorf("Allowed(%s) = %v, want %v", r, got, want)
		}
	}
	for _, bad := range []string{"internal/vmm TestKVM", "internal/vmm # why", "a b c # why", "a [ # why"} {
		if _, err := ParseAllowList(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseAllowList(%q) accepted it", bad)
		}
	}
}

func TestRunExitCodes(t *testing.T) {
	allow := filepath.Join(t.TempDir(), "allow")
	if err := os.WriteFile(allow, []byte("m/a TestSkip # fine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	passing := `{"Action":"skip","Package":"m/a","Test":"TestSkip"}
{"Action":"skip","Package":"m/a","Test":"TestOther"}
{"Action":"pass","Package":"m/a"}
`
	var out, errOut bytes.Buffer
	if code := run([]string{"-tier", "unit", "-allow", allow}, strings.NewReader(passing), &out, &errOut, false); code != 0 {
		t.Errorf("outside CI an unexpected skip failed the run (%d):\n%s", code, out.String())
	}
	if !strings.HasSuffix(out.String(), "\nunit: 0 passed, 0 failed, 2 skipped\n") || !strings.Contains(out.String(), "m/a TestOther") {
		t.Errorf("output:\n%s", out.String())
	}
	out.Reset()
	if code := run([]string{"-tier", "integration", "-allow", allow}, strings.NewReader(passing), &out, &errOut, true); code != 1 {
		t.Errorf("in CI an unexpected skip did not fail the run (%d):\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "m/a TestOther") || strings.Contains(out.String(), "m/a TestSkip") {
		t.Errorf("unexpected skips listed wrongly:\n%s", out.String())
	}
	out.Reset()
	if code := run(nil, strings.NewReader(stream), &out, &errOut, true); code != 1 {
		t.Errorf("failures did not fail the run (%d)", code)
	}
	out.Reset()
	// A command that fails without any test failing (go test cannot even
	// start) still fails the run.
	if code := run([]string{"--", "false"}, nil, &out, &errOut, false); code != 1 {
		t.Errorf("a failing command did not fail the run (%d):\n%s", code, out.String())
	}
}

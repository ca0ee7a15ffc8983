// Command testsummary runs one test tier's `go test -json` and prints what a
// human needs from it (one line per package, the full output of every
// failure) and then the tier's summary line:
//
//	unit: 120 passed, 0 failed, 3 skipped
//
// It exits non-zero when a test failed, when go test itself failed (a build
// error, a timeout), and, in CI (CI=true) with -allow, when a test skipped
// that is not on the allow-list: a test CI is meant to run never hides
// behind a skip there.
//
//	go run ./internal/testsummary -tier integration -allow .ci/allowed-skips -- go test -json -p 1 ./...
//
// Without a command after --, it reads a `go test -json` stream on stdin.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/banger-dev/banger/internal/sysexec"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv("CI") == "true"))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer, ci bool) int {
	fs := flag.NewFlagSet("testsummary", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tier := fs.String("tier", "", "name printed before the summary line")
	allowFile := fs.String("allow", "", "allow-list of legitimate skips; with CI=true any other skip fails the run")
	verbose := fs.Bool("v", false, "also list every skipped test with its reason")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var allow []AllowEntry
	if *allowFile != "" {
		f, err := os.Open(*allowFile)
		if err != nil {
			fmt.Fprintf(stderr, "testsummary: %v\n", err)
			return 2
		}
		allow, err = ParseAllowList(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "testsummary: %s: %v\n", *allowFile, err)
			return 2
		}
	}

	c := NewCollector(stdout, *verbose)
	cmdErr := error(nil)
	if argv := fs.Args(); len(argv) > 0 {
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			_, err := sysexec.Exec{}.Run(context.Background(), sysexec.Cmd{
				Argv: argv, Stdout: pw, Stderr: stderr, NoCapture: true,
			})
			pw.Close()
			done <- err
		}()
		if err := c.Read(pr); err != nil {
			fmt.Fprintf(stderr, "testsummary: reading go test output: %v\n", err)
			io.Copy(io.Discard, pr)
			cmdErr = err
		}
		if err := <-done; err != nil {
			cmdErr = err
		}
	} else if err := c.Read(stdin); err != nil {
		fmt.Fprintf(stderr, "testsummary: %v\n", err)
		cmdErr = err
	}

	s := c.Summary()
	code := 0
	if s.Failed > 0 {
		fmt.Fprintln(stdout, "\nfailed:")
		for _, f := range s.Failures {
			fmt.Fprintf(stdout, "  %s\n", f)
		}
		code = 1
	}
	if cmdErr != nil {
		var se *sysexec.Error
		if errors.As(cmdErr, &se) && s.Failed > 0 {
			// go test exits 1 when tests failed: already said above.
		} else {
			fmt.Fprintf(stdout, "\n%v\n", cmdErr)
		}
		code = 1
	}
	if *allowFile != "" {
		if bad := Unexpected(allow, s.Skips); len(bad) > 0 {
			if ci {
				fmt.Fprintf(stdout, "\nskipped in CI but not on %s (CI installs what these need, so a skip hides a test):\n", *allowFile)
				code = 1
			} else {
				fmt.Fprintf(stdout, "\nskipped here; these would fail in CI (CI=true), which runs them (allow-list %s):\n", *allowFile)
			}
			for _, r := range bad {
				fmt.Fprintf(stdout, "  %s: %s\n", r, oneLine(r.Reason))
			}
		}
	}
	prefix := ""
	if *tier != "" {
		prefix = *tier + ": "
	}
	fmt.Fprintf(stdout, "%s%s\n", prefix, s.Line())
	return code
}

// oneLine keeps a reason to one readable line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

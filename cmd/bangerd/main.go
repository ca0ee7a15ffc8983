// Command bangerd is banger's per-user daemon. The banger CLI starts it on
// demand; run it by hand with --foreground to watch its log.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/banger-dev/banger/internal/daemon"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/privhelper"
	"github.com/banger-dev/banger/internal/version"
)

func main() {
	fs := flag.NewFlagSet("bangerd", flag.ExitOnError)
	foreground := fs.Bool("foreground", false, "also log to stderr (the daemon never forks; banger starts it detached)")
	showVersion := fs.Bool("version", false, "print version and build id")
	sudoers := fs.Bool("sudoers-line", false, "print the sudoers line that lets the current user run the installed privileged helper, and nothing more")
	fs.Parse(os.Args[1:])
	if *sudoers {
		line, err := privhelper.SudoersLineForCaller(context.Background(), privhelper.DefaultPath)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bangerd: %v\n", err)
			os.Exit(1)
		}
		fmt.Println(line)
		return
	}
	if *showVersion {
		fmt.Printf("bangerd %s (build %s)\n", version.Version, version.ID())
		return
	}
	var logOut io.Writer
	if *foreground {
		logOut = os.Stderr
	}
	if err := daemon.Run(context.Background(), daemon.Options{Layout: paths.Default(), LogOutput: logOut}); err != nil {
		fmt.Fprintf(os.Stderr, "bangerd: %v\n", err)
		os.Exit(1)
	}
}

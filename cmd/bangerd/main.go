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

// subcommands are extra modes of the bangerd binary, run instead of the
// daemon when os.Args[1] names one (e.g. the privileged helper:
// `bangerd helper tap-add ...`). Register them here.
var subcommands = map[string]func(args []string) int{
	daemon.HelperSubcommand: func(args []string) int { return privhelper.Main(args, os.Stdout, os.Stderr) },
}

func main() {
	if len(os.Args) > 1 {
		if sub, ok := subcommands[os.Args[1]]; ok {
			os.Exit(sub(os.Args[2:]))
		}
	}
	fs := flag.NewFlagSet("bangerd", flag.ExitOnError)
	foreground := fs.Bool("foreground", false, "also log to stderr (the daemon never forks; banger starts it detached)")
	showVersion := fs.Bool("version", false, "print version and build id")
	sudoers := fs.Bool("sudoers-line", false, "print the sudoers line that lets the current user run the privileged helper, and nothing more")
	fs.Parse(os.Args[1:])
	if *sudoers {
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintf(os.Stderr, "bangerd: %v\n", err)
			os.Exit(1)
		}
		fmt.Println(privhelper.SudoersLine(daemon.CurrentUser(), self))
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

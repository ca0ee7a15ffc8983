// Command banger is the banger CLI.
package main

import (
	"os"

	"github.com/banger-dev/banger/internal/cli"
)

func main() {
	// Extra top-level commands (e.g. `tui`) are passed to cli.Main here.
	os.Exit(cli.Main(cli.NewApp(), os.Args[1:]))
}

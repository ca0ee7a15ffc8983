// Command banger is the banger CLI.
package main

import (
	"os"

	"github.com/banger-dev/banger/internal/cli"
)

func main() {
	a := cli.NewApp()
	// Extra top-level commands (those built on packages beside the CLI's)
	// are passed to cli.Main here.
	os.Exit(cli.Main(a, os.Args[1:], newMCPCmd(a.Layout)))
}

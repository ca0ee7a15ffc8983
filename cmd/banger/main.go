// Command banger is the banger CLI.
package main

import (
	"os"

	"github.com/banger-dev/banger/internal/cli"
)

func main() {
	os.Exit(cli.Main(cli.NewApp(), os.Args[1:]))
}

// Command banger-helper is banger's privileged helper: the one program a
// user's bangerd may run as root (through sudo -n), installed root-owned at
// /usr/local/libexec/banger/banger-helper. It only dispatches the closed set
// of verbs in internal/privhelper; anything else is refused.
package main

import (
	"os"

	"github.com/banger-dev/banger/internal/privhelper"
)

func main() {
	os.Exit(privhelper.Main(os.Args[1:], os.Stdout, os.Stderr))
}

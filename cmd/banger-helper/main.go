// Command banger-helper is banger's privileged helper: the one program a
// user's bangerd may run as root (through sudo -n), installed root-owned at
// /usr/local/libexec/banger/banger-helper. It only dispatches the closed set
// of verbs in internal/privhelper; anything else is refused. The image-build
// verb's build itself is banger's image builder, wired in here.
package main

import (
	"os"

	"github.com/banger-dev/banger/internal/image"
	"github.com/banger-dev/banger/internal/privhelper"
)

func main() {
	os.Exit(privhelper.MainWith(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, privhelper.Hooks{ImageBuild: image.RunHelperJob}))
}

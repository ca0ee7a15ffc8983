// Package images carries banger's image build and guest scripts so the
// daemon binary can write them out and run them without a source checkout.
package images

import "embed"

// FS holds the scripts and their data files, with paths as in this directory
// (make-rootfs-debian.sh, customize.sh, baseline.txt, distro/, guest/, ...).
//
//go:embed *.sh *.txt *.tsv distro guest
var FS embed.FS

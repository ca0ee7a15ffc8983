package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/validate"
)

// resourceFlags are --vcpus, --memory and --disk with pointer semantics:
// a flag not given stays nil (the daemon uses its default or keeps the
// value); a given flag is validated here before any request is sent.
type resourceFlags struct {
	vcpus  int
	memory string
	disk   string
}

func (r *resourceFlags) add(cmd *cobra.Command) {
	cmd.Flags().IntVar(&r.vcpus, "vcpus", 0, "virtual CPUs (1..host CPUs, at most 32)")
	cmd.Flags().StringVar(&r.memory, "memory", "", "memory: 1G, 512M, or a bare number of MiB (at least 128)")
	cmd.Flags().StringVar(&r.disk, "disk", "", "work disk (/root) size: 8G, 20GiB, ... (at least 1G)")
}

func (r *resourceFlags) parse(cmd *cobra.Command) (vcpus *int, memMiB *int, disk *int64, err error) {
	if cmd.Flags().Changed("vcpus") {
		if r.vcpus < 1 || r.vcpus > validate.MaxVCPUs {
			return nil, nil, nil, usageErr(fmt.Sprintf("invalid --vcpus %d: must be between 1 and %d", r.vcpus, validate.MaxVCPUs), "")
		}
		v := r.vcpus
		vcpus = &v
	}
	if cmd.Flags().Changed("memory") {
		m, err := validate.ParseMemoryMiB(r.memory)
		if err != nil {
			return nil, nil, nil, usageErr("--memory: "+err.Error(), "")
		}
		if m < validate.MinMemoryMiB {
			return nil, nil, nil, usageErr(fmt.Sprintf("invalid --memory %q: must be at least %d MiB", r.memory, validate.MinMemoryMiB), "")
		}
		memMiB = &m
	}
	if cmd.Flags().Changed("disk") {
		d, err := validate.ParseSize(r.disk)
		if err != nil {
			return nil, nil, nil, usageErr("--disk: "+err.Error(), "")
		}
		if d < validate.MinDiskBytes {
			return nil, nil, nil, usageErr(fmt.Sprintf("invalid --disk %q: must be at least 1G", r.disk), "")
		}
		disk = &d
	}
	return vcpus, memMiB, disk, nil
}

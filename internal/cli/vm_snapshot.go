package cli

import (
	"bufio"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
)

func newVMSnapshotCmd(a *App) *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "Save, list and delete snapshots of a VM (memory and both disks)"}
	cmd.AddCommand(newVMSnapshotCreateCmd(a), newVMSnapshotListCmd(a), newVMSnapshotDeleteCmd(a))
	return cmd
}

func newVMSnapshotCreateCmd(a *App) *cobra.Command {
	var p api.SnapshotCreateParams
	var output string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Snapshot a VM: a running VM is paused while its memory and both disks are saved",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			p.VM = args[0]
			var snap api.Snapshot
			if err := a.callProgress(cmd.Context(), api.MethodSnapshotCreate, p, &snap, a.printProgress); err != nil {
				return err
			}
			return a.emit(output, snap, func() {
				kind := "disks only"
				if snap.HasMemory {
					kind = "memory and disks"
				}
				fmt.Fprintf(a.Stdout, "snapshot %s of VM %s saved (%s, %s)\n", snap.Name, snap.VM, kind, bytesStr(snap.SizeBytes))
			})
		},
	}
	cmd.Flags().StringVar(&p.Name, "name", "", "snapshot name (default: snap-<UTC time>)")
	cmd.Flags().BoolVar(&p.NoMemory, "no-memory", false, "save the disks only; a restore then boots from them")
	cmd.Flags().BoolVar(&p.Stop, "stop", false, "leave the VM stopped after the snapshot")
	outputFlag(cmd, &output)
	return cmd
}

func newVMSnapshotListCmd(a *App) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "list NAME",
		Aliases: []string{"ls"},
		Short:   "List a VM's snapshots",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var res api.SnapshotListResult
			if err := a.call(cmd.Context(), api.MethodSnapshotList, api.SnapshotListParams{VM: args[0]}, &res); err != nil {
				return err
			}
			if output == "json" {
				return a.printJSON(res.Snapshots)
			}
			if len(res.Snapshots) == 0 {
				a.status("VM " + args[0] + " has no snapshots: take one with `banger vm snapshot create " + args[0] + "`")
				return nil
			}
			t := newTable(a.Stdout, "NAME", "CREATED", "MEMORY", "SIZE")
			now := time.Now()
			for _, s := range res.Snapshots {
				mem := "no"
				if s.HasMemory {
					mem = "yes"
				}
				t.row(s.Name, age(now.Sub(s.CreatedAt))+" ago", mem, bytesStr(s.SizeBytes))
			}
			t.flush()
			return nil
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func newVMSnapshotDeleteCmd(a *App) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "delete NAME SNAPSHOT",
		Aliases: []string{"rm"},
		Short:   "Delete a snapshot and its files",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if err := a.call(cmd.Context(), api.MethodSnapshotDelete, api.SnapshotRef{VM: args[0], Name: args[1]}, nil); err != nil {
				return err
			}
			// Quiet on success, as rm is; JSON says what went.
			return a.emit(output, SnapshotDeletedResult{VM: args[0], Name: args[1], Deleted: true}, func() {})
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func newVMRestoreCmd(a *App) *cobra.Command {
	var p api.VMRestoreParams
	var yes bool
	var output string
	cmd := &cobra.Command{
		Use:   "restore NAME SNAPSHOT",
		Short: "Return a VM to a snapshot (its current state is saved as a safety snapshot first)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			p.VM, p.Snapshot = args[0], args[1]
			var vm api.VM
			if err := a.call(cmd.Context(), api.MethodVMGet, api.VMRef{Name: p.VM}, &vm); err != nil {
				return err
			}
			if vm.State == api.VMRunning && !yes {
				lost := "its current state is saved as a safety snapshot first"
				if p.NoSafety {
					lost = "its current state is lost (--no-safety)"
				}
				if !a.IsTTY(a.Stdin) {
					return usageErr("refusing to restore running VM "+p.VM+" without confirmation (stdin is not a terminal)",
						"pass --yes: banger vm restore "+p.VM+" "+p.Snapshot+" --yes")
				}
				fmt.Fprintf(a.Stderr, "VM %s is running: restore snapshot %s (%s)? [y/N] ", p.VM, p.Snapshot, lost)
				line, _ := bufio.NewReader(a.Stdin).ReadString('\n')
				if ans := strings.ToLower(strings.TrimSpace(line)); ans != "y" && ans != "yes" {
					return usageErr("not restored", "")
				}
			}
			var res api.VMRestoreResult
			if err := a.callProgress(cmd.Context(), api.MethodVMRestore, p, &res, a.printProgress); err != nil {
				return err
			}
			return a.emit(output, res, func() {
				if res.Safety != "" {
					a.status("the state before the restore is snapshot " + res.Safety)
				}
				fmt.Fprintf(a.Stdout, "restored VM %s to snapshot %s\n", res.VM.Name, p.Snapshot)
			})
		},
	}
	cmd.Flags().BoolVar(&p.NoSafety, "no-safety", false, "do not save the current state before restoring")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask before restoring a running VM")
	outputFlag(cmd, &output)
	return cmd
}

func newVMSuspendCmd(a *App) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "suspend NAME",
		Short: "Save a running VM's memory to disk and end its VMM (host RAM is freed)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var vm api.VM
			if err := a.callProgress(cmd.Context(), api.MethodVMSuspend, api.VMRef{Name: args[0]}, &vm, a.printProgress); err != nil {
				return err
			}
			return a.emit(output, vm, func() { fmt.Fprintf(a.Stdout, "suspended VM %s\n", vm.Name) })
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func newVMResumeCmd(a *App) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "resume NAME",
		Short: "Continue a suspended VM where it was",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var vm api.VM
			if err := a.callProgress(cmd.Context(), api.MethodVMResume, api.VMRef{Name: args[0]}, &vm, a.printProgress); err != nil {
				return err
			}
			return a.emit(output, vm, func() { fmt.Fprintf(a.Stdout, "resumed VM %s (%s)\n", vm.Name, vm.IP) })
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

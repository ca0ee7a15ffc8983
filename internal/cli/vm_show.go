package cli

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
)

func newVMShowCmd(a *App) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show one VM",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var vm api.VM
			if err := a.call(cmd.Context(), api.MethodVMGet, api.VMRef{Name: args[0]}, &vm); err != nil {
				return err
			}
			if output == "json" {
				return a.printJSON(vm)
			}
			// The VM record keeps which VMM runs it; why that VMM is the
			// daemon's current choice (KVM or not, firecracker found or
			// not), which holds for the VM when it uses that same VMM.
			vmmText := dash(vm.VMM)
			var info api.DaemonInfo
			if err := a.call(cmd.Context(), api.MethodDaemonInfo, nil, &info); err == nil && info.VMMReason != "" {
				switch vm.VMM {
				case info.VMM:
					vmmText = vm.VMM + " (" + strings.TrimPrefix(info.VMMReason, vm.VMM+": ") + ")"
				case "":
					vmmText = "- (next start: " + info.VMMReason + ")"
				}
			}
			t := newTable(a.Stdout, "FIELD", "VALUE")
			started := "-"
			if vm.StartedAt != nil {
				started = fmt.Sprintf("%s (up %s)", vm.StartedAt.Local().Format(time.DateTime), age(time.Since(*vm.StartedAt)))
			}
			for _, kv := range [][2]string{
				{"name", vm.Name}, {"id", vm.ID}, {"state", a.stateText(vm.State)}, {"image", vm.Image},
				{"vcpus", fmt.Sprint(vm.VCPUs)}, {"memory", bytesStr(int64(vm.MemoryMiB) << 20)},
				{"disk", fmt.Sprintf("%s (allocated %s)", bytesStr(vm.DiskBytes), bytesStr(vm.DiskAllocatedBytes))},
				{"ip", dash(vm.IP)}, {"mac", dash(vm.MAC)}, {"tap", dash(vm.Tap)}, {"vmm", vmmText},
				{"pid", dash(pidStr(vm.PID))}, {"agent channel", agentChannel(vm)},
				{"published", publishedText(vm.Publish)}, {"auto-forward", autoForwardText(vm.AutoForward)},
				{"forwarding", forwardingText(vm)},
				{"provisioning", provisionText(vm.Provision)},
				{"created", vm.CreatedAt.Local().Format(time.DateTime)}, {"started", started}, {"last error", dash(vm.LastError)},
			} {
				t.row(kv[0], kv[1])
			}
			t.flush()
			return nil
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func pidStr(pid int) string {
	if pid == 0 {
		return ""
	}
	return fmt.Sprint(pid)
}

// agentChannel says how the daemon reaches the guest agent: QEMU VMs use the
// virtio-serial port (their vsock path and CID are reserved but unused).
func agentChannel(vm api.VM) string {
	if vm.VMM == "qemu" {
		return "virtio-serial port banger.agent"
	}
	return fmt.Sprintf("vsock %s (cid %d)", dash(vm.VsockPath), vm.VsockCID)
}

// publishedText lists persistent forwards: "127.0.0.1:8080->80, ...".
func publishedText(fs []api.PortForward) string {
	var parts []string
	for _, f := range fs {
		parts = append(parts, fmt.Sprintf("%s->%d", net.JoinHostPort(f.HostAddr, fmt.Sprint(f.HostPort)), f.GuestPort))
	}
	return dash(strings.Join(parts, ", "))
}

// forwardingText is what bangerd forwards for the VM now, with problems.
func forwardingText(vm api.VM) string {
	var parts []string
	for _, f := range vm.Forwards {
		s := fmt.Sprintf("%s->%d", net.JoinHostPort(f.HostAddr, fmt.Sprint(f.HostPort)), f.GuestPort)
		if f.Auto {
			s += " (auto)"
		}
		if f.Error != "" {
			s += " (failed: " + f.Error + ")"
		}
		parts = append(parts, s)
	}
	return dash(strings.Join(parts, ", "))
}

func autoForwardText(v *bool) string {
	switch {
	case v == nil:
		return "as auto_forward in config.toml"
	case *v:
		return "on"
	}
	return "off"
}

// provisionText sums up a VM's provisioning record: how far its scripts
// got, and what must hold before it counts as running.
func provisionText(p *api.VMProvision) string {
	if p == nil {
		return "-"
	}
	s := fmt.Sprintf("%s (%d/%d scripts", p.State, p.ScriptsDone, len(p.Scripts))
	if p.Copies > 0 {
		s += fmt.Sprintf(", %d copies", p.Copies)
	}
	s += ")"
	if p.Ready != "" {
		s += "; ready when " + p.Ready
	}
	if p.LogPath != "" {
		s += "; output: banger vm logs --provision"
	}
	return s
}

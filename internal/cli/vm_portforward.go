package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/portfwd"
)

func newVMPortForwardCmd(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "port-forward NAME [HOST_ADDR:]HOST_PORT[:GUEST_PORT]...",
		Short: "Forward host ports to a VM's ports, until Ctrl-C",
		Long: "Forward TCP ports on this host to ports of the VM. A connection goes straight to the\n" +
			"VM's address when the guest port accepts there (the fast path), and through the guest\n" +
			"agent otherwise, which works without the VM's network and reaches services that listen\n" +
			"only on 127.0.0.1 in the guest. Each host port binds 127.0.0.1 unless an address is\n" +
			"given. It runs until Ctrl-C.",
		Example: "  banger vm port-forward dev 8080\n" +
			"  banger vm port-forward dev 8080:80 0.0.0.0:5433:5432",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			var fwds []api.PortForward
			for _, s := range args[1:] {
				f, err := portfwd.Parse(s)
				if err != nil {
					return err
				}
				fwds = append(fwds, f)
			}
			ctx := cmd.Context()
			// Fail before listening when the VM cannot be reached at all.
			var vm api.VM
			if err := a.call(ctx, api.MethodVMGet, api.VMRef{Name: name}, &vm); err != nil {
				return err
			}
			if vm.State != api.VMRunning {
				return api.NewError(api.CodeConflict, "VM "+name+" is "+string(vm.State)+", not running", "banger vm start "+name)
			}
			var lns []net.Listener
			defer func() {
				for _, ln := range lns {
					ln.Close()
				}
			}()
			for _, f := range fwds {
				ln, err := portfwd.Listen(f)
				if err != nil {
					return err
				}
				lns = append(lns, ln)
			}
			agent := a.agent(name)
			dial := portfwd.DirectFirst(vm.IP, func(ctx context.Context, port int) (io.ReadWriteCloser, error) {
				return agent.Connect(ctx, port)
			})
			var mu sync.Mutex
			logf := func(format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				fmt.Fprintf(a.Stderr, "banger: "+format+"\n", args...)
			}
			var wg sync.WaitGroup
			for i, f := range fwds {
				a.status(fmt.Sprintf("forwarding %s -> %s:%d", lns[i].Addr(), name, f.GuestPort))
				wg.Go(func() { portfwd.Serve(ctx, lns[i], f.GuestPort, dial, logf) })
			}
			wg.Wait()
			return nil
		},
	}
}

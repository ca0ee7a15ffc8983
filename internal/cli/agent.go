package cli

import (
	"context"
	"errors"
	"net"

	"github.com/banger-dev/banger/internal/agentclient"
	"github.com/banger-dev/banger/internal/api"
)

// Streamer opens stream methods (a *client.Client does).
type Streamer interface {
	Stream(ctx context.Context, method string, params any) (net.Conn, error)
}

// agent returns a client for a VM's guest agent whose connections are
// streams through bangerd (vm.agent_connect): exec, cp and port forwarding
// speak the agent protocol over them.
func (a *App) agent(name string) agentclient.Client {
	return agentclient.Client{Dial: func(ctx context.Context) (net.Conn, error) {
		if a.caller == nil {
			c, err := a.Connect(ctx)
			if err != nil {
				return nil, err
			}
			a.caller = c
		}
		s, ok := a.caller.(Streamer)
		if !ok {
			return nil, errors.New("this daemon connection cannot open streams")
		}
		return s.Stream(ctx, api.MethodVMAgentConnect, api.VMRef{Name: name})
	}}
}

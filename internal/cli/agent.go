package cli

import (
	"context"
	"errors"

	"github.com/banger-dev/banger/internal/agentclient"
)

// agent returns a client for a VM's guest agent whose connections are
// streams through bangerd (vm.agent_connect): exec, cp and port forwarding
// speak the agent protocol over them.
func (a *App) agent(name string) agentclient.Client {
	return agentclient.ViaDaemon(name, func(ctx context.Context) (agentclient.Streamer, error) {
		if a.caller == nil {
			c, err := a.Connect(ctx)
			if err != nil {
				return nil, err
			}
			a.caller = c
		}
		s, ok := a.caller.(agentclient.Streamer)
		if !ok {
			return nil, errors.New("this daemon connection cannot open streams")
		}
		return s, nil
	})
}

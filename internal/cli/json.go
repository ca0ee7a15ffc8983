package cli

import (
	"github.com/banger-dev/banger/internal/api"
)

// JSON results of commands whose answer is not an api type. Each command's
// --output json schema is documented in docs/json.md, generated from the
// types in JSONOutputs (TestJSONDoc keeps the two equal).

// DeletedResult is `vm delete` and `image delete`.
type DeletedResult struct {
	Name    string `json:"name"`
	Deleted bool   `json:"deleted"`
}

// SnapshotDeletedResult is `vm snapshot delete`.
type SnapshotDeletedResult struct {
	VM      string `json:"vm"`
	Name    string `json:"name"`
	Deleted bool   `json:"deleted"`
}

// HostNATResult is `host nat on|off`.
type HostNATResult struct {
	NAT bool `json:"nat"` // enabled
}

// DaemonStartResult is `daemon start`: the running daemon.
type DaemonStartResult = api.DaemonInfo

// DaemonStopResult is `daemon stop`.
type DaemonStopResult struct {
	// WasRunning is false when no daemon answered (nothing to stop).
	WasRunning bool `json:"was_running"`
	PID        int  `json:"pid,omitempty"`
}

// VersionResult is `version`.
type VersionResult struct {
	CLI BuildInfo `json:"cli"`
	// Daemon is the running bangerd, null when none runs.
	Daemon *api.DaemonInfo `json:"daemon"`
	// DaemonStale: the running bangerd is another build; the next banger
	// command restarts it.
	DaemonStale bool `json:"daemon_stale,omitempty"`
	// DaemonError says why the daemon's socket did not answer.
	DaemonError string `json:"daemon_error,omitempty"`
}

type BuildInfo struct {
	Version string `json:"version"`
	BuildID string `json:"build_id"`
}

// emit prints v as JSON for --output json, otherwise runs human.
func (a *App) emit(output string, v any, human func()) error {
	if output == "json" {
		return a.printJSON(v)
	}
	human()
	return nil
}

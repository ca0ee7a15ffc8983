package firecracker

import (
	"bufio"
	"os"
	"strings"
)

// HostCPU names the host's CPU model as a memory snapshot depends on it:
// the vCPU state Firecracker saves carries the host's CPUID, and it checks
// only the vendor at restore, so the driver compares the model itself.
type HostCPU struct {
	// ID identifies the model: x86 vendor, family and model, or the Arm
	// implementer, architecture, variant and part.
	ID string `json:"id"`
	// Name is the human-readable model name, for messages.
	Name string `json:"name,omitempty"`
}

// cpuIDKeys are the /proc/cpuinfo fields that make up HostCPU.ID.
var cpuIDKeys = []string{"vendor_id", "cpu family", "model", "CPU implementer", "CPU architecture", "CPU variant", "CPU part"}

// readHostCPU reads the first processor's model from a cpuinfo file. A file
// without those fields gives an empty ID (no check is possible).
func readHostCPU(path string) (HostCPU, error) {
	fh, err := os.Open(path)
	if err != nil {
		return HostCPU{}, err
	}
	defer fh.Close()
	fields := map[string]string{}
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			if len(fields) > 0 {
				break // the first processor is enough
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if _, seen := fields[k]; !seen {
			fields[k] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return HostCPU{}, err
	}
	var id []string
	for _, k := range cpuIDKeys {
		if v, ok := fields[k]; ok {
			id = append(id, k+"="+v)
		}
	}
	return HostCPU{ID: strings.Join(id, " "), Name: fields["model name"]}, nil
}

func (c HostCPU) String() string {
	if c.Name != "" {
		return c.Name + " (" + c.ID + ")"
	}
	return c.ID
}

package tui

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/validate"
)

// Create form fields, in display order.
const (
	fieldName = iota
	fieldImage
	fieldVCPUs
	fieldMemory
	fieldDisk
	numFields
)

var fieldLabels = [numFields]string{"name", "image", "vcpus", "memory", "disk"}
var fieldPlaceholders = [numFields]string{"e.g. dev", "default", "default, e.g. 2", "default, e.g. 2G or 2048", "default, e.g. 20G"}

// createForm is the `c` form. Empty optional fields mean "use the daemon's
// default" and are omitted from the request.
type createForm struct {
	values [numFields]string
	errs   [numFields]string
	focus  int
}

// validate fills f.errs and returns the params when every field is valid.
// The rules are the CLI's (package validate); images is the known image list
// and host the host's figures, both zero when not loaded yet (the daemon
// checks again anyway).
func (f *createForm) validate(images []api.Image, host api.HostResources) (api.VMCreateParams, bool) {
	f.errs = [numFields]string{}
	limits := validate.Limits{HostCPUs: host.CPUs, HostMemoryBytes: host.MemoryBytes, FSFreeBytes: host.FSFreeBytes}
	var p api.VMCreateParams
	p.Name = strings.TrimSpace(f.values[fieldName])
	if err := validate.VMName(p.Name); err != nil {
		f.errs[fieldName] = err.Error()
	}
	if img := strings.TrimSpace(f.values[fieldImage]); img != "" {
		p.Image = &img
		if err := validate.ImageName(img); err != nil {
			f.errs[fieldImage] = err.Error()
		} else if images != nil && !slices.ContainsFunc(images, func(i api.Image) bool { return i.Name == img }) {
			f.errs[fieldImage] = noImage(img, images)
		}
	}
	if s := strings.TrimSpace(f.values[fieldVCPUs]); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			f.errs[fieldVCPUs] = fmt.Sprintf("invalid vcpus %q: use a whole number, e.g. 2", s)
		} else if err := validate.VCPUs(n, limits); err != nil {
			f.errs[fieldVCPUs] = err.Error()
		}
		p.VCPUs = &n
	}
	if s := strings.TrimSpace(f.values[fieldMemory]); s != "" {
		mib, err := validate.ParseMemoryMiB(s)
		if err == nil {
			err = validate.MemoryMiB(mib, limits)
		}
		if err != nil {
			f.errs[fieldMemory] = err.Error()
		}
		p.MemoryMiB = &mib
	}
	if s := strings.TrimSpace(f.values[fieldDisk]); s != "" {
		b, err := validate.ParseSize(s)
		if err == nil {
			err = validate.DiskBytes(b, limits)
		}
		if err != nil {
			f.errs[fieldDisk] = err.Error()
		}
		p.DiskBytes = &b
	}
	for _, e := range f.errs {
		if e != "" {
			return api.VMCreateParams{}, false
		}
	}
	return p, true
}

func noImage(name string, images []api.Image) string {
	if len(images) == 0 {
		return fmt.Sprintf("no image %q: build one first: banger image build --name %s", name, name)
	}
	names := make([]string, 0, len(images))
	for _, i := range images {
		names = append(names, i.Name)
	}
	return fmt.Sprintf("no image %q; have: %s", name, strings.Join(names, ", "))
}

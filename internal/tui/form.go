package tui

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"charm.land/bubbles/v2/textinput"

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

// createForm is the `c` form: one bubbles/textinput per field. Empty
// optional fields mean "use the daemon's default" and are omitted from the
// request.
type createForm struct {
	inputs [numFields]textinput.Model
	errs   [numFields]string
	focus  int
}

func newCreateForm(th theme) createForm {
	var f createForm
	st := textinput.Styles{
		Focused: textinput.StyleState{Text: th.plain(), Placeholder: th.dim, Prompt: th.plain()},
		Blurred: textinput.StyleState{Text: th.plain(), Placeholder: th.dim, Prompt: th.plain()},
		// A steady cursor: nothing to redraw twice a second.
		Cursor: textinput.CursorStyle{Blink: false},
	}
	for i := range f.inputs {
		in := textinput.New()
		in.Prompt, in.Placeholder = "", fieldPlaceholders[i]
		in.SetStyles(st)
		// The virtual cursor is drawn in reverse video, an escape sequence
		// that NoColor output must not carry; the › marks the field then.
		in.SetVirtualCursor(!th.noColor)
		f.inputs[i] = in
	}
	f.setFocus(fieldName)
	return f
}

// setFocus moves the cursor to field i (wrapping around).
func (f *createForm) setFocus(i int) {
	f.inputs[f.focus].Blur()
	f.focus = (i + numFields) % numFields
	f.inputs[f.focus].Focus() // the blink command it returns is not needed: the cursor does not blink
}

// value is field i's text without surrounding spaces.
func (f *createForm) value(i int) string { return strings.TrimSpace(f.inputs[i].Value()) }

// validate fills f.errs and returns the params when every field is valid.
// The rules are the CLI's (package validate); images is the known image list
// and host the host's figures, both zero when not loaded yet (the daemon
// checks again anyway).
func (f *createForm) validate(images []api.Image, host api.HostResources) (api.VMCreateParams, bool) {
	f.errs = [numFields]string{}
	limits := validate.Limits{HostCPUs: host.CPUs, HostMemoryBytes: host.MemoryBytes, FSFreeBytes: host.FSFreeBytes}
	var p api.VMCreateParams
	p.Name = f.value(fieldName)
	if err := validate.VMName(p.Name); err != nil {
		f.errs[fieldName] = err.Error()
	}
	if img := f.value(fieldImage); img != "" {
		p.Image = &img
		if err := validate.ImageName(img); err != nil {
			f.errs[fieldImage] = err.Error()
		} else if images != nil && !slices.ContainsFunc(images, func(i api.Image) bool { return i.Name == img }) {
			f.errs[fieldImage] = noImage(img, images)
		}
	}
	if s := f.value(fieldVCPUs); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			f.errs[fieldVCPUs] = fmt.Sprintf("invalid vcpus %q: use a whole number, e.g. 2", s)
		} else if err := validate.VCPUs(n, limits); err != nil {
			f.errs[fieldVCPUs] = err.Error()
		}
		p.VCPUs = &n
	}
	if s := f.value(fieldMemory); s != "" {
		mib, err := validate.ParseMemoryMiB(s)
		if err == nil {
			err = validate.MemoryMiB(mib, limits)
		}
		if err != nil {
			f.errs[fieldMemory] = err.Error()
		}
		p.MemoryMiB = &mib
	}
	if s := f.value(fieldDisk); s != "" {
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

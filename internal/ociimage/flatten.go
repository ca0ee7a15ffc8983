package ociimage

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Whiteout names (the OCI image spec's, as overlayfs-based runtimes apply
// them).
const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
)

// FlattenStats says what Flatten wrote.
type FlattenStats struct {
	Entries int
	Bytes   int64 // regular files' content
}

// entryKey is one tar entry of one layer: its name and its position (a
// name may occur twice in a layer: the last one counts).
type entryKey struct {
	name string
	ord  int
}

// Flatten writes the image's root filesystem as one tar stream: layers in
// order, bottom first, each entry written only when no upper layer replaces
// or deletes it (whiteouts and opaque directories applied, the markers
// themselves dropped). Entries keep their owners, modes, times, xattrs and
// device numbers. Hard links stay links when their target survives in the
// same layer; a link whose target an upper layer replaced becomes a copy
// of the content it linked to (spooled to tmpDir). Names are cleaned; a
// name or link target leaving the tree is an error.
func Flatten(img v1.Image, w io.Writer, tmpDir string) (FlattenStats, error) {
	layers, err := img.Layers()
	if err != nil {
		return FlattenStats{}, fmt.Errorf("list layers: %w", err)
	}
	keep, spool, err := survivors(layers)
	if err != nil {
		return FlattenStats{}, err
	}
	tw := tar.NewWriter(w)
	var st FlattenStats
	for i, l := range layers {
		if err := writeLayer(tw, l, keep[i], spool[i], tmpDir, &st); err != nil {
			return st, fmt.Errorf("layer %d: %w", i+1, err)
		}
	}
	return st, tw.Close()
}

// cleanName makes a layer's entry name relative and clean; "" for the root.
func cleanName(n string) (string, error) {
	c := path.Clean("/" + n)
	if c == "/" {
		return "", nil
	}
	if strings.Contains(n, "..") {
		for _, part := range strings.Split(n, "/") {
			if part == ".." {
				return "", fmt.Errorf("entry %q leaves the tree", n)
			}
		}
	}
	return c[1:], nil
}

type layerEntry struct {
	name     string
	typ      byte
	linkname string
}

// survivors decides, top layer first, which entry of each layer is in the
// final tree (keep[layer][name] = position of the entry that counts), and
// which files must be spooled because a surviving hard link needs their
// content after an upper layer replaced the name (spool[layer][name]).
func survivors(layers []v1.Layer) ([]map[string]int, []map[string]bool, error) {
	keep := make([]map[string]int, len(layers))
	spool := make([]map[string]bool, len(layers))
	// blocked[name]: an upper layer has this name; true when it hides
	// what is below it (a file, a link, a whiteout), false for a directory
	// (which merges with the one below).
	blocked := map[string]bool{}
	opaque := map[string]bool{}
	hidden := func(name string) bool {
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if blocked[d] || opaque[d] {
				return true
			}
		}
		return opaque[""]
	}
	for i := len(layers) - 1; i >= 0; i-- {
		entries, err := listLayer(layers[i])
		if err != nil {
			return nil, nil, fmt.Errorf("layer %d: %w", i+1, err)
		}
		keep[i], spool[i] = map[string]int{}, map[string]bool{}
		last := map[string]int{}
		for ord, e := range entries {
			last[e.name] = ord
		}
		layerBlocked := map[string]bool{}
		layerOpaque := map[string]bool{}
		for ord, e := range entries {
			if last[e.name] != ord {
				continue
			}
			dir, base := path.Dir(e.name), path.Base(e.name)
			if dir == "." {
				dir = ""
			}
			if base == opaqueWhiteout {
				layerOpaque[dir] = true
				continue
			}
			if target, ok := strings.CutPrefix(base, whiteoutPrefix); ok {
				layerBlocked[path.Join(dir, target)] = true
				continue
			}
			if _, upper := blocked[e.name]; upper || hidden(e.name) {
				continue
			}
			keep[i][e.name] = ord
			layerBlocked[e.name] = e.typ != tar.TypeDir
		}
		// A link whose target this layer holds but an upper layer
		// replaced: its content must come from this layer's copy.
		for name, ord := range keep[i] {
			e := entries[ord]
			if e.typ != tar.TypeLink {
				continue
			}
			if _, ok := keep[i][e.linkname]; ok {
				continue
			}
			if _, ok := last[e.linkname]; !ok {
				return nil, nil, fmt.Errorf("layer %d: hard link %s to %s, which the layer does not hold", i+1, name, e.linkname)
			}
			spool[i][e.linkname] = true
		}
		for n, b := range layerBlocked {
			if _, ok := blocked[n]; !ok {
				blocked[n] = b
			}
		}
		for d := range layerOpaque {
			opaque[d] = true
		}
	}
	return keep, spool, nil
}

func listLayer(l v1.Layer) ([]layerEntry, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var out []layerEntry
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read layer: %w", err)
		}
		n, err := cleanName(h.Name)
		if err != nil {
			return nil, err
		}
		if n == "" {
			continue
		}
		e := layerEntry{name: n, typ: h.Typeflag}
		if h.Typeflag == tar.TypeLink {
			if e.linkname, err = cleanName(h.Linkname); err != nil || e.linkname == "" {
				return nil, fmt.Errorf("hard link %s to %q: the target leaves the tree", n, h.Linkname)
			}
		}
		out = append(out, e)
	}
}

// writeLayer copies the surviving entries of one layer.
func writeLayer(tw *tar.Writer, l v1.Layer, keep map[string]int, spool map[string]bool, tmpDir string, st *FlattenStats) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	spooled := map[string]string{} // name -> temp file with its content
	spooledHdr := map[string]*tar.Header{}
	defer func() {
		for _, p := range spooled {
			os.Remove(p)
		}
	}()
	tr := tar.NewReader(rc)
	for ord := 0; ; {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read layer: %w", err)
		}
		n, err := cleanName(h.Name)
		if err != nil {
			return err
		}
		if n == "" {
			continue
		}
		this := ord
		ord++
		if spool[n] && h.Typeflag == tar.TypeReg {
			f, err := os.CreateTemp(tmpDir, "hardlink-")
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			f.Close()
			if err != nil {
				return err
			}
			if old, ok := spooled[n]; ok {
				os.Remove(old)
			}
			spooled[n], spooledHdr[n] = f.Name(), h
		}
		if at, ok := keep[n]; !ok || at != this {
			continue
		}
		h.Name = n
		h.Format = tar.FormatPAX
		if h.Typeflag == tar.TypeLink {
			h.Linkname, _ = cleanName(h.Linkname)
			if p, ok := spooled[h.Linkname]; ok {
				if err := writeCopy(tw, h, spooledHdr[h.Linkname], p, st); err != nil {
					return err
				}
				continue
			}
		}
		if h.Typeflag == tar.TypeDir && !strings.HasSuffix(h.Name, "/") {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			n, err := io.Copy(tw, tr)
			if err != nil {
				return err
			}
			st.Bytes += n
		}
		st.Entries++
	}
}

// writeCopy writes link as a regular file with the content spooled from
// its target.
func writeCopy(tw *tar.Writer, link, target *tar.Header, p string, st *FlattenStats) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	h := *target
	h.Name, h.Typeflag, h.Linkname, h.Format = link.Name, tar.TypeReg, "", tar.FormatPAX
	if err := tw.WriteHeader(&h); err != nil {
		return err
	}
	n, err := io.Copy(tw, f)
	st.Bytes += n
	st.Entries++
	return err
}

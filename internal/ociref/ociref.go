// Package ociref parses the image references `banger image import` takes:
// a registry reference, oci:DIR[:TAG] or docker-archive:FILE. It is apart
// from internal/ociimage so the CLI can check a reference without linking
// (and initialising, at every start) the registry client, which checks a
// registry reference's full grammar in bangerd.
package ociref

import (
	"errors"
	"fmt"
	"strings"
)

// Transports of a Ref.
const (
	Registry      = "registry"       // registry.example/app:tag, app@sha256:...
	OCILayout     = "oci"            // oci:DIR[:tag]
	DockerArchive = "docker-archive" // docker-archive:FILE
)

// Ref is a parsed image reference.
type Ref struct {
	Transport string
	Name      string // the registry reference, or the path
	Tag       string // oci: the ref.name annotation to pick, if any
}

func (r Ref) String() string {
	switch r.Transport {
	case OCILayout:
		if r.Tag != "" {
			return "oci:" + r.Name + ":" + r.Tag
		}
		return "oci:" + r.Name
	case DockerArchive:
		return "docker-archive:" + r.Name
	}
	return r.Name
}

// Parse parses "oci:DIR[:tag]", "docker-archive:FILE" or a registry
// reference ("debian:12", "127.0.0.1:5000/app:v1", "app@sha256:...").
func Parse(s string) (Ref, error) {
	if s == "" {
		return Ref{}, errors.New("no image reference: pass REGISTRY/NAME:TAG, oci:DIR[:TAG] or docker-archive:FILE")
	}
	if rest, ok := strings.CutPrefix(s, "oci:"); ok {
		dir, tag := rest, ""
		// A tag follows the last ':' unless what follows holds a '/'
		// (then the ':' was part of the directory).
		if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[i+1:], "/") {
			dir, tag = rest[:i], rest[i+1:]
			if tag == "" {
				return Ref{}, fmt.Errorf("%q: an empty tag after ':'", s)
			}
		}
		if dir == "" {
			return Ref{}, fmt.Errorf("%q: no directory after oci:", s)
		}
		return Ref{Transport: OCILayout, Name: dir, Tag: tag}, nil
	}
	if file, ok := strings.CutPrefix(s, "docker-archive:"); ok {
		if file == "" {
			return Ref{}, fmt.Errorf("%q: no file after docker-archive:", s)
		}
		return Ref{Transport: DockerArchive, Name: file}, nil
	}
	for _, r := range s {
		if !refChar(r) {
			return Ref{}, fmt.Errorf("%q is not an image reference (%q cannot be in one): pass REGISTRY/NAME:TAG, oci:DIR[:TAG] or docker-archive:FILE", s, r)
		}
	}
	return Ref{Transport: Registry, Name: s}, nil
}

// refChar reports whether r can be in a registry reference: not a space
// or a control character. That is all Parse checks of one: the grammar is
// the registry client's, which bangerd applies (ociimage.ParseRef) and the
// CLI does not link; it accepts more than it seems (a registry host is
// checked only as a URL's host). Parse must never refuse a reference the
// client accepts (FuzzParseAcceptsWhatTheRegistryClientDoes).
func refChar(r rune) bool {
	return r > ' ' && r != 0x7f
}

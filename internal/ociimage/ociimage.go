// Package ociimage reads OCI (and Docker) container images for `banger image
// import`: from a registry, an OCI image layout directory or a `docker save`
// archive, one platform picked from an index, and flattens their layers
// into one tar stream, whiteouts applied and hard links kept, owners and
// modes as the layers say. Unpacking that stream (with owners, as root or
// in a user namespace) and packing the ext4 image is the image builder's
// job.
package ociimage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/cache"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/banger-dev/banger/internal/ociref"
)

// The reference syntax lives in internal/ociref, so that the CLI can
// parse references without linking the registry client.
type Ref = ociref.Ref

const (
	Registry      = ociref.Registry
	OCILayout     = ociref.OCILayout
	DockerArchive = ociref.DockerArchive
)

// ParseRef parses an image reference (ociref.Parse) and checks a registry
// reference's grammar with the registry client.
func ParseRef(s string) (Ref, error) {
	r, err := ociref.Parse(s)
	if err != nil || r.Transport != Registry {
		return r, err
	}
	if _, err := name.ParseReference(s, name.StrictValidation); err != nil {
		// StrictValidation refuses a missing tag; say what is accepted.
		if _, lerr := name.ParseReference(s); lerr != nil {
			return Ref{}, fmt.Errorf("%q is not an image reference (%v): pass REGISTRY/NAME:TAG, oci:DIR[:TAG] or docker-archive:FILE", s, lerr)
		}
	}
	return r, nil
}

// Options tune Open.
type Options struct {
	// Platform picks an image from a multi-platform index; default
	// linux/amd64.
	Platform *v1.Platform
	// LayerCache, when set, keeps downloaded layers there by digest.
	LayerCache string
	// Keychain finds registry credentials; nil = ~/.docker/config.json
	// (authn.DefaultKeychain), anonymous where it has none.
	Keychain authn.Keychain
}

func (o Options) platform() v1.Platform {
	if o.Platform != nil {
		return *o.Platform
	}
	return v1.Platform{OS: "linux", Architecture: "amd64"}
}

// Image is an opened image.
type Image struct {
	Img    v1.Image
	Ref    Ref
	Digest string // the platform image's manifest digest, "sha256:..."
	Config v1.Config
}

// Open resolves r to one image for the platform.
func Open(ctx context.Context, r Ref, o Options) (*Image, error) {
	var (
		img v1.Image
		err error
	)
	plat := o.platform()
	switch r.Transport {
	case Registry:
		ref, perr := name.ParseReference(r.Name)
		if perr != nil {
			return nil, perr
		}
		kc := o.Keychain
		if kc == nil {
			kc = authn.DefaultKeychain
		}
		img, err = remote.Image(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(kc), remote.WithPlatform(plat))
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", r.Name, err)
		}
	case OCILayout:
		img, err = fromLayout(r, plat)
	case DockerArchive:
		if _, serr := os.Stat(r.Name); serr != nil {
			return nil, fmt.Errorf("docker-archive: %w", serr)
		}
		img, err = tarball.ImageFromPath(r.Name, nil)
		if err != nil {
			return nil, fmt.Errorf("read docker archive %s: %w (an archive of several images is not supported: save one)", r.Name, err)
		}
	default:
		return nil, fmt.Errorf("unknown transport %q", r.Transport)
	}
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("%s: read the image config: %w", r, err)
	}
	if cf.OS != "" && cf.OS != plat.OS || cf.Architecture != "" && cf.Architecture != plat.Architecture {
		return nil, fmt.Errorf("%s is a %s/%s image; banger runs %s/%s guests", r, cf.OS, cf.Architecture, plat.OS, plat.Architecture)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	if o.LayerCache != "" {
		if err := os.MkdirAll(o.LayerCache, 0o700); err != nil {
			return nil, err
		}
		img = cache.Image(img, cache.NewFilesystemCache(o.LayerCache))
	}
	return &Image{Img: img, Ref: r, Digest: d.String(), Config: cf.Config}, nil
}

// fromLayout picks the image of an OCI layout: by its ref.name annotation
// when a tag is given, else the only one; an index is resolved to the
// platform's image.
func fromLayout(r Ref, plat v1.Platform) (v1.Image, error) {
	if _, err := os.Stat(filepath.Join(r.Name, "index.json")); err != nil {
		return nil, fmt.Errorf("oci:%s is not an OCI image layout (no index.json): %w", r.Name, err)
	}
	idx, err := layout.ImageIndexFromPath(r.Name)
	if err != nil {
		return nil, fmt.Errorf("read OCI layout %s: %w", r.Name, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var picked []v1.Descriptor
	var tags []string
	for _, d := range im.Manifests {
		t := d.Annotations["org.opencontainers.image.ref.name"]
		if t != "" {
			tags = append(tags, t)
		}
		if r.Tag == "" || t == r.Tag {
			picked = append(picked, d)
		}
	}
	switch {
	case len(picked) == 0:
		return nil, fmt.Errorf("oci:%s has no image tagged %q (it has: %s)", r.Name, r.Tag, strings.Join(tags, ", "))
	case len(picked) > 1:
		return nil, fmt.Errorf("oci:%s holds %d images: name one with oci:%s:TAG (tags: %s)", r.Name, len(picked), r.Name, strings.Join(tags, ", "))
	}
	d := picked[0]
	if d.MediaType.IsIndex() {
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, err
		}
		return imageForPlatform(child, plat)
	}
	return idx.Image(d.Digest)
}

func imageForPlatform(idx v1.ImageIndex, plat v1.Platform) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var have []string
	for _, d := range im.Manifests {
		if d.Platform == nil {
			continue
		}
		if d.Platform.Satisfies(plat) {
			return idx.Image(d.Digest)
		}
		have = append(have, d.Platform.String())
	}
	return nil, fmt.Errorf("no %s image in the index (it has: %s)", plat.String(), strings.Join(have, ", "))
}

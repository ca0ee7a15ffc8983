package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/agentclient"
	"github.com/banger-dev/banger/internal/tarstream"
	"github.com/banger-dev/banger/internal/validate"
)

func newVMCpCmd(a *App) *cobra.Command {
	var recursive bool
	cmd := &cobra.Command{
		Use:   "cp [-r] SRC... DST",
		Short: "Copy files between the host and a VM through the guest agent",
		Long: "Copy files into or out of a running VM, through its guest agent (no ssh). One side is\n" +
			"NAME:PATH (a relative PATH is under /root). Modes, mtimes and symlinks are kept; what is\n" +
			"written in the guest belongs to root, what is written here to you. Each file is written\n" +
			"under a temporary name and renamed, so a copy that fails leaves no partial file.\n" +
			"A directory needs -r. When DST is an existing directory the sources go into it; otherwise\n" +
			"the single source is copied to the name DST.\n\n" +
			"- as SRC reads a tar archive from stdin (unpacked into the guest directory DST); - as DST\n" +
			"writes a tar archive of the guest SRC to stdout, as docker cp does.",
		Example: "  banger vm cp ./main.go dev:src/\n" +
			"  banger vm cp -r dev:/var/log/app ./logs\n" +
			"  tar c . | banger vm cp - dev:/root/project\n" +
			"  banger vm cp -r dev:/etc - | tar t",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			srcs, dst := args[:len(args)-1], args[len(args)-1]
			return a.cp(cmd.Context(), srcs, dst, recursive)
		},
	}
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "copy directories and their content")
	return cmd
}

// cpPath is one argument of vm cp.
type cpPath struct {
	vm, path string // vm is "" for a host path
}

// parseCpPath splits NAME:PATH; anything whose part before the first ':'
// holds a '/' (./a:b) or is empty is a host path.
func parseCpPath(s string) cpPath {
	name, p, ok := strings.Cut(s, ":")
	if !ok || name == "" || strings.Contains(name, "/") || validate.VMName(name) != nil {
		return cpPath{path: s}
	}
	if p == "" {
		p = "."
	}
	return cpPath{vm: name, path: p}
}

func (a *App) cp(ctx context.Context, srcArgs []string, dstArg string, recursive bool) error {
	dst := parseCpPath(dstArg)
	var srcs []cpPath
	for _, s := range srcArgs {
		srcs = append(srcs, parseCpPath(s))
	}
	vm := dst.vm
	for _, s := range srcs {
		if (s.vm == "") == (dst.vm == "") {
			return usageErr(fmt.Sprintf("vm cp %s %s: one side must be NAME:PATH in a VM, the other a path here", s.path, dstArg),
				"banger vm cp FILE dev:/root/ or banger vm cp dev:/root/FILE .")
		}
		if s.vm != "" {
			if vm != "" && vm != s.vm {
				return usageErr("vm cp copies from one VM at a time", "copy from "+vm+" and "+s.vm+" in two commands")
			}
			vm = s.vm
		}
	}
	if len(srcs) > 1 && (dst.path == "-" || containsDash(srcs)) {
		return usageErr("- (a tar stream) works with one source only", "")
	}
	c := a.agent(vm)
	if dst.vm != "" {
		return a.cpIn(ctx, c, srcs, dst.path, recursive)
	}
	return a.cpOut(ctx, c, srcs, dst.path, recursive)
}

func containsDash(ps []cpPath) bool {
	for _, p := range ps {
		if p.path == "-" {
			return true
		}
	}
	return false
}

// cpIn copies host paths (or a tar on stdin) into the guest.
func (a *App) cpIn(ctx context.Context, c agentclient.Client, srcs []cpPath, dst string, recursive bool) error {
	if srcs[0].path == "-" {
		_, err := c.Put(ctx, dst, "", a.Stdin)
		return err
	}
	for _, s := range srcs {
		fi, err := os.Lstat(s.path)
		if err != nil {
			return fmt.Errorf("vm cp: %w", err)
		}
		if fi.IsDir() && !recursive {
			return usageErr(s.path+" is a directory", "copy directories with -r")
		}
	}
	st, err := c.Stat(ctx, dst)
	if err != nil {
		return err
	}
	dir, name := dst, ""
	if !st.Exists || !st.IsDir {
		if len(srcs) > 1 {
			return usageErr(fmt.Sprintf("copying %d sources: %s must be an existing directory in the guest", len(srcs), dst), "")
		}
		dir, name = path.Dir(dst), path.Base(dst)
	}
	for _, s := range srcs {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(tarstream.Pack(pw, s.path, "", recursive)) }()
		_, err := c.Put(ctx, dir, name, pr)
		pr.Close()
		if err != nil {
			return fmt.Errorf("vm cp %s: %w", s.path, err)
		}
	}
	return nil
}

// cpOut copies guest paths here (or as a tar to stdout).
func (a *App) cpOut(ctx context.Context, c agentclient.Client, srcs []cpPath, dst string, recursive bool) error {
	if dst == "-" {
		return c.Get(ctx, srcs[0].path, recursive, a.Stdout)
	}
	dir, name := dst, ""
	if fi, err := os.Stat(dst); err != nil || !fi.IsDir() {
		if len(srcs) > 1 {
			return usageErr(fmt.Sprintf("copying %d sources: %s must be an existing directory", len(srcs), dst), "")
		}
		dir, name = filepath.Dir(dst), filepath.Base(dst)
	}
	for _, s := range srcs {
		pr, pw := io.Pipe()
		got := make(chan error, 1)
		go func() {
			err := c.Get(ctx, s.path, recursive, pw)
			pw.CloseWithError(err)
			got <- err
		}()
		_, err := tarstream.Unpack(pr, dir, name)
		pr.CloseWithError(errors.New("unpacking stopped"))
		gerr := <-got
		// The guest's failure explains a cut archive better than the
		// unpacker's "unexpected EOF".
		if gerr != nil && (err == nil || !strings.Contains(gerr.Error(), "unpacking stopped")) {
			return fmt.Errorf("vm cp %s: %w", s.path, gerr)
		}
		if err != nil {
			return fmt.Errorf("vm cp %s: %w", s.path, err)
		}
	}
	return nil
}

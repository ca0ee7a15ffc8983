// Command banger-agent runs inside every banger VM and answers the host's
// health and info requests over AF_VSOCK and/or a virtio-serial port.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/vsock"
	"golang.org/x/sys/unix"

	"github.com/banger-dev/banger/internal/agent"
	"github.com/banger-dev/banger/internal/guestinit"
	"github.com/banger-dev/banger/internal/version"
)

func main() {
	os.Exit(run())
}

func run() int {
	// In an image without an init of its own, `image import` makes the
	// agent /sbin/init: it then sets the machine up and supervises the
	// image's command, and another copy of it serves the host.
	if os.Getpid() == 1 {
		guestinit.Run()
	}
	port := flag.Uint("port", 0, "vsock port to listen on (default: banger.agent_port= on /proc/cmdline, else 1024)")
	showVersion := flag.Bool("version", false, "print the version and exit")
	listenUnix := flag.String("listen-unix", "", "serve on this Unix socket only, not vsock or virtio-serial, and exit with the parent process (for fake guests in tests)")
	flag.Parse()
	if *showVersion {
		fmt.Println("banger-agent", version.Version)
		return 0
	}
	// The journal (systemd) or svlogd (runit) adds timestamps.
	logger := log.New(os.Stderr, "banger-agent: ", 0)
	if *port > 0xFFFFFFFF {
		logger.Printf("--port %d is out of range: want 1-4294967295", *port)
		return 2
	}

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()

	srv := agent.NewServer(agent.NewHandler(agent.Options{Version: version.Version}), logger)
	logger.Printf("version %s starting", version.Version)

	var wg sync.WaitGroup
	channels := 0

	if *listenUnix != "" {
		return serveUnix(ctx, srv, *listenUnix, logger)
	}

	vsockPort := resolvePort(uint32(*port), logger)
	// VMADDR_CID_ANY: accept whatever CID the VMM gave us.
	ln, err := vsock.ListenContextID(unix.VMADDR_CID_ANY, vsockPort, nil)
	if err != nil {
		logger.Printf("vsock: not serving on port %d: %v (normal under QEMU without vhost-vsock)", vsockPort, err)
	} else {
		channels++
		logger.Printf("vsock: listening on port %d", vsockPort)
		wg.Go(func() {
			if err := srv.Serve(agent.HostOnly(ln, logger)); !errors.Is(err, http.ErrServerClosed) {
				logger.Printf("vsock: server stopped: %v", err)
			}
		})
	}

	dev, err := agent.FindSerialPort("/sys/class/virtio-ports", "/dev", agent.SerialPortName)
	if err != nil {
		logger.Printf("serial: not serving: %v (normal under Firecracker)", err)
	} else {
		channels++
		logger.Printf("serial: found port %s at %s", agent.SerialPortName, dev)
		wg.Go(func() {
			_ = agent.ServeSerial(ctx, srv, agent.SerialConfig{
				Open: func() (io.ReadWriteCloser, error) {
					return os.OpenFile(dev, os.O_RDWR, 0)
				},
				Name:   dev,
				Logger: logger,
			})
		})
	}

	if channels == 0 {
		// Exiting lets the service manager retry later (modules may still
		// be loading); serving nothing forever would hide the problem.
		logger.Printf("no channel to the host: neither vsock nor a virtio-serial port named %s is available", agent.SerialPortName)
		return 1
	}

	<-ctx.Done()
	logger.Printf("shutting down")
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancelShutdown()
	_ = srv.Shutdown(shutdownCtx)
	wg.Wait()
	return 0
}

// resolvePort picks the vsock port: the flag, else the kernel command line,
// else the default.
func resolvePort(flagPort uint32, logger *log.Logger) uint32 {
	if flagPort != 0 {
		return flagPort
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		logger.Printf("read /proc/cmdline: %v; using port %d", err, agent.DefaultPort)
		return agent.DefaultPort
	}
	port, found, err := agent.PortFromCmdline(string(cmdline))
	switch {
	case err != nil:
		logger.Printf("%v; using port %d", err, agent.DefaultPort)
		return agent.DefaultPort
	case found:
		return port
	default:
		return agent.DefaultPort
	}
}

// serveUnix serves on a Unix socket until ctx ends or the parent (a fake
// VMM) exits.
func serveUnix(ctx context.Context, srv *http.Server, path string, logger *log.Logger) int {
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGTERM), 0, 0, 0)
	if os.Getppid() == 1 {
		return 0 // the parent is already gone
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		logger.Printf("listen on %s: %v", path, err)
		return 1
	}
	logger.Printf("serving on unix socket %s", path)
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		logger.Printf("unix: server stopped: %v", err)
		return 1
	}
	return 0
}

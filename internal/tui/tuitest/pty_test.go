package tuitest

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestWaitForAndExit(t *testing.T) {
	// printf writes, then reads one line from the pty before exiting.
	s, err := Start([]string{"sh", "-c", `printf '\033[1mready\033[0m\n'; read line; printf 'got %s\n' "$line"`}, nil, 80, 24)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := s.WaitFor(ctx, "ready")
	if err != nil || d <= 0 {
		t.Fatalf("WaitFor ready = %v, %v", d, err)
	}
	if !strings.Contains(string(s.Output()), "\x1b[1m") || strings.Contains(s.Screen(), "\x1b") {
		t.Errorf("Output should keep escapes and Screen strip them: %q / %q", s.Output(), s.Screen())
	}
	if err := s.Type("abc\r"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WaitFor(ctx, "got abc"); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(ctx); err != nil {
		t.Errorf("exit: %v", err)
	}
	// The program is gone: waiting for text it never printed fails at once
	// with the screen in the error instead of hanging.
	_, err = s.WaitFor(ctx, "never printed")
	if err == nil || !strings.Contains(err.Error(), "got abc") {
		t.Errorf("WaitFor after exit = %v", err)
	}
}

func TestWaitForDeadline(t *testing.T) {
	s, err := Start([]string{"sleep", "30"}, nil, 80, 24)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.WaitFor(ctx, "x"); err == nil {
		t.Error("WaitFor returned without the text")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close of a running program: %v", err)
	}
}

func TestStartMissingProgram(t *testing.T) {
	if _, err := Start([]string{"/nonexistent/banger"}, nil, 80, 24); err == nil {
		t.Error("Start of a missing program succeeded")
	}
}

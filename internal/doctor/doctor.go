// Package doctor checks that the host can do what banger is about to do.
//
// A Check has a kebab-case name, the scopes it belongs to (vm-start, nat,
// image-build, disk-resize, ssh, dns, daemon) and a Run function that probes
// the host through an Env. `banger doctor` runs every check; before an
// operation that changes the host, Preflight runs the checks of that
// operation's scope and refuses, having changed nothing, when one fails.
package doctor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/banger-dev/banger/internal/api"
)

// Scope names, in the order `banger doctor` reports them.
const (
	ScopeVMStart    = "vm-start"
	ScopeNAT        = "nat"
	ScopeImageBuild = "image-build"
	ScopeDiskResize = "disk-resize"
	ScopeSSH        = "ssh"
	ScopeDNS        = "dns"
	ScopeDaemon     = "daemon"
)

// Scopes lists every scope in report order.
func Scopes() []string {
	return []string{ScopeVMStart, ScopeNAT, ScopeImageBuild, ScopeDiskResize, ScopeSSH, ScopeDNS, ScopeDaemon}
}

// scopeAction says in words what a scope's preflight guards.
var scopeAction = map[string]string{
	ScopeVMStart:    "start a VM",
	ScopeNAT:        "change NAT",
	ScopeImageBuild: "build an image",
	ScopeDiskResize: "resize the disk",
	ScopeSSH:        "ssh into the VM",
	ScopeDNS:        "serve VM names",
	ScopeDaemon:     "talk to the daemon",
}

// Check is one host check.
type Check struct {
	Name   string   // kebab-case, unique
	Scopes []string // the scopes that run it
	// Run probes the host. It returns Status, Detail and Fix; Run fills in
	// Name and Scope.
	Run func(ctx context.Context, env *Env) api.CheckResult
}

// CheckTimeout bounds one check; a check that hangs (a stuck sudo, an
// unresponsive daemon) fails instead of stalling `banger doctor`.
const CheckTimeout = 15 * time.Second

// maxParallel bounds how many checks run at once (they mostly wait on small
// programs and files; a few at a time keeps a 2-core host responsive).
const maxParallel = 4

// ValidateScopes refuses unknown scope names.
func ValidateScopes(scopes []string) error {
	for _, s := range scopes {
		if !slices.Contains(Scopes(), s) {
			return api.NewError(api.CodeInvalidArgument,
				fmt.Sprintf("unknown doctor scope %q", s),
				"use one of: "+strings.Join(Scopes(), ", "))
		}
	}
	return nil
}

// Run runs banger's checks of the given scopes (none = all) and returns their
// results in report order, each stamped with its scope. An unknown scope
// yields a single failed result naming the valid ones.
func Run(ctx context.Context, env *Env, scopes []string) []api.CheckResult {
	return RunChecks(ctx, env, All(), scopes)
}

// RunChecks runs the checks that belong to scopes (none = all scopes) in
// parallel, at most maxParallel at a time, and returns the results in the
// order of checks. A check in several selected scopes runs once and is
// stamped with the first of them in report order.
func RunChecks(ctx context.Context, env *Env, checks []Check, scopes []string) []api.CheckResult {
	if err := ValidateScopes(scopes); err != nil {
		e := err.(*api.Error)
		return []api.CheckResult{{Name: "scope", Status: api.CheckFail, Detail: e.Message, Fix: e.Hint}}
	}
	if env == nil {
		env = &Env{}
	}
	selected := scopes
	if len(selected) == 0 {
		selected = Scopes()
	}
	type job struct {
		check Check
		scope string
	}
	var jobs []job
	for _, c := range checks {
		for _, s := range Scopes() { // report order, not request order
			if slices.Contains(selected, s) && slices.Contains(c.Scopes, s) {
				jobs = append(jobs, job{c, s})
				break
			}
		}
	}
	results := make([]api.CheckResult, len(jobs))
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r := runOne(ctx, env, j.check)
			r.Name, r.Scope = j.check.Name, j.scope
			results[i] = r
		}()
	}
	wg.Wait()
	return results
}

// runOne runs a check under a deadline and turns a panic into a failed
// result, so one broken probe cannot take the daemon down.
func runOne(ctx context.Context, env *Env, c Check) (res api.CheckResult) {
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	done := make(chan api.CheckResult, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- api.CheckResult{Status: api.CheckFail,
					Detail: fmt.Sprintf("check %s crashed: %v", c.Name, p),
					Fix:    "report this as a banger bug with the output of `banger doctor`"}
			}
		}()
		done <- c.Run(ctx, env)
	}()
	select {
	case r := <-done:
		return r
	case <-ctx.Done():
		return api.CheckResult{Status: api.CheckFail,
			Detail: fmt.Sprintf("check did not finish: %v", ctx.Err()),
			Fix:    "run `banger doctor --scope " + firstScope(c) + "` again; if it hangs, look for a stuck sudo or daemon process"}
	}
}

func firstScope(c Check) string {
	if len(c.Scopes) > 0 {
		return c.Scopes[0]
	}
	return ""
}

// Failed returns the results whose status is fail.
func Failed(results []api.CheckResult) []api.CheckResult {
	var out []api.CheckResult
	for _, r := range results {
		if r.Status == api.CheckFail {
			out = append(out, r)
		}
	}
	return out
}

// Preflight runs scope's checks before an operation that changes the host.
// It returns nil when every check passed or only warned, and otherwise an
// *api.Error with Code failed_precondition whose message lists each failing
// check's detail and whose hint lists each fix, in the same order. Callers
// run it before changing anything, so a refusal leaves nothing to undo.
func Preflight(ctx context.Context, env *Env, scope string) error {
	if err := ValidateScopes([]string{scope}); err != nil {
		return err
	}
	return preflightOf(scope, Run(ctx, env, []string{scope}))
}

func preflightOf(scope string, results []api.CheckResult) error {
	failed := Failed(results)
	if len(failed) == 0 {
		return nil
	}
	details := make([]string, len(failed))
	fixes := make([]string, 0, len(failed))
	for i, r := range failed {
		details[i] = r.Name + ": " + r.Detail
		if r.Fix != "" {
			fixes = append(fixes, r.Name+": "+r.Fix)
		}
	}
	action := scopeAction[scope]
	if action == "" {
		action = scope
	}
	noun := "check"
	if len(failed) > 1 {
		noun = "checks"
	}
	msg := fmt.Sprintf("cannot %s: %d host %s failed (nothing was changed): %s",
		action, len(failed), noun, strings.Join(details, "; "))
	return &api.Error{Code: api.CodeFailedPrecondition, Message: msg, Hint: strings.Join(fixes, "; ")}
}

// result constructors keep checks short.
func ok(detail string) api.CheckResult { return api.CheckResult{Status: api.CheckOK, Detail: detail} }
func warn(detail, fix string) api.CheckResult {
	return api.CheckResult{Status: api.CheckWarn, Detail: detail, Fix: fix}
}
func fail(detail, fix string) api.CheckResult {
	return api.CheckResult{Status: api.CheckFail, Detail: detail, Fix: fix}
}

// notChecked is the result of a check whose input the caller did not supply.
// bangerd supplies every input, so reaching it from `banger doctor` is a
// wiring bug; it still carries a fix, as every warning does.
func notChecked(why string) api.CheckResult {
	return api.CheckResult{Status: api.CheckWarn, Detail: "not checked: " + why, Fix: notCheckedFix}
}

const notCheckedFix = "run `banger doctor`, which supplies it; if this came from `banger doctor`, report it as a banger bug"

// skipped is the result of a check that does not apply to this call (e.g.
// vm-stopped when no VM is named): not a warning, and nothing to fix.
func skipped(why string) api.CheckResult {
	return api.CheckResult{Status: api.CheckSkip, Detail: why}
}

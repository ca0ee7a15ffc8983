#!/usr/bin/env bash
# Runs every Go fuzz target in the repository for FUZZTIME executions (default 20000x),
# starting from its committed seed corpus. A crash fails the run and leaves
# the failing input under the package's testdata/fuzz for go test to replay.
# Every target runs even when one fails; the last line is the tier summary
# ("fuzz: N passed, N failed, 0 skipped").
set -euo pipefail
cd "$(dirname "$0")/.."
go=${GO:-go}
fuzztime=${FUZZTIME:-20000x} # a count: see the Makefile
passed=0
failed=0
failures=()
while IFS=: read -r file _ line; do
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$line")
	pkg=./$(dirname "$file")
	echo "fuzz $pkg $name ($fuzztime)"
	if "$go" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failures+=("$pkg $name")
	fi
done < <(git grep -n -E '^func Fuzz[A-Za-z0-9_]*\(' -- '*_test.go')
if [ "$failed" -gt 0 ]; then
	echo
	echo "failed:"
	printf '  %s\n' "${failures[@]}"
fi
echo "fuzz: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]

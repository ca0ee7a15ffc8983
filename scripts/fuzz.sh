#!/usr/bin/env bash
# Runs every Go fuzz target in the repository for FUZZTIME executions (default 20000x),
# starting from its committed seed corpus. A crash fails the run and leaves
# the failing input under the package's testdata/fuzz for go test to replay.
set -euo pipefail
cd "$(dirname "$0")/.."
go=${GO:-go}
fuzztime=${FUZZTIME:-20000x} # a count: see the Makefile
found=0
while IFS=: read -r file _ line; do
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$line")
	pkg=./$(dirname "$file")
	echo "fuzz $pkg $name ($fuzztime)"
	"$go" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"
	found=$((found + 1))
done < <(git grep -n -E '^func Fuzz[A-Za-z0-9_]*\(' -- '*_test.go')
echo "$found fuzz targets run"

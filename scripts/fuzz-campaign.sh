#!/usr/bin/env bash
# A long property-testing campaign over the parsers that take outside input (the COPY
# binary parser and numeric decoding, Lambda events, the S3 location, the committed state
# and run records, the extract options): the same proptest properties the test command
# runs with a modest case count, here with many cases and a fresh random seed each round,
# until the time budget is spent.
#
# A failing input is kept by proptest in the `*.proptest-regressions` file beside its
# test (the regression corpus, committed): every later run, the test command included,
# replays it first.
#
# Usage: scripts/fuzz-campaign.sh [seconds]   (default 600; cases per property per round:
#        FUZZ_CASES, default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-600}
cases=${FUZZ_CASES:-20000}
filter='binary(fuzz) | test(fuzz::)'
cargo nextest run --workspace --no-run -E "$filter" >/dev/null
start=$(date +%s)
round=0
while [ $(( $(date +%s) - start )) -lt "$budget" ]; do
  round=$((round + 1))
  echo "round $round: $cases cases per property ($(( $(date +%s) - start )) s of $budget s)"
  PROPTEST_CASES=$cases cargo nextest run --workspace --no-fail-fast -E "$filter" \
    --status-level fail --final-status-level fail
done
echo "campaign done: $round rounds in $(( $(date +%s) - start )) s, no failing input"
git status --short -- '*.proptest-regressions'

#!/usr/bin/env bash
# Evaluate a prompt experiment in CI with nothing but curl: create it from a spec file, start a
# sweep, wait for it, download the results, and fail the build when the best score is too low.
# With PROMPTLOOPER_EXPERIMENT=ID, the spec replaces that experiment's instead, the new sweep is
# compared with its previous one, and the build fails when a configuration got significantly worse.
#
#   PROMPTLOOPER_URL=https://looper.example.com PROMPTLOOPER_TOKEN=pl_... \
#     examples/ci.sh examples/ticket-triage.yaml 0.8
set -euo pipefail
spec=${1:?usage: ci.sh SPEC.yaml [MIN_SCORE]}
min_score=${2:-0}
api="${PROMPTLOOPER_URL%/}/api/v1"
auth="Authorization: Bearer ${PROMPTLOOPER_TOKEN:?set PROMPTLOOPER_TOKEN (manage.py create_api_token USER)}"

call() {  # on an HTTP error, print the API's explanation and fail
  local body
  body=$(curl --silent --show-error --fail-with-body -H "$auth" "$@") || { echo "$body" >&2; return 1; }
  printf '%s' "$body"
}
field() { grep -o "\"$1\": *[^,}]*" | head -1 | sed 's/^[^:]*: *//; s/"//g'; }  # first "key": value

experiment=${PROMPTLOOPER_EXPERIMENT:-}
baseline=
if [ -n "$experiment" ]; then
  latest=$(call "$api/experiments/$experiment/sweeps?limit=1")
  baseline=$(field id <<<"$latest" || true)  # its latest sweep, if it has one
  call -X PATCH -H "Content-Type: application/yaml" --data-binary "@$spec" "$api/experiments/$experiment" >/dev/null
else
  experiment=$(call -H "Content-Type: application/yaml" --data-binary "@$spec" "$api/experiments" | field id)
fi
sweep=$(call -X POST "$api/experiments/$experiment/sweeps" | field id)
echo "experiment $experiment: sweep $sweep started"
while :; do
  state=$(call "$api/sweeps/$sweep")
  status=$(field status <<<"$state")
  echo "  $status: $(field completed <<<"$state")/$(field total <<<"$state") samples"
  case $status in completed | stopped | paused | failed) break ;; esac
  sleep "${POLL_SECONDS:-5}"
done
call -o results.csv "$api/experiments/$experiment/export?format=csv"
best=$(field best_score <<<"$state")
echo "sweep $sweep $status; best score $best; results in results.csv"
[ "$status" = completed ] || exit 1
if [ -n "$baseline" ]; then
  changes=$(call "$api/sweeps/$baseline/compare/$sweep")
  echo "against sweep $baseline: $(grep -o '"text": *"[^"]*"' <<<"$changes" | sed 's/^[^:]*: *//; s/"//g')"
  [ "$(field worse <<<"$changes")" = 0 ] || exit 1
fi
if ! awk -v best="$best" -v min="$min_score" 'BEGIN { exit !(best != "null" && best + 0 >= min + 0) }'; then
  echo "best score $best is below $min_score"
  exit 1
fi

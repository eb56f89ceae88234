# shellcheck shell=sh
#
# Shared engine of the example components: it behaves like an OpenTofu root
# module (plan, apply, destroy, outputs) without touching any cloud.
#
# A component script sources this file, declares what it manages, then runs
# `simulate "$@"`. It declares:
#
#   APPLY_SECONDS  how long apply (and destroy) takes at EXAMPLE_SPEED=1
#   setup()        optional: sets variables that the functions below share,
#                  once the config is loaded
#   resources()    one line per resource: ADDRESS ID [ATTRIBUTE=VALUE ...],
#                  in creation order. ID may contain {hex} (17 hex digits, as
#                  in vpc-0a1b...), {HEX} (20 upper-case ones) or {uuid}: fake
#                  ids, stable for a given environment, cloud and address.
#                  Attribute values must not contain spaces.
#   outputs()      `output NAME VALUE`, `output_list NAME VALUE...` and
#                  `output_json NAME JSON`, like a root module's outputs.
#   failure()      optional: sets fail_at (an address) and fail_message, the
#                  error that EXAMPLE_FAIL produces on apply.
#
# While declaring, it can use $environment, $cloud, $component, $region
# (aws), $location (azure), $account (aws), $subscription (azure), and:
#
#   cfg KEY [DEFAULT]          a value of the component's config, looked up
#                              under "<cloud>." first, then at the top level;
#                              list items by index: node_pools.0.name
#   cfg_count LIST [DEFAULT]   how many items LIST has
#   id_of ADDRESS              the id a declared resource gets
#   fake hex|HEX|uuid|digits KEY [LENGTH]   a stable fake identifier
#   fake num KEY MAX           a stable fake number below MAX
#   request_id                 a fake cloud API request id, for error messages
#   kube_api                   the API endpoint of this environment's cluster
#
# Inputs (from the orchestrator, all optional when run by hand):
#   ORCHESTRATOR_ENV, ORCHESTRATOR_CLOUD, ORCHESTRATOR_COMPONENT,
#   ORCHESTRATOR_CONFIG (the component's values as JSON),
#   ORCHESTRATOR_OUTPUTS (where apply writes the outputs as one JSON object).
# Knobs for demos and tests: EXAMPLE_SPEED, EXAMPLE_FAIL, EXAMPLE_FLAKY
# (see examples/README.md).
#
# POSIX sh and awk only: it runs under dash and busybox as well as bash.

set -eu
# Addresses such as aws_subnet.private["a"] look like globs: never expand them.
set -f

tab=$(printf '\t')

environment=${ORCHESTRATOR_ENV:-dev}
cloud=${ORCHESTRATOR_CLOUD:-aws}
component=${ORCHESTRATOR_COMPONENT:-$(basename "$(cd "$(dirname "$0")" && pwd)")}
APPLY_SECONDS=1

# Hash-based fake identifiers. Deterministic, so that ids in outputs stay the
# same from one run to the next, as real ones would.
awk_fake='
function fake_init(   c) { for (c = 1; c < 256; c++) fake_ord[sprintf("%c", c)] = c; fake_ready = 1 }
function fake_hash(s, seed,   i, x) {
  if (!fake_ready) fake_init()
  x = seed % 2147483647
  for (i = 1; i <= length(s); i++) x = (x * 131 + fake_ord[substr(s, i, 1)]) % 2147483647
  # Lehmer rounds, so that keys differing in one character look unrelated.
  for (i = 0; i < 4; i++) x = (x * 48271 + 1) % 2147483647
  return x
}
function fake_hex(s, n,   out, k) {
  out = ""
  while (length(out) < n) { k++; out = out sprintf("%07x", fake_hash(s, 7919 * k) % 268435456) }
  return substr(out, 1, n)
}
function fake_digits(s, n,   out, k) {
  out = ""
  while (length(out) < n) { k++; out = out sprintf("%09d", fake_hash(s, 104729 * k) % 1000000000) }
  return substr(out, 1, n)
}
function fake_uuid(s,   h) {
  h = fake_hex(s, 32)
  return substr(h, 1, 8) "-" substr(h, 9, 4) "-4" substr(h, 14, 3) "-" \
    substr("89ab", fake_hash(s, 3) % 4 + 1, 1) substr(h, 18, 3) "-" substr(h, 21, 12)
}
'

fake() {
  awk -v kind="$1" -v key="$2" -v n="${3:-17}" "$awk_fake"'
    BEGIN {
      if (kind == "uuid") print fake_uuid(key)
      else if (kind == "digits") print fake_digits(key, n)
      else if (kind == "HEX") print toupper(fake_hex(key, n))
      else if (kind == "num") print fake_hash(key, 1) % n
      else print fake_hex(key, n)
    }'
}

# JSON to one "path<TAB>value" line per scalar: {"a":{"b":[1,"x"]}} gives
# "a.b.0<TAB>1" and "a.b.1<TAB>x". Nulls, empty lists and empty mappings give
# nothing; escapes other than \" \\ \/ are kept as written, so every value fits
# on one line.
# shellcheck disable=SC2016 # an awk program: its $0 is awk's
awk_flatten='
function fail(msg) { print "invalid JSON: " msg " at character " i | "cat 1>&2"; close("cat 1>&2"); exit 1 }
function skip() { while (i <= n && index(" \t\r\n", substr(s, i, 1)) > 0) i++ }
function str(   out, c) {
  i++
  out = ""
  while (i <= n) {
    c = substr(s, i, 1)
    if (c == "\"") { i++; return out }
    if (c == "\\") {
      c = substr(s, i + 1, 1)
      i += 2
      if (c == "\"" || c == "\\" || c == "/") out = out c
      else out = out "\\" c
      continue
    }
    out = out c
    i++
  }
  fail("unterminated string")
}
function value(p,   c, k, idx, start) {
  skip()
  c = substr(s, i, 1)
  if (c == "{") {
    i++
    skip()
    if (substr(s, i, 1) == "}") { i++; return }
    for (;;) {
      skip()
      if (substr(s, i, 1) != "\"") fail("expected a key")
      k = str()
      skip()
      if (substr(s, i, 1) != ":") fail("expected :")
      i++
      value(p == "" ? k : (p "." k))
      skip()
      c = substr(s, i, 1)
      i++
      if (c == "}") return
      if (c != ",") fail("expected , or }")
    }
  }
  if (c == "[") {
    i++
    skip()
    if (substr(s, i, 1) == "]") { i++; return }
    for (idx = 0; ; idx++) {
      value(p == "" ? idx : (p "." idx))
      skip()
      c = substr(s, i, 1)
      i++
      if (c == "]") return
      if (c != ",") fail("expected , or ]")
    }
  }
  if (c == "\"") { print p "\t" str(); return }
  start = i
  while (i <= n && index(",]} \t\r\n", substr(s, i, 1)) == 0) i++
  if (i == start) fail("expected a value")
  c = substr(s, start, i - start)
  if (c !~ /^(true|false|null|-?[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?)$/) fail("unexpected " c)
  if (c != "null") print p "\t" c
}
{ s = s $0 "\n" }
END {
  n = length(s)
  i = 1
  skip()
  if (i > n) exit 0
  value("")
  skip()
  if (i <= n) fail("unexpected data after the value")
}
'

config_flat=
load_config() {
  if [ -z "${ORCHESTRATOR_CONFIG-}" ]; then
    printf 'note: ORCHESTRATOR_CONFIG is not set; using built-in defaults\n' >&2
    return 0
  fi
  if [ ! -r "$ORCHESTRATOR_CONFIG" ]; then
    error "Failed to read variables file" \
      "Given variables file $ORCHESTRATOR_CONFIG does not exist."
    exit 1
  fi
  if ! config_flat=$(awk "$awk_flatten" "$ORCHESTRATOR_CONFIG"); then
    error "Invalid variables file" "$ORCHESTRATOR_CONFIG is not valid JSON."
    exit 1
  fi
}

cfg() {
  _v=$(printf '%s\n' "$config_flat" | awk -F '\t' -v a="$cloud.$1" -v b="$1" '
    $1 == a { print $2; done = 1; exit }
    $1 == b && !seen { v = $2; seen = 1 }
    END { if (!done && seen) print v }')
  printf '%s\n' "${_v:-${2-}}"
}

cfg_count() {
  _v=$(printf '%s\n' "$config_flat" | awk -F '\t' -v a="$cloud.$1." -v b="$1." '
    function items(prefix, path,   r) {
      if (index(path, prefix) != 1) return 0
      r = substr(path, length(prefix) + 1)
      sub(/[.].*/, "", r)
      return r ~ /^[0-9]+$/ ? r + 1 : 0
    }
    { x = items(a, $1); if (x > na) na = x; x = items(b, $1); if (x > nb) nb = x }
    END { print (na > 0 ? na : nb + 0) }')
  if [ "$_v" -eq 0 ]; then _v=${2:-0}; fi
  printf '%s\n' "$_v"
}

# The cluster's API endpoint, the same in every component of an environment
# and cloud (clusters outputs it; the Helm and Kubernetes components talk to it).
kube_api() {
  case $cloud in
  azure) printf 'https://aks-platform-%s-%s.hcp.%s.azmk8s.io:443\n' \
    "$environment" "$(fake hex "aks/$environment" 8)" "$location" ;;
  *) printf 'https://%s.gr7.%s.eks.amazonaws.com\n' \
    "$(fake HEX "eks/$environment/$cloud" 32)" "$region" ;;
  esac
}

request_id() { fake uuid "request/$environment/$cloud/$component/$action"; }

json_string() {
  case $1 in
  *[\\\"]*) printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')" ;;
  *) printf '"%s"' "$1" ;;
  esac
}

output() { printf '%s\t%s\n' "$1" "$(json_string "$2")"; }
output_json() { printf '%s\t%s\n' "$1" "$2"; }
output_list() {
  _name=$1
  shift
  _json=
  for _item in "$@"; do _json="${_json:+$_json, }$(json_string "$_item")"; done
  printf '%s\t[%s]\n' "$_name" "$_json"
}

id_of() {
  printf '%s\n' "$expanded" | awk -F '\t' -v a="$1" '$1 == a { print $2; exit }'
}

# Errors look like OpenTofu's: "Error: summary", a detail, the resource.
error() {
  {
    printf '\nError: %s\n' "$1"
    if [ -n "${2-}" ]; then printf '\n%s\n' "$2"; fi
    if [ -n "${3-}" ]; then printf '\n  with %s,\n' "$3"; fi
    printf '\n'
  } >&2
}

# Defaults, for components that do not declare them.
setup() { :; }
resources() { :; }
outputs() { :; }
failure() { :; }

# Whether a comma-separated list (EXAMPLE_FAIL, EXAMPLE_FLAKY) names this
# component, either alone or as component:action.
named_in() {
  _list=$(printf '%s' "$1" | tr -d ' ')
  case ",$_list," in
  *",$component,"* | *",$component:$action,"*) return 0 ;;
  esac
  return 1
}

# The kind of API the component talks to, from its first resource.
provider() {
  case $(printf '%s\n' "$expanded" | sed -n 1p) in
  aws_*) echo aws ;;
  azurerm_*) echo azure ;;
  *) echo kubernetes ;;
  esac
}

# A transient failure, of the kind that a retry fixes.
transient_error() { # ADDRESS ID
  _verb=creating
  if [ "$action" = destroy ]; then _verb=deleting; fi
  case $(provider) in
  aws)
    _service=ec2
    case $1 in
    aws_eks_*) _service=eks ;;
    aws_route53_*) _service=route53 ;;
    aws_acm_*) _service=acm ;;
    aws_ecr_*) _service=api.ecr ;;
    aws_iam_*) _service=iam ;;
    esac
    if [ "$action" = plan ]; then
      error "retrieving account details: validating provider credentials: retrieving caller identity from STS: operation error STS: GetCallerIdentity, https response error StatusCode: 0, RequestID: , request send failed, Post \"https://sts.$region.amazonaws.com/\": net/http: TLS handshake timeout"
    else
      error "$_verb $1: operation error: https response error StatusCode: 0, RequestID: , request send failed, Post \"https://$_service.$region.amazonaws.com/\": net/http: TLS handshake timeout" "" "$1"
    fi
    ;;
  azure)
    if [ "$action" = plan ]; then
      error "building account: could not acquire access token to parse claims: clientCredentialsToken: performing request: Post \"https://login.microsoftonline.com/$(fake uuid azure-tenant)/oauth2/v2.0/token\": net/http: TLS handshake timeout"
    else
      _method=PUT
      if [ "$action" = destroy ]; then _method=DELETE; fi
      error "$_verb $1: performing request: $_method \"https://management.azure.com$2?api-version=2024-05-01\": net/http: TLS handshake timeout" "" "$1"
    fi
    ;;
  *)
    error "Kubernetes cluster unreachable: Get \"$(kube_api)/version\": net/http: TLS handshake timeout" "" "$1"
    ;;
  esac
}

# A hard failure: the component's own for apply, a typical one otherwise.
hard_error() { # ADDRESS ID
  case $action:$(provider) in
  apply:*)
    error "${fail_message:-creating $1: unexpected error}" "" "$1"
    ;;
  plan:aws)
    error "No valid credential sources found" "Please see https://search.opentofu.org/provider/hashicorp/aws/latest for more information about providing credentials.

Error: failed to refresh cached credentials, no EC2 IMDS role found, operation error ec2imds: GetMetadata, request canceled, context deadline exceeded"
    ;;
  plan:azure)
    error "building account: could not acquire access token to parse claims: clientCredentialsToken: received HTTP status 401 with response: AADSTS7000222: The provided client secret keys for app '$(fake uuid "app/$environment")' are expired."
    ;;
  plan:*)
    error "Kubernetes cluster unreachable: the server has asked for the client to provide credentials"
    ;;
  destroy:aws)
    error "deleting $1 ($2): operation error: https response error StatusCode: 400, RequestID: $(request_id), api error DependencyViolation: resource $2 has a dependent object" "" "$1"
    ;;
  destroy:azure)
    error "deleting $1: performing Delete: unexpected status 409 (409 Conflict) with error: AnotherOperationInProgress: Another operation on this or dependent resource is in progress." "" "$1"
    ;;
  destroy:*)
    error "deleting $1 ($2): context deadline exceeded: object still has finalizers" "" "$1"
    ;;
  esac
}

# Decides how this run fails, if it does: sets failing to "", hard or flaky.
decide_failure() {
  failing=
  if named_in "${EXAMPLE_FAIL-}"; then
    failing=hard
  elif named_in "${EXAMPLE_FLAKY-}"; then
    # Fails, then succeeds, then fails again...: every run sees one transient
    # error that a single retry gets past.
    _marker=${TMPDIR:-/tmp}/orchestrator-example-flaky.$environment.$cloud.$component
    if [ -e "$_marker" ]; then
      rm -f "$_marker"
    else
      : >"$_marker"
      failing=flaky
    fi
  fi
  fail_at=
  fail_message=
  failure
  if [ -z "$fail_at" ]; then
    fail_at=$(printf '%s\n' "$expanded" | sed -n '$p' | cut -f1)
  fi
}

fail_now() { # ADDRESS ID
  if [ "$failing" = flaky ]; then transient_error "$1" "$2"; else hard_error "$1" "$2"; fi
  exit 1
}

# How long each resource takes, in seconds, so the whole run takes
# APPLY_SECONDS times EXAMPLE_SPEED.
pace() {
  case ${EXAMPLE_SPEED-} in
  '') _speed=1 ;;
  . | *[!0-9.]* | *.*.*)
    printf 'EXAMPLE_SPEED must be a number such as 0, 0.5 or 2, not "%s"\n' "$EXAMPLE_SPEED" >&2
    exit 2
    ;;
  *) _speed=$EXAMPLE_SPEED ;;
  esac
  step=$(awk -v b="$APPLY_SECONDS" -v s="$_speed" -v n="$count" \
    'BEGIN { t = b * s / (n > 0 ? n : 1); if (t > 0) printf "%.3f", t; else print 0 }')
}

pause() {
  if [ "$step" != 0 ]; then sleep "$step" 2>/dev/null || :; fi
}

# What OpenTofu would report as the time a resource took.
took() {
  awk -v a="$1" -v key="$environment/$cloud/$component/$1" "$awk_fake"'
    BEGIN {
      h = fake_hash(key, 11)
      if (a ~ /^(aws_eks_cluster|azurerm_kubernetes_cluster)[.]/) s = 480 + h % 420
      else if (a ~ /^(aws_eks_node_group|azurerm_kubernetes_cluster_node_pool|aws_nat_gateway|aws_acm_certificate_validation|helm_release)[.]/) s = 40 + h % 140
      else s = 1 + h % 12
      if (s < 60) printf "%ds\n", s
      else printf "%dm%ds\n", s / 60, s % 60
    }'
}

do_plan() {
  decide_failure
  if [ -n "$failing" ]; then fail_now "$fail_at" ""; fi
  printf '%s\n' \
    'OpenTofu used the selected providers to generate the following execution' \
    'plan. Resource actions are indicated with the following symbols:' \
    '  + create' \
    '' \
    'OpenTofu will perform the following actions:' \
    ''
  printf '%s\n' "$expanded" | awk -F '\t' '
    function show(v) {
      if (v ~ /^(-?[0-9]+|true|false|\[.*\])$/) return v
      return "\"" v "\""
    }
    {
      type = $1; sub(/[.].*/, "", type)
      name = substr($1, length(type) + 2); sub(/\[.*/, "", name)
      m = 0; width = 2
      key[++m] = "id"; val["id"] = "(known after apply)"
      for (f = 3; f <= NF; f++) {
        k = $f; sub(/=.*/, "", k)
        key[++m] = k; val[k] = show(substr($f, length(k) + 2))
      }
      for (x = 2; x <= m; x++) for (y = x; y > 1 && key[y - 1] > key[y]; y--) { t = key[y]; key[y] = key[y - 1]; key[y - 1] = t }
      for (x = 1; x <= m; x++) if (length(key[x]) > width) width = length(key[x])
      printf "  # %s will be created\n  + resource \"%s\" \"%s\" {\n", $1, type, name
      for (x = 1; x <= m; x++) printf "      + %-" width "s = %s\n", key[x], val[key[x]]
      printf "    }\n\n"
      split("", val)
    }'
  printf 'Plan: %d to add, 0 to change, 0 to destroy.\n' "$count"
  _outputs=$(outputs | cut -f1 | LC_ALL=C sort)
  if [ -n "$_outputs" ]; then
    printf '\nChanges to Outputs:\n'
    printf '%s\n' "$_outputs" | awk '{ names[NR] = $0; if (length($0) > w) w = length($0) }
      END { for (i = 1; i <= NR; i++) printf "  + %-" w "s = (known after apply)\n", names[i] }'
  fi
  if [ -z "${TF_IN_AUTOMATION-}" ]; then
    printf '%s\n' '' \
      '─────────────────────────────────────────────────────────────────────────────' \
      '' \
      'Note: You didn'"'"'t use the -out option to save this plan, so OpenTofu can'"'"'t' \
      'guarantee to take exactly these actions if you run "tofu apply" now.'
  fi
}

write_outputs() { # LINES (name<TAB>json)
  if [ -z "${ORCHESTRATOR_OUTPUTS-}" ]; then return 0; fi
  _tmp=$ORCHESTRATOR_OUTPUTS.tmp.$$
  printf '%s\n' "$1" | awk -F '\t' '
    NF == 0 { next }
    { printf "%s\n  \"%s\": %s", (n++ ? "," : "{"), $1, substr($0, length($1) + 2) }
    END { print (n ? "\n}" : "{}") }' >"$_tmp"
  mv -f "$_tmp" "$ORCHESTRATOR_OUTPUTS"
}

do_apply() {
  decide_failure
  while IFS="$tab" read -r _address _id _attributes; do
    printf '%s: Creating...\n' "$_address"
    pause
    if [ -n "$failing" ] && [ "$_address" = "$fail_at" ]; then fail_now "$_address" "$_id"; fi
    printf '%s: Creation complete after %s [id=%s]\n' "$_address" "$(took "$_address")" "$_id"
  done <<EOF
$expanded
EOF
  printf '\nApply complete! Resources: %d added, 0 changed, 0 destroyed.\n' "$count"
  _outputs=$(outputs | LC_ALL=C sort)
  if [ -n "$_outputs" ]; then
    printf '\nOutputs:\n\n'
    printf '%s\n' "$_outputs" | awk -F '\t' '{ print $1 " = " substr($0, length($1) + 2) }'
  fi
  write_outputs "$_outputs"
}

do_destroy() {
  decide_failure
  _reversed=$(printf '%s\n' "$expanded" | awk '{ line[NR] = $0 } END { for (i = NR; i > 0; i--) print line[i] }')
  while IFS="$tab" read -r _address _id _attributes; do
    printf '%s: Destroying... [id=%s]\n' "$_address" "$_id"
    pause
    if [ -n "$failing" ] && [ "$_address" = "$fail_at" ]; then fail_now "$_address" "$_id"; fi
    printf '%s: Destruction complete after %s\n' "$_address" "$(took "$_address")"
  done <<EOF
$_reversed
EOF
  printf '\nDestroy complete! Resources: %d destroyed.\n' "$count"
  write_outputs ""
}

interrupted() {
  printf '\nInterrupt received.\nPlease wait for OpenTofu to exit or data loss may occur.\nGracefully shutting down...\n'
  error "execution halted"
  exit "$1"
}

simulate() {
  action=${1-}
  case $action in
  plan | apply | destroy) ;;
  *)
    printf 'usage: %s plan|apply|destroy\n' "$0" >&2
    exit 2
    ;;
  esac
  trap 'interrupted 130' INT
  trap 'interrupted 143' TERM

  load_config
  region=$(cfg region eu-west-1)
  location=$(cfg location westeurope)
  # Fake account and subscription ids, for the component scripts.
  # shellcheck disable=SC2034
  account=$(fake digits "aws-account/$environment" 12)
  # shellcheck disable=SC2034
  subscription=$(fake uuid "azure-subscription/$environment")
  setup

  expanded=$(resources | awk -v key="$environment/$cloud/$component/" "$awk_fake"'
    function put(id, token, value,   p) {
      while ((p = index(id, token)) > 0) id = substr(id, 1, p - 1) value substr(id, p + length(token))
      return id
    }
    NF == 0 || $1 ~ /^#/ { next }
    {
      id = put($2, "{hex}", "0" fake_hex(key $1, 16))
      id = put(id, "{HEX}", toupper(fake_hex(key $1, 20)))
      id = put(id, "{uuid}", fake_uuid(key $1))
      line = $1 "\t" id
      for (f = 3; f <= NF; f++) line = line "\t" $f
      print line
    }')
  count=$(printf '%s\n' "$expanded" | awk 'NF > 0 { n++ } END { print n + 0 }')
  pace

  case $action in
  plan) do_plan ;;
  apply) do_apply ;;
  destroy) do_destroy ;;
  esac
}

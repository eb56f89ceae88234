#!/bin/sh
# addons: the cluster add-ons every workload relies on (certificates, ingress,
# DNS records, secrets), one Helm release per entry of `charts`.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../lib/simulate.sh
. "$(dirname "$0")/../lib/simulate.sh"

APPLY_SECONDS=1.5

setup() {
  charts=$(cfg_count charts 1)
}

chart() { cfg "charts.$1.$2" "$3"; }

resources() {
  i=0
  while [ "$i" -lt "$charts" ]; do
    name=$(chart "$i" name ingress-nginx)
    namespace=$(chart "$i" namespace "$name")
    echo "helm_release.this[\"$name\"] $namespace/$name chart=$(chart "$i" chart "$name") namespace=$namespace repository=$(chart "$i" repository https://kubernetes.github.io/ingress-nginx) version=$(chart "$i" version 4.11.3)"
    i=$((i + 1))
  done
}

outputs() {
  output ingress_class nginx
  if [ "$cloud" = azure ]; then
    output load_balancer_ip "20.$(fake num "lb/$environment/1" 200).$(fake num "lb/$environment/2" 250).$(fake num "lb/$environment/3" 250)"
  else
    output load_balancer_hostname "k8s-ingressn-ingressn-$(fake hex "nlb/$environment" 10)-$(fake hex "nlb/$environment/2" 16).elb.$region.amazonaws.com"
  fi
  # The chart versions actually installed: name -> version.
  json=
  i=0
  while [ "$i" -lt "$charts" ]; do
    json="${json:+$json, }$(json_string "$(chart "$i" name ingress-nginx)"): $(json_string "$(chart "$i" version 4.11.3)")"
    i=$((i + 1))
  done
  output_json releases "{$json}"
}

failure() {
  # The ingress controller is the release that most often fails to become
  # ready (its load balancer has to be provisioned first).
  fail_at='helm_release.this["ingress-nginx"]'
  if [ -z "$(id_of "$fail_at")" ]; then
    fail_at=helm_release.this[\"$(chart 0 name ingress-nginx)\"]
  fi
  name=${fail_at#*\"}
  name=${name%\"*}
  fail_message="release $name failed, and has been uninstalled due to atomic being set: timed out waiting for the condition"
}

simulate "$@"

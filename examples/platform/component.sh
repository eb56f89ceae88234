#!/bin/sh
# platform: the product's own services, deployed to the cluster from the
# registry and published through the ingress under the environment's zone.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../lib/simulate.sh
. "$(dirname "$0")/../lib/simulate.sh"

APPLY_SECONDS=1

setup() {
  services=$(cfg_count services 1)
  hostname=$(cfg hostname "app.$environment.platform.example.com")
  if [ "$cloud" = azure ]; then
    registry=$(cfg registry "acrplatform$environment.azurecr.io")
  else
    registry=$(cfg registry "$account.dkr.ecr.$region.amazonaws.com")
  fi
}

service() { cfg "services.$1.$2" "$3"; }
image() { echo "$registry/platform/$(service "$1" name api):$(service "$1" image_tag latest)"; }

resources() {
  echo "kubernetes_namespace.platform platform"
  i=0
  while [ "$i" -lt "$services" ]; do
    name=$(service "$i" name api)
    echo "kubernetes_deployment.this[\"$name\"] platform/$name image=$(image "$i") replicas=$(service "$i" replicas 1)"
    echo "kubernetes_service.this[\"$name\"] platform/$name"
    i=$((i + 1))
  done
  echo "kubernetes_ingress_v1.platform platform/platform host=$hostname ingress_class_name=nginx"
}

outputs() {
  output url "https://$hostname"
  # What runs where: service -> image.
  json=
  i=0
  while [ "$i" -lt "$services" ]; do
    json="${json:+$json, }$(json_string "$(service "$i" name api)"): $(json_string "$(image "$i")")"
    i=$((i + 1))
  done
  output_json images "{$json}"
}

failure() {
  name=$(service 0 name api)
  fail_at="kubernetes_deployment.this[\"$name\"]"
  fail_message="Waiting for rollout to finish: 0 of $(service 0 replicas 1) updated replicas are available..."
}

simulate "$@"

#!/bin/sh
# registry: the container registry the platform's images are pulled from
# (ECR repositories on aws, one Azure Container Registry on azure).
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../lib/simulate.sh
. "$(dirname "$0")/../lib/simulate.sh"

APPLY_SECONDS=0.4

setup() {
  repositories=$(cfg_count repositories 1)
  resource_group=$(cfg resource_group "rg-platform-$environment-registry")
  # Registry names are global and alphanumeric only.
  registry_name=$(cfg registry_name "acrplatform$environment")
}

repository() { cfg "repositories.$1" platform/api; }

resources() {
  if [ "$cloud" = azure ]; then
    arm=/subscriptions/$subscription/resourceGroups/$resource_group
    echo "azurerm_resource_group.registry $arm location=$location"
    echo "azurerm_container_registry.main $arm/providers/Microsoft.ContainerRegistry/registries/$registry_name admin_enabled=false sku=$(cfg sku Basic)"
    echo "azurerm_container_registry_task.purge $arm/providers/Microsoft.ContainerRegistry/registries/$registry_name/tasks/purge-untagged keep=$(cfg keep_last_images 30)"
    return
  fi
  i=0
  while [ "$i" -lt "$repositories" ]; do
    repo=$(repository "$i")
    echo "aws_ecr_repository.this[\"$repo\"] $repo image_tag_mutability=$(cfg image_tag_mutability MUTABLE) scan_on_push=$(cfg scan_on_push true)"
    echo "aws_ecr_lifecycle_policy.this[\"$repo\"] $repo keep_last_images=$(cfg keep_last_images 30)"
    i=$((i + 1))
  done
  if [ "$(cfg_count replicate_to)" -gt 0 ]; then
    echo "aws_ecr_replication_configuration.main $account destination_region=$(cfg replicate_to.0)"
  fi
}

outputs() {
  if [ "$cloud" = azure ]; then
    output registry_id "$(id_of azurerm_container_registry.main)"
    output registry_url "$registry_name.azurecr.io"
    return
  fi
  output registry_url "$account.dkr.ecr.$region.amazonaws.com"
  set --
  i=0
  while [ "$i" -lt "$repositories" ]; do
    set -- "$@" "$account.dkr.ecr.$region.amazonaws.com/$(repository "$i")"
    i=$((i + 1))
  done
  output_list repository_urls "$@"
}

failure() {
  if [ "$cloud" = azure ]; then
    fail_at=azurerm_container_registry.main
    fail_message="creating Registry (Subscription: \"$subscription\" / Resource Group Name: \"$resource_group\" / Registry Name: \"$registry_name\"): performing Create: unexpected status 400 (400 Bad Request) with error: AlreadyInUse: The registry DNS name $registry_name.azurecr.io is already in use. You can check if the name is already claimed using following API: https://docs.microsoft.com/en-us/rest/api/containerregistry/registries/checknameavailability"
    return
  fi
  repo=$(repository 0)
  fail_at="aws_ecr_repository.this[\"$repo\"]"
  fail_message="creating ECR Repository ($repo): operation error ECR: CreateRepository, https response error StatusCode: 400, RequestID: $(request_id), RepositoryAlreadyExistsException: The repository with name '$repo' already exists in the registry with id '$account'"
}

simulate "$@"

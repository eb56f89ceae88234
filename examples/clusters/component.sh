#!/bin/sh
# clusters: the Kubernetes control plane (EKS on aws, AKS on azure), its node
# pools, and the OIDC issuer that workloads use to get cloud credentials.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../lib/simulate.sh
. "$(dirname "$0")/../lib/simulate.sh"

APPLY_SECONDS=2

setup() {
  version=$(cfg kubernetes.version 1.31)
  pools=$(cfg_count node_pools 1)
  resource_group=$(cfg resource_group "rg-platform-$environment-clusters")
  if [ "$cloud" = azure ]; then
    cluster=$(cfg cluster_name "aks-platform-$environment")
    arm=/subscriptions/$subscription/resourceGroups/$resource_group
    aks=$arm/providers/Microsoft.ContainerService/managedClusters/$cluster
  else
    cluster=$(cfg cluster_name "platform-$environment")
    # EKS names the OIDC issuer after the API endpoint's id.
    issuer=oidc.eks.$region.amazonaws.com/id/$(kube_api | sed 's|https://||; s|\..*||')
  fi
}

pool() { cfg "node_pools.$1.$2" "$3"; }
pool_name() {
  if [ "$1" -eq 0 ]; then pool 0 name system; else pool "$1" name "pool$1"; fi
}

resources() {
  if [ "$cloud" = azure ]; then
    echo "azurerm_resource_group.clusters $arm location=$location"
    # AKS keeps its first (system) pool inside the cluster resource.
    echo "azurerm_kubernetes_cluster.main $aks default_node_pool.name=$(pool_name 0) default_node_pool.node_count=$(pool 0 node_count 1) default_node_pool.vm_size=$(pool 0 vm_size Standard_D2s_v5) kubernetes_version=$version oidc_issuer_enabled=true"
    i=1
    while [ "$i" -lt "$pools" ]; do
      name=$(pool_name "$i")
      echo "azurerm_kubernetes_cluster_node_pool.this[\"$name\"] $aks/agentPools/$name max_count=$(pool "$i" max_count 3) min_count=$(pool "$i" min_count 1) vm_size=$(pool "$i" vm_size Standard_D4s_v5)"
      i=$((i + 1))
    done
    return
  fi
  echo "aws_iam_role.cluster $cluster-cluster"
  echo "aws_eks_cluster.main $cluster endpoint_public_access=$(cfg endpoint_public_access false) kubernetes_network_config.service_ipv4_cidr=$(cfg service_ipv4_cidr 172.20.0.0/16) version=$version"
  echo "aws_iam_openid_connect_provider.cluster arn:aws:iam::$account:oidc-provider/$issuer"
  echo "aws_iam_role.nodes $cluster-nodes"
  i=0
  while [ "$i" -lt "$pools" ]; do
    name=$(pool_name "$i")
    echo "aws_eks_node_group.this[\"$name\"] $cluster:$name capacity_type=$(pool "$i" capacity_type ON_DEMAND) desired_size=$(pool "$i" desired_size 1) instance_types=[\"$(pool "$i" instance_types.0 t3.large)\"] max_size=$(pool "$i" max_size 2) min_size=$(pool "$i" min_size 1)"
    i=$((i + 1))
  done
  for addon in vpc-cni coredns kube-proxy; do
    echo "aws_eks_addon.this[\"$addon\"] $cluster:$addon"
  done
}

outputs() {
  output cluster_name "$cluster"
  output cluster_endpoint "$(kube_api)"
  output cluster_version "$version"
  if [ "$cloud" = azure ]; then
    output oidc_issuer_url "https://$location.oic.prod-aks.azure.com/$(fake uuid "azure-tenant")/$(fake uuid "aks-issuer/$environment")/"
  else
    output oidc_issuer_url "https://$issuer"
  fi
  set --
  i=0
  while [ "$i" -lt "$pools" ]; do
    set -- "$@" "$(pool_name "$i")"
    i=$((i + 1))
  done
  output_list node_pools "$@"
}

failure() {
  if [ "$cloud" = azure ]; then
    fail_at=azurerm_kubernetes_cluster.main
    fail_message="creating Kubernetes Cluster (Subscription: \"$subscription\" / Resource Group Name: \"$resource_group\" / Kubernetes Cluster Name: \"$cluster\"): performing CreateOrUpdate: unexpected status 400 (400 Bad Request) with error: K8sVersionNotSupported: Managed cluster $cluster is on version $version, which is not supported in this region. Please use [az aks get-versions] command to get the supported version list in this region."
    return
  fi
  fail_at=aws_eks_cluster.main
  fail_message="creating EKS Cluster ($cluster): operation error EKS: CreateCluster, https response error StatusCode: 400, RequestID: $(request_id), UnsupportedAvailabilityZoneException: Cannot create cluster '$cluster' because ${region}c, the targeted availability zone, does not currently have sufficient capacity to support the cluster. Retry and choose from these availability zones: ${region}a, ${region}b"
}

simulate "$@"

#!/bin/sh
# network: the VPC (aws) or virtual network (azure) that everything else
# lives in, with its subnets and the NAT that gives private nodes egress.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../lib/simulate.sh
. "$(dirname "$0")/../lib/simulate.sh"

APPLY_SECONDS=1.2

setup() {
  resource_group=$(cfg resource_group "rg-platform-$environment-network")
  vnet=vnet-platform-$environment
  arm=/subscriptions/$subscription/resourceGroups/$resource_group/providers/Microsoft.Network
  zones=$(cfg_count availability_zones 2)
}

zone_name() { cfg "availability_zones.$1" "$region$(printf abc | cut -c "$(($1 + 1))")"; }

resources() {
  if [ "$cloud" = azure ]; then
    echo "azurerm_resource_group.network /subscriptions/$subscription/resourceGroups/$resource_group location=$location"
    echo "azurerm_virtual_network.main $arm/virtualNetworks/$vnet address_space=[\"$(cfg address_space 10.0.0.0/16)\"]"
    i=0
    while [ "$i" -lt "$(cfg_count subnets 1)" ]; do
      name=$(cfg "subnets.$i.name" nodes)
      echo "azurerm_subnet.this[\"$name\"] $arm/virtualNetworks/$vnet/subnets/$name address_prefixes=[\"$(cfg "subnets.$i.cidr" 10.0.0.0/18)\"]"
      i=$((i + 1))
    done
    echo "azurerm_public_ip.nat $arm/publicIPAddresses/pip-nat-platform-$environment sku=Standard"
    echo "azurerm_nat_gateway.main $arm/natGateways/ng-platform-$environment"
    return
  fi
  echo "aws_vpc.main vpc-{hex} cidr_block=$(cfg vpc_cidr 10.0.0.0/16)"
  echo "aws_internet_gateway.main igw-{hex}"
  i=0
  while [ "$i" -lt "$zones" ]; do
    echo "aws_subnet.private[\"$(zone_name "$i")\"] subnet-{hex} availability_zone=$(zone_name "$i") cidr_block=$(cfg "private_subnets.$i" "10.0.$((i * 32)).0/19")"
    echo "aws_subnet.public[\"$(zone_name "$i")\"] subnet-{hex} availability_zone=$(zone_name "$i") cidr_block=$(cfg "public_subnets.$i" "10.0.$((i + 96)).0/24")"
    i=$((i + 1))
  done
  i=0
  while [ "$i" -lt "$(cfg nat_gateways 1)" ]; do
    echo "aws_eip.nat[$i] eipalloc-{hex} domain=vpc"
    echo "aws_nat_gateway.main[$i] nat-{hex}"
    echo "aws_route_table.private[$i] rtb-{hex}"
    i=$((i + 1))
  done
  days=$(cfg flow_log_retention_days)
  if [ -n "$days" ]; then
    echo "aws_cloudwatch_log_group.flow_logs /aws/vpc/platform-$environment/flow-logs retention_in_days=$days"
    echo "aws_flow_log.main fl-{hex} traffic_type=ALL"
  fi
}

outputs() {
  if [ "$cloud" = azure ]; then
    output resource_group "$resource_group"
    output vnet_id "$(id_of azurerm_virtual_network.main)"
    output address_space "$(cfg address_space 10.0.0.0/16)"
    output node_subnet_id "$(id_of "azurerm_subnet.this[\"$(cfg subnets.0.name nodes)\"]")"
    return
  fi
  output vpc_id "$(id_of aws_vpc.main)"
  output vpc_cidr "$(cfg vpc_cidr 10.0.0.0/16)"
  set --
  i=0
  while [ "$i" -lt "$zones" ]; do
    set -- "$@" "$(zone_name "$i")"
    i=$((i + 1))
  done
  output_list availability_zones "$@"
  for kind in private public; do
    set --
    i=0
    while [ "$i" -lt "$zones" ]; do
      set -- "$@" "$(id_of "aws_subnet.${kind}[\"$(zone_name "$i")\"]")"
      i=$((i + 1))
    done
    output_list "${kind}_subnet_ids" "$@"
  done
}

failure() {
  if [ "$cloud" = azure ]; then
    name=$(cfg subnets.0.name nodes)
    fail_at="azurerm_subnet.this[\"$name\"]"
    fail_message="creating Subnet (Subscription: \"$subscription\" / Resource Group Name: \"$resource_group\" / Virtual Network Name: \"$vnet\" / Subnet Name: \"$name\"): performing CreateOrUpdate: unexpected status 400 (400 Bad Request) with error: NetcfgSubnetRangeOutsideVnet: Subnet '$name' is not valid because its IP address range is outside the IP address range of virtual network '$vnet'."
    return
  fi
  fail_at="aws_eip.nat[0]"
  fail_message="creating EC2 EIP: operation error EC2: AllocateAddress, https response error StatusCode: 400, RequestID: $(request_id), api error AddressLimitExceeded: The maximum number of addresses has been reached."
}

simulate "$@"

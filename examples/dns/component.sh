#!/bin/sh
# dns: the environment's public DNS zone and its delegation from the parent
# zone, the internal zone attached to the network, and the wildcard TLS
# certificate the ingress serves.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../lib/simulate.sh
. "$(dirname "$0")/../lib/simulate.sh"

APPLY_SECONDS=0.6

setup() {
  zone=$(cfg zone "$environment.platform.example.com")
  parent=$(cfg parent_zone)
  internal=$(cfg internal_zone "internal.$zone")
  resource_group=$(cfg resource_group "rg-platform-$environment-dns")
  zone_id=Z$(fake HEX "route53/$zone" 20)
  certificate=arn:aws:acm:$region:$account:certificate/$(fake uuid "acm/$zone")
}

resources() {
  if [ "$cloud" = azure ]; then
    arm=/subscriptions/$subscription/resourceGroups/$resource_group
    echo "azurerm_resource_group.dns $arm location=$location"
    echo "azurerm_dns_zone.main $arm/providers/Microsoft.Network/dnsZones/$zone name=$zone"
    echo "azurerm_dns_caa_record.main $arm/providers/Microsoft.Network/dnsZones/$zone/CAA/@ ttl=$(cfg ttl 300)"
    echo "azurerm_private_dns_zone.internal $arm/providers/Microsoft.Network/privateDnsZones/$internal name=$internal"
    echo "azurerm_private_dns_zone_virtual_network_link.internal $arm/providers/Microsoft.Network/privateDnsZones/$internal/virtualNetworkLinks/vnet-platform-$environment registration_enabled=false"
    return
  fi
  echo "aws_route53_zone.main $zone_id name=$zone"
  if [ -n "$parent" ]; then
    echo "aws_route53_record.delegation Z$(fake HEX "route53/$parent" 20)_${zone}_NS name=$zone type=NS zone=$parent"
  fi
  echo "aws_route53_record.caa ${zone_id}_${zone}_CAA ttl=$(cfg ttl 300) type=CAA"
  echo "aws_route53_zone.internal Z{HEX} name=$internal private_zone=true"
  echo "aws_acm_certificate.wildcard $certificate domain_name=*.$zone validation_method=DNS"
  echo "aws_route53_record.certificate_validation ${zone_id}__$(fake hex "acm-validation/$zone" 32).${zone}_CNAME type=CNAME"
  echo "aws_acm_certificate_validation.wildcard $certificate"
}

outputs() {
  output zone_name "$zone"
  output internal_zone_name "$internal"
  if [ "$cloud" = azure ]; then
    output zone_id "$(id_of azurerm_dns_zone.main)"
    n=$(fake num "azure-dns/$zone" 10)
    output_list name_servers "ns1-0$n.azure-dns.com." "ns2-0$n.azure-dns.net." "ns3-0$n.azure-dns.org." "ns4-0$n.azure-dns.info."
    return
  fi
  output zone_id "$zone_id"
  set --
  for tld in com net org co.uk; do
    set -- "$@" "ns-$(fake num "route53-ns/$zone/$tld" 2048).awsdns-$(fake num "route53-ns/$zone/$tld/n" 64).$tld"
  done
  output_list name_servers "$@"
  output certificate_arn "$certificate"
}

failure() {
  if [ "$cloud" = azure ]; then
    fail_at=azurerm_dns_zone.main
    fail_message="creating DNS Zone (Subscription: \"$subscription\" / Resource Group Name: \"$resource_group\" / Dns Zone Name: \"$zone\"): performing CreateOrUpdate: unexpected status 409 (409 Conflict) with error: PreconditionFailed: The Zone $zone exists already and hence cannot be created again."
    return
  fi
  fail_at=aws_route53_zone.main
  fail_message="creating Route53 Hosted Zone ($zone): operation error Route 53: CreateHostedZone, https response error StatusCode: 400, RequestID: $(request_id), HostedZoneAlreadyExists: A hosted zone has already been created with the specified caller reference."
}

simulate "$@"

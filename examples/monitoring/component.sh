#!/bin/sh
# monitoring: Prometheus, Alertmanager and Grafana (kube-prometheus-stack),
# plus the object storage that keeps metrics past the in-cluster retention.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../lib/simulate.sh
. "$(dirname "$0")/../lib/simulate.sh"

APPLY_SECONDS=0.9

setup() {
  chart=$(cfg chart.name kube-prometheus-stack)
  archive=platform-$environment-metrics-$account
  storage_account=stplatform${environment}metrics
  resource_group=$(cfg resource_group "rg-platform-$environment-monitoring")
}

resources() {
  echo "kubernetes_namespace.monitoring monitoring"
  echo "helm_release.kube_prometheus_stack monitoring/$chart chart=$chart namespace=monitoring repository=$(cfg chart.repository https://prometheus-community.github.io/helm-charts) version=$(cfg chart.version 65.1.1)"
  echo "kubernetes_config_map.dashboards monitoring/platform-dashboards"
  if [ "$cloud" = azure ]; then
    arm=/subscriptions/$subscription/resourceGroups/$resource_group
    echo "azurerm_storage_account.metrics $arm/providers/Microsoft.Storage/storageAccounts/$storage_account account_replication_type=LRS"
    echo "azurerm_storage_management_policy.metrics $arm/providers/Microsoft.Storage/storageAccounts/$storage_account/managementPolicies/default delete_after_days=$(cfg archive.retention_days 30)"
  else
    echo "aws_s3_bucket.metrics $archive bucket=$archive"
    echo "aws_s3_bucket_lifecycle_configuration.metrics $archive expiration_days=$(cfg archive.retention_days 30)"
  fi
}

outputs() {
  output grafana_url "https://$(cfg grafana.hostname "grafana.$environment.platform.example.com")"
  output prometheus_url "http://$chart-prometheus.monitoring.svc:9090"
  output alertmanager_url "http://$chart-alertmanager.monitoring.svc:9093"
  output prometheus_retention "$(cfg prometheus.retention 7d)"
  if [ "$cloud" = azure ]; then
    output archive_storage_account "$storage_account"
  else
    output archive_bucket "$archive"
  fi
}

failure() {
  fail_at=helm_release.kube_prometheus_stack
  fail_message="release $chart failed, and has been uninstalled due to atomic being set: timed out waiting for the condition"
}

simulate "$@"

"""Resource builders: one `RedisCluster` component (a Memorystore instance and its extras) per cluster."""

from __future__ import annotations

import pulumi
import pulumi_command as command
import pulumi_gcp as gcp

from redisguard.program.config import (
    CONFIG_KEY,
    PROJECT_NAME,
    ClusterConfig,
    StackConfig,
    StackConfigError,
    stack_from_config_values,
)
from redisguard.program.instance import declared_inputs
from redisguard.program.resources import COMPONENT_TYPE, beta_flags_inputs, beta_flags_name, command_provider_name

__all__ = ["COMPONENT_TYPE", "RedisCluster", "build_fleet", "instance_args", "main"]


def instance_args(cluster: ClusterConfig, *, project: str | None, region: str | None) -> gcp.redis.InstanceArgs:
    """The `gcp.redis.Instance` inputs for one cluster: its declared inputs (program/instance.py) as the SDK's args."""
    inputs = declared_inputs(cluster, project=project, region=region)
    maintenance_policy = None
    if "maintenancePolicy" in inputs:
        maintenance_policy = gcp.redis.InstanceMaintenancePolicyArgs(
            weekly_maintenance_windows=[
                gcp.redis.InstanceMaintenancePolicyWeeklyMaintenanceWindowArgs(
                    day=window["day"],
                    start_time=gcp.redis.InstanceMaintenancePolicyWeeklyMaintenanceWindowStartTimeArgs(
                        hours=window["startTime"]["hours"],
                        minutes=window["startTime"]["minutes"],
                        seconds=window["startTime"]["seconds"],
                        nanos=window["startTime"]["nanos"],
                    ),
                )
                for window in inputs["maintenancePolicy"]["weeklyMaintenanceWindows"]
            ]
        )
    persistence = inputs["persistenceConfig"]
    return gcp.redis.InstanceArgs(
        name=inputs["name"],
        display_name=inputs["displayName"],
        memory_size_gb=inputs["memorySizeGb"],
        tier=inputs["tier"],
        redis_version=inputs["redisVersion"],
        auth_enabled=inputs["authEnabled"],
        transit_encryption_mode=inputs["transitEncryptionMode"],
        connect_mode=inputs["connectMode"],
        authorized_network=inputs.get("authorizedNetwork"),
        customer_managed_key=inputs.get("customerManagedKey"),
        location_id=inputs.get("locationId"),
        maintenance_policy=maintenance_policy,
        persistence_config=gcp.redis.InstancePersistenceConfigArgs(
            persistence_mode=persistence["persistenceMode"],
            rdb_snapshot_period=persistence.get("rdbSnapshotPeriod"),
        ),
        redis_configs=inputs.get("redisConfigs"),
        replica_count=inputs.get("replicaCount"),
        read_replicas_mode=inputs.get("readReplicasMode"),
        labels=inputs.get("labels"),
        deletion_protection=inputs["deletionProtection"],
        project=inputs.get("project"),
        region=inputs.get("region"),
    )


def import_id(cluster: ClusterConfig, *, project: str | None, region: str | None) -> str | None:
    """The id Pulumi's `import` option needs to adopt the existing instance (None unless `import_existing`).

    The gcp provider's own import format: `projects/P/locations/R/instances/NAME`, shorter
    when the stack leaves project or region to the provider's defaults.
    """
    if not cluster.import_existing:
        return None
    if project and region:
        return f"projects/{project}/locations/{region}/instances/{cluster.name}"
    if region:
        return f"{region}/{cluster.name}"
    return cluster.name


class RedisCluster(pulumi.ComponentResource):
    """A Memorystore Redis instance built from one cluster entry, plus its beta-flag command."""

    instance: gcp.redis.Instance
    host: pulumi.Output[str]
    port: pulumi.Output[int]
    current_location_id: pulumi.Output[str]
    auth_string: pulumi.Output[str]

    def __init__(
        self,
        cluster: ClusterConfig,
        *,
        project: str | None,
        region: str | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(COMPONENT_TYPE, cluster.name, None, opts)
        command_provider = None
        if cluster.beta_flags is not None:
            # Registered before the instance: when the instance is replaced delete-before-replace (the
            # gcp provider asks for it, the name being the user's), the engine deletes the command
            # (its revert) as soon as the instance is registered, and a default provider would not be
            # registered yet at that point ("unknown provider").
            command_provider = command.Provider(command_provider_name(cluster), opts=pulumi.ResourceOptions(parent=self))
        self.instance = gcp.redis.Instance(
            cluster.name,
            args=instance_args(cluster, project=project, region=region),
            opts=pulumi.ResourceOptions(
                parent=self,
                # The AUTH string stays encrypted in state and masked in every diff and output.
                additional_secret_outputs=["authString"],
                import_=import_id(cluster, project=project, region=region),
            ),
        )
        if cluster.beta_flags is not None:
            # Its inputs (create applies the flags, delete reverts them, triggers re-run it when they
            # change): resources.beta_flags_inputs.
            inputs = beta_flags_inputs(cluster, cluster.beta_flags, project=project, region=region)
            command.local.Command(
                beta_flags_name(cluster),
                create=inputs["create"],
                delete=inputs.get("delete"),
                triggers=inputs["triggers"],
                opts=pulumi.ResourceOptions(
                    parent=self.instance,
                    provider=command_provider,
                    depends_on=[self.instance],
                    delete_before_replace=True,
                    # A replaced instance (new tier, zone, network, key, project, region...) comes
                    # up without the flags while the command's flags are unchanged: replace the
                    # command with it, so the flags are reverted and applied again.
                    replace_with=[self.instance],
                ),
            )
        self.host = self.instance.host
        self.port = self.instance.port
        self.current_location_id = self.instance.current_location_id
        self.auth_string = pulumi.Output.secret(self.instance.auth_string)
        self.register_outputs(
            {
                "host": self.host,
                "port": self.port,
                "current_location_id": self.current_location_id,
                "auth_string": self.auth_string,
            }
        )


def build_fleet(stack: StackConfig) -> dict[str, RedisCluster]:
    """Register one `RedisCluster` per cluster and export its connection details."""
    clusters: dict[str, RedisCluster] = {}
    for cluster in stack.clusters:
        component = RedisCluster(cluster, project=stack.project, region=stack.region)
        clusters[cluster.name] = component
        pulumi.export(
            cluster.name,
            {
                "host": component.host,
                "port": component.port,
                "current_location_id": component.current_location_id,
                "auth_string": component.auth_string,
            },
        )
    return clusters


def stack_from_pulumi_config() -> StackConfig:
    """Read and validate the running stack's config (raises StackConfigError)."""
    names = {CONFIG_KEY: (PROJECT_NAME, "redis"), "gcp:project": ("gcp", "project"), "gcp:region": ("gcp", "region")}
    values = {key: value for key, (namespace, name) in names.items() if (value := pulumi.Config(namespace).get(name)) is not None}
    return stack_from_config_values(pulumi.get_stack(), values)


NOT_UNDER_PULUMI = (
    "redis-fleet is a Pulumi program and runs under the Pulumi engine: "
    "`cd program && pulumi preview --stack staging` (see README.md)"
)


def main() -> dict[str, RedisCluster]:
    """Entry point of the Pulumi program: validate everything, then register resources."""
    if pulumi.runtime.settings.get_monitor() is None:
        # Started as a plain script: without the engine's resource monitor nothing can be
        # registered, and Pulumi's own error would name a made-up stack.
        raise SystemExit(NOT_UNDER_PULUMI)
    try:
        stack = stack_from_pulumi_config()
    except StackConfigError as exc:
        # RunError prints the message without a Python traceback; nothing is registered.
        raise pulumi.RunError(f"invalid {CONFIG_KEY} config in {exc}") from None
    return build_fleet(stack)

//! Kubernetes manifests from a fleet description: a namespace, the gateway (its configuration, Deployment,
//! Service, autoscaler and disruption budget) and one vLLM Deployment with the same companions per replica
//! group. Owns turning the fleet into typed objects and deterministic YAML; it never talks to a cluster, and
//! writing the directory it is given is its only IO.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction, Namespace,
    PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Service, ServicePort, ServiceSpec, Toleration, Volume,
    VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::{Fleet, FleetError};

/// What the export needs besides the fleet: where the objects go and which images run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sOptions {
    /// The namespace every object lives in.
    pub namespace: String,
    /// The image whose entrypoint has the `flywheel` binary on its path.
    pub gateway_image: String,
    /// The vLLM OpenAI-compatible server image.
    pub model_image: String,
    /// The fleet file's text, kept in the ConfigMap as `fleet.toml`; `None` leaves it out.
    pub fleet_toml: Option<String>,
}

impl Default for K8sOptions {
    fn default() -> Self {
        K8sOptions {
            namespace: "flywheel".to_owned(),
            gateway_image: "flywheel:latest".to_owned(),
            model_image: "vllm/vllm-openai:latest".to_owned(),
            fleet_toml: None,
        }
    }
}

/// One file of the export: its name inside the output directory and its YAML text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `<object name>.<kind>.yaml`, or `kustomization.yaml`.
    pub file_name: String,
    /// One YAML document.
    pub yaml: String,
}

const MAX_LABEL_LEN: usize = 63;
const GATEWAY_NAME: &str = "flywheel-gateway";
const CONFIG_NAME: &str = "flywheel-config";
const GATEWAY_PORT: i32 = 8080;
const MODEL_PORT: i32 = 8000;
const CONFIG_DIR: &str = "/etc/flywheel";
const DATA_DIR: &str = "/var/lib/flywheel";
const GATEWAY_REPLICAS: i32 = 2;
const GATEWAY_MAX_REPLICAS: i32 = 10;
const CPU_TARGET_PERCENT: i32 = 70;
const NAME_LABEL: &str = "app.kubernetes.io/name";
const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
const ACCELERATOR_LABEL: &str = "flywheel.dev/accelerator";
const REGION_LABEL: &str = "topology.kubernetes.io/region";

/// Replicas of one model on one accelerator type at one site, with the same chips per replica: one Deployment.
/// Chips per replica are part of the key because one pod template asks for one count.
struct ReplicaGroup {
    name: String,
    site: usize,
    model: usize,
    accelerator: usize,
    chips_per_replica: u32,
    replicas: u32,
}

/// Every object of the export, one manifest each, then `kustomization.yaml` listing them in the same order.
/// The same fleet and options always give byte-identical text.
pub fn kubernetes_manifests(fleet: &Fleet, options: &K8sOptions) -> Result<Vec<Manifest>, FleetError> {
    if !is_dns1123_label(&options.namespace) {
        return Err(FleetError::Export(format!(
            "namespace '{}' is not a DNS-1123 label (lowercase letters, digits and '-', at most 63)",
            options.namespace
        )));
    }
    let groups = replica_groups(fleet);
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(options.namespace.clone()),
            labels: Some(BTreeMap::from([(PART_OF_LABEL.to_owned(), "flywheel".to_owned())])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    let mut manifests = vec![
        manifest(&options.namespace, "namespace", &namespace)?,
        manifest(CONFIG_NAME, "configmap", &config_map(fleet, &groups, options)?)?,
    ];
    let gateway_labels = labels(GATEWAY_NAME, "gateway");
    manifests.extend(workload_manifests(
        &Workload {
            name: GATEWAY_NAME,
            namespace: &options.namespace,
            labels: gateway_labels,
            replicas: GATEWAY_REPLICAS,
            max_replicas: GATEWAY_MAX_REPLICAS,
            port: GATEWAY_PORT,
        },
        gateway_pod(options),
    )?);
    for group in &groups {
        let site = &fleet.sites[group.site];
        let model = &fleet.models[group.model];
        let accelerator = accelerator(fleet, group.accelerator)?;
        for (what, value) in [("region", &site.region), ("accelerator name", &accelerator.name)] {
            if !is_label_value(value) {
                return Err(FleetError::Export(format!(
                    "site '{}': the {what} '{value}' cannot be a node label value (letters, digits, '-', '_', '.', at most 63)",
                    site.name
                )));
            }
        }
        let mut group_labels = labels(&group.name, "model-server");
        group_labels.insert("flywheel.dev/site".to_owned(), dns_label(&site.name));
        group_labels.insert("flywheel.dev/model".to_owned(), dns_label(&model.name));
        group_labels.insert(ACCELERATOR_LABEL.to_owned(), accelerator.name.clone());
        manifests.extend(workload_manifests(
            &Workload {
                name: &group.name,
                namespace: &options.namespace,
                labels: group_labels,
                replicas: replica_count(group.replicas, &group.name)?,
                max_replicas: replica_count(max_replicas(fleet, &groups, group), &group.name)?,
                port: MODEL_PORT,
            },
            model_server_pod(fleet, group, options)?,
        )?);
    }
    let kustomization = Kustomization {
        api_version: "kustomize.config.k8s.io/v1beta1",
        kind: "Kustomization",
        resources: manifests.iter().map(|manifest| manifest.file_name.as_str()).collect(),
    };
    let yaml = to_yaml("kustomization", &kustomization)?;
    manifests.push(Manifest {
        file_name: "kustomization.yaml".to_owned(),
        yaml,
    });
    Ok(manifests)
}

/// Writes the manifests into `directory` (created when missing) and returns the paths written, in order.
pub fn write_kubernetes_manifests(directory: &Path, manifests: &[Manifest]) -> Result<Vec<PathBuf>, FleetError> {
    std::fs::create_dir_all(directory).map_err(|cause| FleetError::io(directory, cause))?;
    manifests
        .iter()
        .map(|manifest| {
            let path = directory.join(&manifest.file_name);
            std::fs::write(&path, &manifest.yaml).map_err(|cause| FleetError::io(&path, cause))?;
            Ok(path)
        })
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Kustomization<'a> {
    api_version: &'static str,
    kind: &'static str,
    resources: Vec<&'a str>,
}

/// The gateway's `flywheel.toml`: it serves the fleet's models through their vLLM Services instead of
/// embedded models (whose files the image does not carry). Mirrors the keys `flywheel up` reads.
#[derive(Serialize)]
struct GatewayConfig<'a> {
    listen: String,
    data_dir: &'static str,
    embedded_models: bool,
    models: Vec<GatewayModel<'a>>,
}

#[derive(Serialize)]
struct GatewayModel<'a> {
    id: &'a str,
    /// `fleet`: the gateway asks the fleet router when started with `--fleet`, and weighs its deployments
    /// evenly otherwise.
    routing: &'static str,
    deployments: Vec<GatewayDeployment<'a>>,
}

#[derive(Serialize)]
struct GatewayDeployment<'a> {
    name: &'a str,
    provider: &'static str,
    base_url: String,
    site: &'a str,
}

fn replica_groups(fleet: &Fleet) -> Vec<ReplicaGroup> {
    let mut counts: BTreeMap<(usize, usize, usize, u32), u32> = BTreeMap::new();
    for replica in &fleet.replicas {
        *counts
            .entry((replica.site, replica.model, replica.accelerator, replica.accelerators))
            .or_default() += 1;
    }
    // The gateway's names are taken first so that no group can shadow them.
    let mut taken = BTreeSet::from([GATEWAY_NAME.to_owned(), CONFIG_NAME.to_owned()]);
    counts
        .into_iter()
        .map(|((site, model, accelerator, chips_per_replica), replicas)| {
            let accelerator_name = fleet
                .accelerators
                .get(accelerator)
                .map_or("accelerator", |accelerator| accelerator.name.as_str());
            let wanted = format!(
                "{}-{}-{accelerator_name}",
                fleet.sites[site].name, fleet.models[model].name
            );
            ReplicaGroup {
                name: unique_label(&wanted, &mut taken),
                site,
                model,
                accelerator,
                chips_per_replica,
                replicas,
            }
        })
        .collect()
}

/// Most replicas a group may scale to: the site's chips of its accelerator, less what the site's other groups
/// on that accelerator hold at their own counts, in whole replicas; never below the group's count. A site
/// that does not list the accelerator leaves no headroom.
fn max_replicas(fleet: &Fleet, groups: &[ReplicaGroup], group: &ReplicaGroup) -> u32 {
    let available: u32 = fleet.sites[group.site]
        .accelerators_available
        .iter()
        .filter(|(name, _)| fleet.accelerators.find(name) == Some(group.accelerator))
        .map(|(_, count)| *count)
        .sum();
    let held_by_others: u32 = groups
        .iter()
        .filter(|other| other.site == group.site && other.accelerator == group.accelerator && other.name != group.name)
        .map(|other| other.replicas.saturating_mul(other.chips_per_replica))
        .sum();
    let headroom = available.saturating_sub(held_by_others) / group.chips_per_replica.max(1);
    headroom.max(group.replicas)
}

fn accelerator(fleet: &Fleet, index: usize) -> Result<&crate::Accelerator, FleetError> {
    fleet
        .accelerators
        .get(index)
        .ok_or_else(|| FleetError::Unknown(format!("no accelerator at index {index}")))
}

fn replica_count(count: u32, name: &str) -> Result<i32, FleetError> {
    i32::try_from(count)
        .map_err(|_| FleetError::Export(format!("{name}: {count} replicas is more than Kubernetes counts")))
}

fn config_map(fleet: &Fleet, groups: &[ReplicaGroup], options: &K8sOptions) -> Result<ConfigMap, FleetError> {
    let models = fleet
        .models
        .iter()
        .enumerate()
        .map(|(index, model)| GatewayModel {
            id: &model.name,
            routing: "fleet",
            deployments: groups
                .iter()
                .filter(|group| group.model == index)
                .map(|group| GatewayDeployment {
                    name: &group.name,
                    provider: "openai",
                    base_url: format!("http://{}.{}.svc:{MODEL_PORT}/v1", group.name, options.namespace),
                    site: &fleet.sites[group.site].name,
                })
                .collect(),
        })
        // The gateway refuses a non-embedded model with nowhere to run.
        .filter(|model| !model.deployments.is_empty())
        .collect();
    let gateway_config = GatewayConfig {
        listen: format!("0.0.0.0:{GATEWAY_PORT}"),
        data_dir: DATA_DIR,
        embedded_models: false,
        models,
    };
    let gateway_toml = toml::to_string(&gateway_config)
        .map_err(|error| FleetError::Export(format!("the gateway's flywheel.toml: {error}")))?;
    let mut data = BTreeMap::from([("flywheel.toml".to_owned(), gateway_toml)]);
    if let Some(fleet_toml) = &options.fleet_toml {
        data.insert("fleet.toml".to_owned(), fleet_toml.clone());
    }
    Ok(ConfigMap {
        metadata: metadata(CONFIG_NAME, &options.namespace, labels(CONFIG_NAME, "config")),
        data: Some(data),
        ..ConfigMap::default()
    })
}

fn gateway_pod(options: &K8sOptions) -> PodSpec {
    let env = [
        ("FLYWHEEL_LISTEN", format!("0.0.0.0:{GATEWAY_PORT}")),
        ("FLYWHEEL_CONFIG", format!("{CONFIG_DIR}/flywheel.toml")),
    ]
    .map(|(name, value)| EnvVar {
        name: name.to_owned(),
        value: Some(value),
        ..EnvVar::default()
    });
    PodSpec {
        containers: vec![Container {
            name: "gateway".to_owned(),
            image: Some(options.gateway_image.clone()),
            command: Some(vec!["flywheel".to_owned(), "up".to_owned()]),
            env: Some(env.to_vec()),
            ports: Some(vec![http_port(GATEWAY_PORT)]),
            // /readyz turns 200 once models and catalog are loaded; /healthz answers as soon as it listens.
            readiness_probe: Some(http_probe("/readyz", GATEWAY_PORT, 5)),
            liveness_probe: Some(http_probe("/healthz", GATEWAY_PORT, 10)),
            resources: Some(ResourceRequirements {
                requests: Some(quantities(&[("cpu", "500m"), ("memory", "512Mi")])),
                limits: Some(quantities(&[("cpu", "2"), ("memory", "2Gi")])),
                ..ResourceRequirements::default()
            }),
            volume_mounts: Some(vec![
                volume_mount("config", CONFIG_DIR, true),
                volume_mount("data", DATA_DIR, false),
            ]),
            ..Container::default()
        }],
        volumes: Some(vec![
            Volume {
                name: "config".to_owned(),
                config_map: Some(ConfigMapVolumeSource {
                    name: CONFIG_NAME.to_owned(),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            },
            // Each pod's own SQLite file; point FLYWHEEL_DATABASE_URL at PostgreSQL to share one ledger.
            empty_dir("data", None),
        ]),
        ..PodSpec::default()
    }
}

fn model_server_pod(fleet: &Fleet, group: &ReplicaGroup, options: &K8sOptions) -> Result<PodSpec, FleetError> {
    let accelerator = accelerator(fleet, group.accelerator)?;
    let chips = group.chips_per_replica.to_string();
    let mut requests = quantities(&[("cpu", "4"), ("memory", "32Gi")]);
    // No CPU limit: throttling a model server's scheduler thread stalls every sequence in its batch.
    let mut limits = quantities(&[("memory", "64Gi")]);
    let mut tolerations = None;
    if let Some(resource) = accelerator.k8s_resource() {
        // Extended resources cannot be overcommitted: request and limit must be equal.
        requests.insert(resource.to_owned(), Quantity(chips.clone()));
        limits.insert(resource.to_owned(), Quantity(chips.clone()));
        // Accelerator node pools are usually tainted with their resource name so other pods stay off them.
        tolerations = Some(vec![Toleration {
            key: Some(resource.to_owned()),
            operator: Some("Exists".to_owned()),
            effect: Some("NoSchedule".to_owned()),
            ..Toleration::default()
        }]);
    }
    // Vendor product labels (nvidia.com/gpu.product and the like) spell the exact SKU and differ between
    // drivers, so nodes are picked by region and by a label the operator sets to the fleet's accelerator name.
    let node_selector = BTreeMap::from([
        (REGION_LABEL.to_owned(), fleet.sites[group.site].region.clone()),
        (ACCELERATOR_LABEL.to_owned(), accelerator.name.clone()),
    ]);
    let args = [
        "--model",
        &fleet.models[group.model].name,
        "--tensor-parallel-size",
        &chips,
        "--port",
        &MODEL_PORT.to_string(),
    ]
    .map(str::to_owned);
    Ok(PodSpec {
        containers: vec![Container {
            name: "vllm".to_owned(),
            image: Some(options.model_image.clone()),
            args: Some(args.to_vec()),
            ports: Some(vec![http_port(MODEL_PORT)]),
            // vLLM answers /health once the weights are loaded; loading takes minutes, hence no liveness probe.
            readiness_probe: Some(http_probe("/health", MODEL_PORT, 10)),
            resources: Some(ResourceRequirements {
                requests: Some(requests),
                limits: Some(limits),
                ..ResourceRequirements::default()
            }),
            volume_mounts: Some(vec![volume_mount("shm", "/dev/shm", false)]),
            ..Container::default()
        }],
        node_selector: Some(node_selector),
        tolerations,
        // Tensor-parallel workers talk through shared memory; a container's default 64 MiB is too little.
        volumes: Some(vec![empty_dir("shm", Some("Memory"))]),
        ..PodSpec::default()
    })
}

/// A Deployment's name, labels and scale: enough for it and its Service, autoscaler and disruption budget.
struct Workload<'a> {
    name: &'a str,
    namespace: &'a str,
    labels: BTreeMap<String, String>,
    replicas: i32,
    max_replicas: i32,
    port: i32,
}

/// The Deployment running `pod`, the Service in front of it, a CPU autoscaler and a disruption budget that
/// lets a drain take one pod at a time.
fn workload_manifests(workload: &Workload, pod: PodSpec) -> Result<Vec<Manifest>, FleetError> {
    let meta = metadata(workload.name, workload.namespace, workload.labels.clone());
    // Selecting on the unique name alone keeps each Deployment's pods its own.
    let selector = BTreeMap::from([
        (NAME_LABEL.to_owned(), workload.name.to_owned()),
        (PART_OF_LABEL.to_owned(), "flywheel".to_owned()),
    ]);
    let label_selector = LabelSelector {
        match_labels: Some(selector.clone()),
        ..LabelSelector::default()
    };
    let deployment = Deployment {
        metadata: meta.clone(),
        spec: DeploymentSpec {
            replicas: Some(workload.replicas),
            selector: label_selector.clone(),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(workload.labels.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    };
    let service = Service {
        metadata: meta.clone(),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: workload.port,
                target_port: Some(IntOrString::String("http".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let autoscaler = HorizontalPodAutoscaler {
        metadata: meta.clone(),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name: workload.name.to_owned(),
            },
            min_replicas: Some(workload.replicas),
            max_replicas: workload.max_replicas.max(workload.replicas),
            metrics: Some(vec![MetricSpec {
                type_: "Resource".to_owned(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_owned(),
                    target: MetricTarget {
                        type_: "Utilization".to_owned(),
                        average_utilization: Some(CPU_TARGET_PERCENT),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            ..HorizontalPodAutoscalerSpec::default()
        },
        ..HorizontalPodAutoscaler::default()
    };
    let disruption_budget = PodDisruptionBudget {
        metadata: meta,
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(label_selector),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    };
    Ok(vec![
        manifest(workload.name, "deployment", &deployment)?,
        manifest(workload.name, "service", &service)?,
        manifest(workload.name, "hpa", &autoscaler)?,
        manifest(workload.name, "pdb", &disruption_budget)?,
    ])
}

fn labels(name: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_owned(), name.to_owned()),
        ("app.kubernetes.io/component".to_owned(), component.to_owned()),
        (PART_OF_LABEL.to_owned(), "flywheel".to_owned()),
    ])
}

fn metadata(name: &str, namespace: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(name, amount)| ((*name).to_owned(), Quantity((*amount).to_owned())))
        .collect()
}

fn http_port(port: i32) -> ContainerPort {
    ContainerPort {
        name: Some("http".to_owned()),
        container_port: port,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

fn http_probe(path: &str, port: i32, period_seconds: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::Int(port),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

fn volume_mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn empty_dir(name: &str, medium: Option<&str>) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: medium.map(str::to_owned),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn manifest<T: Serialize>(name: &str, kind: &str, object: &T) -> Result<Manifest, FleetError> {
    Ok(Manifest {
        file_name: format!("{name}.{kind}.yaml"),
        yaml: to_yaml(&format!("{name} {kind}"), object)?,
    })
}

fn to_yaml<T: Serialize>(what: &str, object: &T) -> Result<String, FleetError> {
    serde_yaml_ng::to_string(object).map_err(|error| FleetError::Export(format!("{what}: {error}")))
}

/// An object name from any text: lowercase letters, digits and single '-', at most 63 characters, starting
/// with a letter and ending with a letter or digit. That is an RFC 1035 label, which Services require, and so
/// also the RFC 1123 label every other kind requires. Text cut to fit ends with a hash of the whole, so long
/// names that differ only at the end stay apart.
pub(crate) fn dns_label(text: &str) -> String {
    let mut label = String::new();
    for character in text.chars().map(|character| character.to_ascii_lowercase()) {
        if character.is_ascii_lowercase() || character.is_ascii_digit() {
            label.push(character);
        } else if !label.is_empty() && !label.ends_with('-') {
            label.push('-');
        }
    }
    let trimmed = label.trim_end_matches('-');
    let mut label = match trimmed.chars().next() {
        None => "x".to_owned(),
        Some(first) if first.is_ascii_digit() => format!("x-{trimmed}"),
        Some(_) => trimmed.to_owned(),
    };
    if label.len() > MAX_LABEL_LEN {
        let hash = format!("-{:08x}", fnv1a(text));
        label = format!("{}{hash}", shortened(&label, MAX_LABEL_LEN - hash.len()));
    }
    label
}

/// [`dns_label`] of `text`, made distinct from every label in `taken` by a `-2`, `-3`, ... suffix, and taken.
pub(crate) fn unique_label(text: &str, taken: &mut BTreeSet<String>) -> String {
    let base = dns_label(text);
    let mut label = base.clone();
    let mut copy = 2;
    while taken.contains(&label) {
        let suffix = format!("-{copy}");
        label = format!("{}{suffix}", shortened(&base, MAX_LABEL_LEN - suffix.len()));
        copy += 1;
    }
    taken.insert(label.clone());
    label
}

/// The first `length` bytes of an ASCII label, without a trailing '-' (a label starts with a letter, so
/// something always remains).
fn shortened(label: &str, length: usize) -> &str {
    label.get(..length).unwrap_or(label).trim_end_matches('-')
}

/// A stable 32-bit FNV-1a hash: unlike std's hasher its values never change between Rust releases, so
/// neither do the names built from them.
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

fn is_dns1123_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() <= MAX_LABEL_LEN
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// A value Kubernetes accepts for a label: at most 63 of letters, digits, '-', '_' and '.', starting and
/// ending with a letter or digit (or empty).
fn is_label_value(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.is_empty()
        || (bytes.len() <= MAX_LABEL_LEN
            && bytes
                .iter()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(byte))
            && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.last().is_some_and(u8::is_ascii_alphanumeric))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn is_dns1035_label(label: &str) -> bool {
        is_dns1123_label(label) && label.starts_with(|character: char| character.is_ascii_lowercase())
    }

    #[test]
    fn labels_read_like_their_text() {
        assert_eq!(dns_label("Virginia/Llama-70B/H100"), "virginia-llama-70b-h100");
        assert_eq!(dns_label("  __a..b__ "), "a-b");
        assert_eq!(dns_label(""), "x");
        assert_eq!(dns_label("---"), "x");
        assert_eq!(dns_label("70b"), "x-70b");
        assert_eq!(dns_label("Zürich"), "z-rich");
    }

    #[test]
    fn long_names_are_cut_with_a_hash_of_the_whole() {
        let (one, two) = ("a".repeat(100) + "1", "a".repeat(100) + "2");
        assert_eq!(dns_label(&one).len(), MAX_LABEL_LEN);
        assert!(is_dns1035_label(&dns_label(&one)));
        assert_ne!(dns_label(&one), dns_label(&two));
        assert!(dns_label(&one).starts_with(&"a".repeat(50)));
    }

    #[test]
    fn names_that_sanitise_alike_get_suffixes() {
        let mut taken = BTreeSet::from(["flywheel-gateway".to_owned()]);
        assert_eq!(unique_label("a_b", &mut taken), "a-b");
        assert_eq!(unique_label("a.b", &mut taken), "a-b-2");
        assert_eq!(unique_label("A B", &mut taken), "a-b-3");
        assert_eq!(unique_label("Flywheel Gateway", &mut taken), "flywheel-gateway-2");
        let long = "b".repeat(70);
        let first = unique_label(&long, &mut taken);
        let second = unique_label(&long, &mut taken);
        assert_ne!(first, second);
        assert!(second.len() <= MAX_LABEL_LEN && second.ends_with("-2"), "{second}");
    }

    #[test]
    fn label_values_follow_the_kubernetes_rule() {
        for good in ["", "us-east-1", "h100", "A.b_c"] {
            assert!(is_label_value(good), "{good}");
        }
        for bad in ["-a", "a-", "a/b", "a b", &"a".repeat(64)] {
            assert!(!is_label_value(bad), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn any_text_gives_one_valid_name(text in any::<String>()) {
            let label = dns_label(&text);
            prop_assert!(is_dns1035_label(&label), "{text:?} -> {label:?}");
            prop_assert_eq!(label, dns_label(&text));
        }

        #[test]
        fn unique_labels_are_valid_and_distinct(texts in proptest::collection::vec(".{0,80}", 0..24)) {
            let mut taken = BTreeSet::new();
            let labels: Vec<String> = texts.iter().map(|text| unique_label(text, &mut taken)).collect();
            prop_assert_eq!(taken.len(), labels.len());
            for label in &labels {
                prop_assert!(is_dns1035_label(label), "{label:?}");
            }
        }
    }
}

//! The Kubernetes export end to end: the example fleet written to a directory, every file read back into the
//! typed k8s-openapi object of its kind (and written again, so a dropped or misspelt field shows), then the
//! objects checked against the fleet they came from.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fleet::{Fleet, FleetError, K8sOptions, kubernetes_manifests, write_kubernetes_manifests};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fleet/example.toml")
}

/// The objects of one export, by kind and name.
#[derive(Default)]
struct Export {
    files: Vec<String>,
    names: Vec<String>,
    namespaces: BTreeMap<String, Namespace>,
    config_maps: BTreeMap<String, ConfigMap>,
    deployments: BTreeMap<String, Deployment>,
    services: BTreeMap<String, Service>,
    autoscalers: BTreeMap<String, HorizontalPodAutoscaler>,
    disruption_budgets: BTreeMap<String, PodDisruptionBudget>,
}

/// Deserialises into the typed object, then checks that serialising it again gives the document back.
fn read_back<T: DeserializeOwned + Serialize>(document: &Value, file: &str) -> T {
    let typed: T = serde_json::from_value(document.clone()).unwrap_or_else(|error| panic!("{file}: {error}"));
    assert_eq!(
        &serde_json::to_value(&typed).unwrap(),
        document,
        "{file}: a field did not survive the typed round trip"
    );
    typed
}

fn insert<T: DeserializeOwned + Serialize>(
    objects: &mut BTreeMap<String, T>,
    name: &str,
    document: &Value,
    file: &str,
) {
    assert!(
        objects.insert(name.to_owned(), read_back(document, file)).is_none(),
        "{file}: {name} twice"
    );
}

fn export(fleet: &Fleet, options: &K8sOptions, directory: &Path) -> Export {
    let manifests = kubernetes_manifests(fleet, options).unwrap();
    let written = write_kubernetes_manifests(directory, &manifests).unwrap();
    assert_eq!(written.len(), manifests.len());
    let mut on_disk: Vec<String> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let kustomization: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(directory.join("kustomization.yaml")).unwrap()).unwrap();
    assert_eq!(kustomization["kind"], "Kustomization");
    let mut listed: Vec<String> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file.as_str().unwrap().to_owned())
        .collect();
    listed.push("kustomization.yaml".to_owned());
    listed.sort();
    assert_eq!(
        listed, on_disk,
        "kustomization.yaml lists every file written, and only those"
    );
    let mut export = Export::default();
    for file in on_disk.iter().filter(|file| *file != "kustomization.yaml") {
        let text = std::fs::read_to_string(directory.join(file)).unwrap();
        let document: Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|error| panic!("{file}: {error}"));
        let name = document["metadata"]["name"].as_str().unwrap().to_owned();
        match document["kind"].as_str().unwrap() {
            "Namespace" => insert(&mut export.namespaces, &name, &document, file),
            "ConfigMap" => insert(&mut export.config_maps, &name, &document, file),
            "Deployment" => insert(&mut export.deployments, &name, &document, file),
            "Service" => insert(&mut export.services, &name, &document, file),
            "HorizontalPodAutoscaler" => insert(&mut export.autoscalers, &name, &document, file),
            "PodDisruptionBudget" => insert(&mut export.disruption_budgets, &name, &document, file),
            kind => panic!("{file}: unexpected kind {kind}"),
        }
        export.names.push(name);
    }
    export.files = on_disk;
    export
}

fn is_dns1123_label(name: &str) -> bool {
    let alphanumeric = |character: char| character.is_ascii_lowercase() || character.is_ascii_digit();
    (1..=63).contains(&name.len())
        && name
            .chars()
            .all(|character| alphanumeric(character) || character == '-')
        && name.starts_with(alphanumeric)
        && name.ends_with(alphanumeric)
}

fn container(deployment: &Deployment) -> &Container {
    &deployment.spec.template.spec.as_ref().unwrap().containers[0]
}

/// The named resource's limit and request, which must agree.
fn resource_count(deployment: &Deployment, resource: &str) -> Option<String> {
    let resources = container(deployment).resources.as_ref().unwrap();
    let count = |quantities: &Option<BTreeMap<String, Quantity>>| {
        quantities
            .as_ref()
            .unwrap()
            .get(resource)
            .map(|quantity| quantity.0.clone())
    };
    let (limit, request) = (count(&resources.limits), count(&resources.requests));
    assert_eq!(limit, request, "{resource}");
    limit
}

fn model_servers(export: &Export) -> Vec<&Deployment> {
    export
        .deployments
        .values()
        .filter(|deployment| container(deployment).name == "vllm")
        .collect()
}

#[test]
fn example_fleet_exports_every_replica_group_with_its_companions() {
    let fleet = Fleet::read(&example_path()).unwrap();
    let directory = tempfile::tempdir().unwrap();
    let export = export(&fleet, &K8sOptions::default(), directory.path());

    // Namespace, ConfigMap, the gateway's four, and four per site (each site runs one group).
    assert_eq!(fleet.sites.len(), 6);
    assert_eq!(export.files.len(), 1 + 1 + 4 + 4 * 6 + 1);
    assert_eq!(export.deployments.len(), 7);
    assert!(export.namespaces.contains_key("flywheel"));
    for name in &export.names {
        assert!(is_dns1123_label(name), "{name}");
    }
    let servers = model_servers(&export);
    assert_eq!(servers.len(), 6);
    let mut replicas_exported = 0;
    for (site_index, site) in fleet.sites.iter().enumerate() {
        let replicas: Vec<_> = fleet
            .replicas
            .iter()
            .filter(|replica| replica.site == site_index)
            .collect();
        let accelerator = fleet.accelerators.get(replicas[0].accelerator).unwrap();
        let chips = replicas[0].accelerators;
        let labels_of = |deployment: &&Deployment| deployment.metadata.labels.clone().unwrap_or_default();
        let deployment = servers
            .iter()
            .find(|deployment| labels_of(deployment).get("flywheel.dev/site") == Some(&site.name))
            .unwrap_or_else(|| panic!("no Deployment for {}", site.name));
        let name = deployment.metadata.name.clone().unwrap();
        let labels = labels_of(deployment);
        assert_eq!(labels["app.kubernetes.io/part-of"], "flywheel");
        assert_eq!(labels["flywheel.dev/model"], "llama-70b");
        let spec = &deployment.spec;
        assert_eq!(spec.replicas, Some(replicas.len() as i32), "{name}");
        replicas_exported += replicas.len();
        let pod = spec.template.spec.as_ref().unwrap();
        let node_selector = pod.node_selector.as_ref().unwrap();
        assert_eq!(node_selector["topology.kubernetes.io/region"], site.region);
        assert_eq!(node_selector["flywheel.dev/accelerator"], accelerator.name);
        let resource = accelerator.k8s_resource().unwrap();
        assert_eq!(resource_count(deployment, resource), Some(chips.to_string()), "{name}");
        let toleration = &pod.tolerations.as_ref().unwrap()[0];
        assert_eq!(toleration.key.as_deref(), Some(resource));
        assert_eq!(toleration.effect.as_deref(), Some("NoSchedule"));
        let server = container(deployment);
        let args = server.args.clone().unwrap();
        let chips_text = chips.to_string();
        for pair in [
            ["--model", "llama-70b"],
            ["--tensor-parallel-size", chips_text.as_str()],
            ["--port", "8000"],
        ] {
            assert!(args.windows(2).any(|window| window == pair), "{name}: {args:?}");
        }
        let readiness = server.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(readiness.path.as_deref(), Some("/health"));
        assert_eq!(readiness.port, IntOrString::Int(8000));

        let service = &export.services[&name];
        let service_spec = service.spec.as_ref().unwrap();
        assert_eq!(service_spec.ports.as_ref().unwrap()[0].port, 8000);
        assert_eq!(
            service_spec.selector.as_ref(),
            spec.selector.match_labels.as_ref(),
            "{name}: the Service selects the Deployment's pods"
        );
        let autoscaler = &export.autoscalers[&name].spec;
        assert_eq!(autoscaler.scale_target_ref.name, name);
        let min = autoscaler.min_replicas.unwrap();
        assert_eq!(min, replicas.len() as i32);
        assert!(min <= autoscaler.max_replicas, "{name}");
        let available = site.accelerators_available[&accelerator.name];
        assert_eq!(autoscaler.max_replicas, (available / chips) as i32, "{name}");
        let budget = export.disruption_budgets[&name].spec.as_ref().unwrap();
        assert_eq!(budget.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(
            budget.selector.as_ref().unwrap().match_labels,
            spec.selector.match_labels
        );
    }
    assert_eq!(replicas_exported, fleet.replicas.len());

    // Figures from the example file, so a change in grouping or sizing shows here.
    let virginia = &export.deployments["virginia-llama-70b-h100"];
    assert_eq!(virginia.spec.replicas, Some(10));
    assert_eq!(resource_count(virginia, "nvidia.com/gpu").as_deref(), Some("2"));
    assert_eq!(export.autoscalers["virginia-llama-70b-h100"].spec.max_replicas, 256);
    let frankfurt = &export.deployments["frankfurt-llama-70b-mi300x"];
    assert_eq!(resource_count(frankfurt, "amd.com/gpu").as_deref(), Some("1"));
}

#[test]
fn gateway_probes_its_real_paths_and_reads_the_config_map() {
    let fleet = Fleet::read(&example_path()).unwrap();
    let fleet_toml = std::fs::read_to_string(example_path()).unwrap();
    let options = K8sOptions {
        namespace: "inference".to_owned(),
        fleet_toml: Some(fleet_toml.clone()),
        ..K8sOptions::default()
    };
    let directory = tempfile::tempdir().unwrap();
    let export = export(&fleet, &options, directory.path());
    assert!(export.namespaces.contains_key("inference"));
    let gateway = &export.deployments["flywheel-gateway"];
    assert_eq!(gateway.metadata.namespace.as_deref(), Some("inference"));
    let container = container(gateway);
    assert_eq!(container.image.as_deref(), Some("flywheel:latest"));
    assert_eq!(container.command.clone().unwrap(), ["flywheel", "up"]);
    let probe_path = |probe: &Option<k8s_openapi::api::core::v1::Probe>| {
        let action = probe.as_ref().unwrap().http_get.clone().unwrap();
        assert_eq!(action.port, IntOrString::Int(8080));
        action.path.unwrap()
    };
    assert_eq!(probe_path(&container.readiness_probe), "/readyz");
    assert_eq!(probe_path(&container.liveness_probe), "/healthz");
    let env: BTreeMap<_, _> = container
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|variable| (variable.name, variable.value.unwrap()))
        .collect();
    assert_eq!(env["FLYWHEEL_LISTEN"], "0.0.0.0:8080");
    let resources = container.resources.as_ref().unwrap();
    assert!(resources.requests.as_ref().unwrap().contains_key("cpu"));
    assert!(resources.limits.as_ref().unwrap().contains_key("memory"));
    let volumes = gateway.spec.template.spec.as_ref().unwrap().volumes.clone().unwrap();
    assert!(volumes.iter().any(|volume| {
        volume
            .config_map
            .as_ref()
            .is_some_and(|source| source.name == "flywheel-config")
    }));
    let config_path = Path::new(&env["FLYWHEEL_CONFIG"]);
    let mount = container
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|mount| mount.name == "config")
        .unwrap();
    assert_eq!(config_path.parent(), Some(Path::new(&mount.mount_path)));
    assert_eq!(
        export.services["flywheel-gateway"]
            .spec
            .as_ref()
            .unwrap()
            .ports
            .as_ref()
            .unwrap()[0]
            .port,
        8080
    );
    let autoscaler = &export.autoscalers["flywheel-gateway"].spec;
    assert!(autoscaler.min_replicas.unwrap() <= autoscaler.max_replicas);
    let metric = &autoscaler.metrics.as_ref().unwrap()[0];
    assert_eq!(metric.resource.as_ref().unwrap().name, "cpu");
    assert!(export.disruption_budgets.contains_key("flywheel-gateway"));

    let data = export.config_maps["flywheel-config"].data.clone().unwrap();
    assert_eq!(data["fleet.toml"], fleet_toml);
    let gateway_config: toml::Value = toml::from_str(&data["flywheel.toml"]).unwrap();
    assert_eq!(gateway_config["listen"].as_str(), Some("0.0.0.0:8080"));
    assert_eq!(gateway_config["embedded_models"].as_bool(), Some(false));
    let models = gateway_config["models"].as_array().unwrap();
    assert_eq!(models.len(), 1);
    let deployments = models[0]["deployments"].as_array().unwrap();
    assert_eq!(deployments.len(), 6);
    assert!(
        deployments.iter().any(|deployment| deployment["base_url"].as_str()
            == Some("http://virginia-llama-70b-h100.inference.svc:8000/v1"))
    );
}

#[test]
fn the_same_fleet_gives_byte_identical_files() {
    let fleet = Fleet::read(&example_path()).unwrap();
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let options = K8sOptions::default();
    let one = write_kubernetes_manifests(first.path(), &kubernetes_manifests(&fleet, &options).unwrap()).unwrap();
    let two = write_kubernetes_manifests(second.path(), &kubernetes_manifests(&fleet, &options).unwrap()).unwrap();
    assert_eq!(one.len(), two.len());
    for (a, b) in one.iter().zip(&two) {
        assert_eq!(a.file_name(), b.file_name());
        assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap(), "{}", a.display());
    }
}

const SMALL_FLEET: &str = r#"
[[models]]
name = "big"
class = "70b"

[[models]]
name = "small"
class = "8b"

[[models]]
name = "tiny"
class = "135m"

[[sites]]
name = "a_b"
region = "r-1"
lat = 1.0
lon = 1.0
power_cap_mw = 1
pue = 1.1
price = { constant = 50 }
carbon = { constant = 100 }
accelerators_available = { h100 = 10, cpu = 4 }
replicas = [
  { model = "big", accelerator = "h100", count = 2 },
  { model = "small", accelerator = "h100", count = 3 },
  { model = "tiny", accelerator = "cpu" },
]

[[sites]]
name = "a.b"
region = "r-2"
lat = 2.0
lon = 2.0
power_cap_mw = 1
pue = 1.1
price = { constant = 50 }
carbon = { constant = 100 }
replicas = [{ model = "big", accelerator = "h100" }]
"#;

#[test]
fn cpu_groups_ask_for_no_extended_resource_and_shared_chips_bound_the_autoscalers() {
    let fleet = Fleet::parse(Path::new("small.toml"), SMALL_FLEET).unwrap();
    let directory = tempfile::tempdir().unwrap();
    let export = export(&fleet, &K8sOptions::default(), directory.path());
    assert_eq!(model_servers(&export).len(), 4);

    let tiny = &export.deployments["a-b-tiny-cpu"];
    let resources = container(tiny).resources.clone().unwrap();
    let names = |quantities: Option<BTreeMap<String, _>>| quantities.unwrap().into_keys().collect::<Vec<_>>();
    assert_eq!(names(resources.requests), ["cpu", "memory"]);
    assert_eq!(names(resources.limits), ["memory"]);
    assert!(tiny.spec.template.spec.as_ref().unwrap().tolerations.is_none());
    assert_eq!(export.autoscalers["a-b-tiny-cpu"].spec.max_replicas, 4);

    // Ten H100s at a_b: big holds 2 x 2 at its count, small 3 x 1; each may grow into what the other leaves.
    assert_eq!(export.autoscalers["a-b-big-h100"].spec.max_replicas, (10 - 3) / 2);
    assert_eq!(export.autoscalers["a-b-small-h100"].spec.max_replicas, 10 - 4);
    // "a.b" sanitises like "a_b": its group takes a suffix, and without listed chips it cannot grow.
    let suffixed = &export.autoscalers["a-b-big-h100-2"].spec;
    assert_eq!((suffixed.min_replicas, suffixed.max_replicas), (Some(1), 1));
    assert_eq!(
        export.deployments["a-b-big-h100-2"].metadata.labels.as_ref().unwrap()["flywheel.dev/site"],
        "a-b"
    );
}

#[test]
fn values_a_cluster_would_refuse_are_errors() {
    let fleet = Fleet::parse(Path::new("small.toml"), SMALL_FLEET).unwrap();
    let bad_namespace = K8sOptions {
        namespace: "Flywheel_Prod".to_owned(),
        ..K8sOptions::default()
    };
    let error = kubernetes_manifests(&fleet, &bad_namespace).unwrap_err();
    assert!(
        matches!(error, FleetError::Export(_)) && error.to_string().contains("Flywheel_Prod"),
        "{error}"
    );
    let bad_region = SMALL_FLEET.replace("region = \"r-2\"", "region = \"eu west/2\"");
    let fleet = Fleet::parse(Path::new("small.toml"), &bad_region).unwrap();
    let error = kubernetes_manifests(&fleet, &K8sOptions::default()).unwrap_err();
    assert!(error.to_string().contains("'eu west/2'"), "{error}");
}

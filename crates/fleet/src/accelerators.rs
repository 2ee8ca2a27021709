//! Accelerator profiles: power at idle, in prefill and in decode, memory, cost, and how fast a replica of
//! each model class serves on them. The built-in table is `data/accelerators.toml`; a fleet may name its own.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::FleetError;

const BUILT_IN: &str = include_str!("../data/accelerators.toml");
const HOURS_PER_YEAR: f64 = 8_760.0;

/// One kind of chip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accelerator {
    /// Its name in fleet files (`h100`).
    pub name: String,
    /// Other names accepted for it.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Who makes it: `nvidia`, `amd`, `aws-neuron` or `cpu` (decides the Kubernetes resource name).
    pub vendor: String,
    /// Memory per chip in GB.
    pub memory_gb: f64,
    /// Memory bandwidth per chip in TB/s.
    pub memory_bandwidth_tb_s: f64,
    /// Dense BF16 compute per chip in TFLOPS.
    pub bf16_tflops: f64,
    /// Power per chip with nothing to do, in watts.
    pub idle_w: f64,
    /// Power per chip while prefilling (compute-bound), in watts.
    pub prefill_w: f64,
    /// Power per chip while decoding (memory-bound), in watts.
    pub decode_w: f64,
    /// Purchase price per chip, depreciated over `depreciation_years`.
    #[serde(default)]
    pub capex_usd: Option<f64>,
    /// Years over which `capex_usd` is written off.
    #[serde(default)]
    pub depreciation_years: Option<f64>,
    /// Rental price per chip-hour, for chips that are only rented.
    #[serde(default)]
    pub hourly_cost_usd: Option<f64>,
    /// Where the figures come from.
    pub source: String,
    /// Serving speed per model class (`8b`, `70b`, ...).
    pub classes: BTreeMap<String, ServingProfile>,
}

/// How one replica of a model class runs on an accelerator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingProfile {
    /// Chips per replica (tensor parallel degree).
    pub accelerators_per_replica: u32,
    /// Prompt tokens per second the replica prefills.
    pub prefill_tokens_per_s: f64,
    /// One decode step with one sequence, in milliseconds.
    pub decode_step_ms: f64,
    /// What each further sequence in the batch adds to a step, in milliseconds.
    pub decode_step_ms_per_sequence: f64,
    /// Most sequences decoding together.
    pub max_batch: u32,
    /// Where the figures come from.
    pub source: String,
}

impl ServingProfile {
    /// Time of one decode step with `batch` sequences, in seconds.
    pub fn step_s(&self, batch: u32) -> f64 {
        (self.decode_step_ms + self.decode_step_ms_per_sequence * batch.saturating_sub(1) as f64) / 1e3
    }

    /// The largest batch whose step stays within `tpot_ms`, at least 1.
    pub fn batch_within(&self, tpot_ms: f64) -> u32 {
        if self.decode_step_ms_per_sequence <= 0.0 {
            return self.max_batch;
        }
        let extra = ((tpot_ms - self.decode_step_ms) / self.decode_step_ms_per_sequence).floor();
        (extra.max(0.0) as u32 + 1).min(self.max_batch).max(1)
    }
}

impl Accelerator {
    /// What one chip costs per hour: its rental price, or its capex over its depreciation period.
    pub fn hourly_cost_usd(&self) -> f64 {
        match (self.hourly_cost_usd, self.capex_usd, self.depreciation_years) {
            (Some(hourly), _, _) => hourly,
            (None, Some(capex), Some(years)) if years > 0.0 => capex / (years * HOURS_PER_YEAR),
            _ => 0.0,
        }
    }

    /// The Kubernetes extended resource that schedules this chip (`None` for CPU).
    pub fn k8s_resource(&self) -> Option<&'static str> {
        match self.vendor.as_str() {
            "nvidia" => Some("nvidia.com/gpu"),
            "amd" => Some("amd.com/gpu"),
            "aws-neuron" => Some("aws.amazon.com/neuron"),
            _ => None,
        }
    }
}

/// What a replica of one model class holds in accelerator memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelClass {
    /// The class name the profiles use (`70b`).
    pub name: String,
    /// The weights, in GB.
    pub weights_gb: f64,
    /// KV cache per token of context, in bytes.
    pub kv_bytes_per_token: f64,
    /// Where the figures come from.
    pub source: String,
}

/// The share of accelerator memory a model server may fill (vLLM's default `gpu_memory_utilization`); the rest
/// is left for activations and the runtime.
const USABLE_MEMORY_SHARE: f64 = 0.9;

impl ModelClass {
    /// The memory a model server may fill on `chips` chips of `memory_gb` each, in GB.
    pub fn usable_memory_gb(memory_gb: f64, chips: u32) -> f64 {
        memory_gb * chips as f64 * USABLE_MEMORY_SHARE
    }

    /// How many sequences of `context_tokens` fit beside the weights on `chips` chips of `memory_gb` each
    /// (0 when the weights alone do not fit).
    pub fn sequences_in_memory(&self, memory_gb: f64, chips: u32, context_tokens: f64) -> u32 {
        let free_bytes = (Self::usable_memory_gb(memory_gb, chips) - self.weights_gb) * 1e9;
        if free_bytes <= 0.0 {
            return 0;
        }
        let per_sequence = self.kv_bytes_per_token * context_tokens.max(1.0);
        if per_sequence <= 0.0 {
            return u32::MAX;
        }
        (free_bytes / per_sequence).floor().min(u32::MAX as f64) as u32
    }
}

/// A set of accelerator profiles, looked up by name or alias, and the model classes they serve.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceleratorCatalog {
    accelerators: Vec<Accelerator>,
    model_classes: Vec<ModelClass>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    model_class: Vec<ModelClass>,
    accelerator: Vec<Accelerator>,
}

impl AcceleratorCatalog {
    /// The profiles that ship with flywheel.
    pub fn built_in() -> Result<Self, FleetError> {
        Self::parse(Path::new("built-in accelerators.toml"), BUILT_IN)
    }

    /// Profiles from a TOML file in the built-in table's shape.
    pub fn read(path: &Path) -> Result<Self, FleetError> {
        let text = std::fs::read_to_string(path).map_err(|cause| FleetError::io(path, cause))?;
        Self::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Self, FleetError> {
        let file: CatalogFile = toml::from_str(text).map_err(|error| crate::spec::toml_error(path, text, &error))?;
        for accelerator in &file.accelerator {
            let field = |name: &str| format!("accelerator '{}'.{name}", accelerator.name);
            for (name, value) in [
                ("memory_gb", accelerator.memory_gb),
                ("idle_w", accelerator.idle_w),
                ("prefill_w", accelerator.prefill_w),
                ("decode_w", accelerator.decode_w),
            ] {
                if !(value.is_finite() && value >= 0.0) {
                    return Err(FleetError::invalid(path, 0, &field(name), "must be a number >= 0"));
                }
            }
            for (class, profile) in &accelerator.classes {
                let field = |name: &str| format!("accelerator '{}'.classes.{class}.{name}", accelerator.name);
                if profile.accelerators_per_replica == 0 || profile.max_batch == 0 {
                    return Err(FleetError::invalid(
                        path,
                        0,
                        &field("accelerators_per_replica"),
                        "must be at least 1",
                    ));
                }
                if !(profile.prefill_tokens_per_s > 0.0 && profile.decode_step_ms > 0.0) {
                    return Err(FleetError::invalid(
                        path,
                        0,
                        &field("prefill_tokens_per_s"),
                        "speeds must be above 0",
                    ));
                }
            }
        }
        for class in &file.model_class {
            if !(class.weights_gb.is_finite()
                && class.weights_gb >= 0.0
                && class.kv_bytes_per_token.is_finite()
                && class.kv_bytes_per_token >= 0.0)
            {
                return Err(FleetError::invalid(
                    path,
                    0,
                    &format!("model_class '{}'", class.name),
                    "weights_gb and kv_bytes_per_token must be numbers >= 0",
                ));
            }
        }
        Ok(AcceleratorCatalog {
            accelerators: file.accelerator,
            model_classes: file.model_class,
        })
    }

    /// All profiles.
    pub fn all(&self) -> &[Accelerator] {
        &self.accelerators
    }

    /// The index of the profile called `name` or with that alias (case-insensitive).
    pub fn find(&self, name: &str) -> Option<usize> {
        self.accelerators.iter().position(|accelerator| {
            accelerator.name.eq_ignore_ascii_case(name)
                || accelerator.aliases.iter().any(|alias| alias.eq_ignore_ascii_case(name))
        })
    }

    /// The profile at `index`.
    pub fn get(&self, index: usize) -> Option<&Accelerator> {
        self.accelerators.get(index)
    }

    /// The memory needs of model class `name`, when the catalog states them.
    pub fn model_class(&self, name: &str) -> Option<&ModelClass> {
        self.model_classes.iter().find(|class| class.name == name)
    }

    /// The names, for error messages.
    pub fn names(&self) -> String {
        self.accelerators
            .iter()
            .map(|accelerator| accelerator.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_table_loads_with_every_named_chip_and_a_source_for_each() {
        let catalog = AcceleratorCatalog::built_in().unwrap();
        for name in [
            "h100",
            "h200",
            "b200",
            "gb200",
            "trainium2",
            "inferentia2",
            "mi300x",
            "cpu",
            "trn2",
        ] {
            assert!(catalog.find(name).is_some(), "{name}");
        }
        for accelerator in catalog.all() {
            assert!(!accelerator.source.is_empty());
            assert!(accelerator.hourly_cost_usd() > 0.0, "{}", accelerator.name);
            assert!(accelerator.classes.values().all(|profile| !profile.source.is_empty()));
        }
    }

    #[test]
    fn steps_grow_with_the_batch_and_the_slo_bounds_it() {
        let catalog = AcceleratorCatalog::built_in().unwrap();
        let h100 = catalog.get(catalog.find("h100").unwrap()).unwrap();
        let profile = &h100.classes["70b"];
        assert!((profile.step_s(1) - 0.037).abs() < 1e-9);
        assert!(profile.step_s(32) > profile.step_s(1));
        assert_eq!(profile.batch_within(37.0), 1);
        assert_eq!(profile.batch_within(10_000.0), profile.max_batch);
        assert!(profile.step_s(profile.batch_within(50.0)) <= 0.050 + 1e-9);
    }

    #[test]
    fn memory_bounds_the_batch_beside_the_weights() {
        let catalog = AcceleratorCatalog::built_in().unwrap();
        let class = catalog.model_class("70b").unwrap();
        // 2 x 80 GB x 0.9 = 144 GB, 3 GB beside 141 GB of weights: 3 sequences of 2,304 tokens (0.75 GB each).
        assert_eq!(class.sequences_in_memory(80.0, 2, 2304.0), 3);
        assert_eq!(class.sequences_in_memory(80.0, 1, 2304.0), 0);
        assert!(class.sequences_in_memory(141.0, 2, 2304.0) > 100);
        for accelerator in catalog.all() {
            for name in accelerator.classes.keys() {
                assert!(catalog.model_class(name).is_some(), "{name} has no memory figures");
            }
        }
    }
}

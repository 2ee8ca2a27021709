//! A plan put into service: the fleet with its replicas replaced by the plan's placements, which is what the
//! router then routes over.

use serde::Serialize;

use crate::error::FleetError;
use crate::plan::Placement;
use crate::spec::{Fleet, Replica};

/// The placement a router routes over, for people: where its replicas come from and how many there are.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LivePlacement {
    /// `fleet file`, or `plan` once a plan's placement is in service.
    pub source: &'static str,
    /// When it was put in service (RFC 3339).
    pub since: String,
    /// What the plan was made for, in words (empty for the file's placement).
    pub basis: String,
    /// Replicas per site, accelerator and model.
    pub replicas: Vec<PlacedReplicas>,
}

/// Replicas of one model on one accelerator kind at one site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlacedReplicas {
    /// The site.
    pub site: String,
    /// The accelerator kind.
    pub accelerator: String,
    /// The model.
    pub model: String,
    /// How many.
    pub replicas: u32,
}

impl Fleet {
    /// This fleet with the replicas of every model `placements` mention replaced by the placed ones; models
    /// they do not mention keep the replicas the file gives them (a plan only places what has demand).
    ///
    /// A placed replica takes the endpoint of one of the file's replicas of the same model at the same site,
    /// preferring the same accelerator: the plan decides how many servers a site runs, the file says where
    /// they answer.
    pub fn with_placements(&self, placements: &[Placement]) -> Result<Fleet, FleetError> {
        let mut placed_models = vec![false; self.models.len()];
        let mut placed = Vec::new();
        for placement in placements {
            let unknown = |what: &str, name: &str| {
                FleetError::Unknown(format!(
                    "the plan names {what} '{name}', which the fleet '{}' does not have",
                    self.name
                ))
            };
            let model = self
                .model_index(&placement.model)
                .ok_or_else(|| unknown("the model", &placement.model))?;
            let site = self
                .site_index(&placement.site)
                .ok_or_else(|| unknown("the site", &placement.site))?;
            let accelerator_index = self
                .accelerators
                .find(&placement.accelerator)
                .ok_or_else(|| unknown("the accelerator", &placement.accelerator))?;
            let accelerator = self
                .accelerators
                .get(accelerator_index)
                .ok_or_else(|| unknown("the accelerator", &placement.accelerator))?;
            let class = &self.models[model].class;
            let profile = accelerator.classes.get(class).ok_or_else(|| {
                FleetError::Unknown(format!(
                    "{} has no profile for the model class '{class}'",
                    accelerator.name
                ))
            })?;
            placed_models[model] = true;
            if placement.replicas == 0 {
                continue;
            }
            let chips = (placement.chips / placement.replicas).max(profile.accelerators_per_replica);
            let endpoint = self
                .replicas
                .iter()
                .filter(|replica| replica.model == model && replica.site == site)
                .max_by_key(|replica| replica.accelerator == accelerator_index)
                .and_then(|replica| replica.endpoint.clone());
            for i in 0..placement.replicas {
                placed.push(Replica {
                    name: format!(
                        "{}/{}/{}/{i}",
                        self.sites[site].name, self.models[model].name, accelerator.name
                    ),
                    site,
                    model,
                    accelerator: accelerator_index,
                    accelerators: chips,
                    endpoint: endpoint.clone(),
                    profile: profile.clone(),
                    idle_w: accelerator.idle_w,
                    prefill_w: accelerator.prefill_w,
                    decode_w: accelerator.decode_w,
                });
            }
        }
        let mut fleet = self.clone();
        fleet.replicas = self
            .replicas
            .iter()
            .filter(|replica| !placed_models[replica.model])
            .cloned()
            .chain(placed)
            .collect();
        Ok(fleet)
    }

    /// The replicas counted per site, accelerator and model, in fleet order.
    pub fn replica_counts(&self) -> Vec<PlacedReplicas> {
        let mut counted: Vec<PlacedReplicas> = Vec::new();
        for replica in &self.replicas {
            let site = &self.sites[replica.site].name;
            let model = &self.models[replica.model].name;
            let accelerator = self
                .accelerators
                .get(replica.accelerator)
                .map(|accelerator| accelerator.name.as_str())
                .unwrap_or_default();
            match counted
                .iter_mut()
                .find(|seen| &seen.site == site && seen.accelerator == accelerator && &seen.model == model)
            {
                Some(seen) => seen.replicas += 1,
                None => counted.push(PlacedReplicas {
                    site: site.clone(),
                    accelerator: accelerator.to_owned(),
                    model: model.clone(),
                    replicas: 1,
                }),
            }
        }
        counted
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const FLEET: &str = r#"
name = "two-sites"
[[models]]
name = "chat"
class = "8b"
[[models]]
name = "other"
class = "8b"
[[sites]]
name = "near"
region = "r1"
lat = 40.0
lon = -74.0
power_cap_mw = 1
pue = 1.2
price = { constant = 50 }
carbon = { constant = 300 }
replicas = [{ model = "chat", accelerator = "h100", count = 2, endpoint = "http://127.0.0.1:9001/v1" },
            { model = "other", accelerator = "h100", count = 1 }]
[[sites]]
name = "far"
region = "r2"
lat = 50.0
lon = 8.0
power_cap_mw = 1
pue = 1.1
price = { constant = 20 }
carbon = { constant = 100 }
replicas = [{ model = "chat", accelerator = "h100", count = 1, endpoint = "http://127.0.0.1:9002/v1" }]
[[user_regions]]
name = "east"
lat = 40.0
lon = -74.0
share = 1.0
"#;

    fn placement(site: &str, model: &str, replicas: u32) -> Placement {
        Placement {
            site: site.to_owned(),
            accelerator: "h100".to_owned(),
            model: model.to_owned(),
            replicas,
            chips: replicas,
            requests_per_s: 1.0,
            utilization: 0.5,
        }
    }

    #[test]
    fn placed_replicas_replace_the_files_for_the_models_the_plan_mentions() {
        let fleet = Fleet::parse(std::path::Path::new("two-sites.toml"), FLEET).unwrap();
        let placed = fleet
            .with_placements(&[placement("far", "chat", 3), placement("near", "chat", 0)])
            .unwrap();
        let chat = fleet.model_index("chat").unwrap();
        let far = fleet.site_index("far").unwrap();
        let chat_replicas: Vec<&Replica> = placed.replicas.iter().filter(|replica| replica.model == chat).collect();
        assert_eq!(chat_replicas.len(), 3);
        assert!(chat_replicas.iter().all(|replica| replica.site == far));
        assert!(
            chat_replicas
                .iter()
                .all(|replica| replica.endpoint.as_deref() == Some("http://127.0.0.1:9002/v1"))
        );
        assert_eq!(chat_replicas[2].name, "far/chat/h100/2");
        let counts = placed.replica_counts();
        assert_eq!(counts.len(), 2, "{counts:?}");
        assert_eq!((counts[1].site.as_str(), counts[1].replicas), ("far", 3));
        // The model the plan does not mention keeps its replica.
        let other = fleet.model_index("other").unwrap();
        assert_eq!(
            placed.replicas.iter().filter(|replica| replica.model == other).count(),
            1
        );
    }

    #[test]
    fn a_plan_naming_what_the_fleet_lacks_is_refused() {
        let fleet = Fleet::parse(std::path::Path::new("two-sites.toml"), FLEET).unwrap();
        let error = fleet.with_placements(&[placement("moon", "chat", 1)]).unwrap_err();
        assert!(error.to_string().contains("the site 'moon'"), "{error}");
    }
}

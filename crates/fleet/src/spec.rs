//! The fleet description: sites (where, how much power, at what price and carbon hour by hour), the models
//! served, their replicas on accelerators, the user regions that send requests, and the SLO classes. Read from
//! a TOML file (see `data/fleet/example.toml` in the repository) and checked whole before anything uses it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::FleetError;
use crate::accelerators::{AcceleratorCatalog, ServingProfile};
use crate::series::{HourlySeries, NegativePrices, SeriesKind};

/// Latency and speed targets for one class of requests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Most milliseconds from sending a request to its first token, network round trip included.
    pub ttft_ms: f64,
    /// Most milliseconds between output tokens.
    pub tpot_ms: f64,
}

/// A model the fleet serves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Model {
    /// Its name (what requests ask for).
    pub name: String,
    /// Its class in the accelerator profiles (`8b`, `70b`, ...).
    pub class: String,
}

/// A data centre.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Site {
    /// Its name.
    pub name: String,
    /// The cloud or grid region it sits in (used as the Kubernetes region label).
    pub region: String,
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
    /// The most power the site may draw, facility overhead included, in watts.
    pub power_cap_w: f64,
    /// Power usage effectiveness: facility power over IT power.
    pub pue: f64,
    /// Energy price, USD/MWh, hour by hour.
    #[serde(skip)]
    pub price: HourlySeries,
    /// Grid carbon intensity, gCO2eq/kWh, hour by hour.
    #[serde(skip)]
    pub carbon: HourlySeries,
    /// Where the price figures come from.
    pub price_source: String,
    /// Where the carbon figures come from.
    pub carbon_source: String,
    /// Most chips of each accelerator the site can host (for the planner); empty means the kinds its
    /// replicas use, without limit.
    pub accelerators_available: BTreeMap<String, u32>,
}

/// One model server: a model on N chips at a site.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replica {
    /// `site/model/accelerator/i`.
    pub name: String,
    /// Index into [`Fleet::sites`].
    pub site: usize,
    /// Index into [`Fleet::models`].
    pub model: usize,
    /// Index into the accelerator catalog.
    pub accelerator: usize,
    /// Chips it runs on.
    pub accelerators: u32,
    /// Its OpenAI-compatible endpoint, when it is a real server.
    pub endpoint: Option<String>,
    /// How fast it serves (from the accelerator profile for the model's class).
    pub profile: ServingProfile,
    /// Power per chip at idle, prefill and decode, in watts (copied from the profile for speed).
    pub idle_w: f64,
    /// Prefill power per chip, watts.
    pub prefill_w: f64,
    /// Decode power per chip, watts.
    pub decode_w: f64,
}

/// Where users are.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserRegion {
    /// Its name.
    pub name: String,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// Its share of requests (the shares are normalized to sum to 1).
    pub share: f64,
}

/// A whole, checked fleet.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Its name.
    pub name: String,
    /// The price put on a tonne of CO2e by the multi-objective policy and the planner.
    pub carbon_price_usd_per_tonne: f64,
    /// SLO classes by name, in file order; the first is the default.
    pub slo_classes: Vec<(String, Slo)>,
    /// The share of requests in each SLO class when a trace does not say (same order as `slo_classes`).
    pub slo_mix: Vec<f64>,
    /// Models.
    pub models: Vec<Model>,
    /// Sites.
    pub sites: Vec<Site>,
    /// Replicas, one per model server.
    pub replicas: Vec<Replica>,
    /// User regions.
    pub user_regions: Vec<UserRegion>,
    /// Round-trip network latency from each user region to each site, in ms (`[region][site]`).
    pub latency_ms: Vec<Vec<f64>>,
    /// The accelerator profiles the fleet uses.
    pub accelerators: AcceleratorCatalog,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetFile {
    name: Option<String>,
    #[serde(default)]
    carbon_price_usd_per_tonne: Option<f64>,
    accelerators: Option<String>,
    #[serde(default)]
    slo: toml::Table,
    #[serde(default)]
    slo_mix: BTreeMap<String, f64>,
    #[serde(default)]
    models: Vec<ModelFile>,
    #[serde(default)]
    sites: Vec<SiteFile>,
    #[serde(default)]
    user_regions: Vec<RegionFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    name: String,
    class: toml::Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteFile {
    name: String,
    region: String,
    lat: f64,
    lon: f64,
    power_cap_mw: f64,
    pue: f64,
    price: SeriesFile,
    carbon: SeriesFile,
    #[serde(default)]
    negative_prices: NegativePrices,
    #[serde(default)]
    accelerators_available: BTreeMap<String, u32>,
    #[serde(default)]
    replicas: Vec<ReplicaFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesFile {
    file: Option<String>,
    column: Option<String>,
    constant: Option<f64>,
    source: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplicaFile {
    model: toml::Spanned<String>,
    accelerator: toml::Spanned<String>,
    #[serde(default = "one")]
    count: u32,
    accelerators: Option<u32>,
    endpoint: Option<String>,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionFile {
    name: String,
    lat: f64,
    lon: f64,
    share: f64,
    #[serde(default)]
    latency_ms: BTreeMap<String, f64>,
}

/// Default SLO classes when a fleet names none: interactive chat and offline batch.
fn default_slos() -> Vec<(String, Slo)> {
    vec![
        (
            "interactive".to_owned(),
            Slo {
                ttft_ms: 2_000.0,
                tpot_ms: 100.0,
            },
        ),
        (
            "batch".to_owned(),
            Slo {
                ttft_ms: 60_000.0,
                tpot_ms: 1_000.0,
            },
        ),
    ]
}

/// The default social cost of carbon: the US EPA's 2023 central estimate, about $190 per tonne.
const DEFAULT_CARBON_PRICE_USD_PER_TONNE: f64 = 190.0;

/// Round trip over fibre: light covers ~200 km per ms in glass, routes run ~1.5x the great-circle distance,
/// and a few ms go to the last mile and the load balancer.
pub fn estimated_rtt_ms(lat_a: f64, lon_a: f64, lat_b: f64, lon_b: f64) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6_371.0;
    let (phi_a, phi_b) = (lat_a.to_radians(), lat_b.to_radians());
    let d_phi = (lat_b - lat_a).to_radians();
    let d_lambda = (lon_b - lon_a).to_radians();
    let h = (d_phi / 2.0).sin().powi(2) + phi_a.cos() * phi_b.cos() * (d_lambda / 2.0).sin().powi(2);
    let distance_km = 2.0 * EARTH_RADIUS_KM * h.sqrt().asin();
    5.0 + 2.0 * distance_km * 1.5 / 200.0
}

/// Turns a TOML error into one naming the file and line.
pub(crate) fn toml_error(path: &Path, text: &str, error: &toml::de::Error) -> FleetError {
    let line = error.span().map(|span| line_of(text, span.start)).unwrap_or(0);
    FleetError::invalid(path, line, "toml", error.message().to_owned())
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map(|before| before.matches('\n').count() + 1)
        .unwrap_or(0)
}

impl Fleet {
    /// Reads and checks a fleet file; series files are found relative to it.
    pub fn read(path: &Path) -> Result<Self, FleetError> {
        let text = std::fs::read_to_string(path).map_err(|cause| FleetError::io(path, cause))?;
        Self::parse(path, &text)
    }

    /// [`Fleet::read`] over text already read.
    pub fn parse(path: &Path, text: &str) -> Result<Self, FleetError> {
        let file: FleetFile = toml::from_str(text).map_err(|error| toml_error(path, text, &error))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |name: &str| -> PathBuf {
            let candidate = Path::new(name);
            if candidate.is_absolute() {
                candidate.to_path_buf()
            } else {
                base.join(candidate)
            }
        };
        let accelerators = match &file.accelerators {
            Some(name) => AcceleratorCatalog::read(&resolve(name))?,
            None => AcceleratorCatalog::built_in()?,
        };
        let invalid = |line: usize, field: &str, message: String| FleetError::invalid(path, line, field, message);

        let mut slo_classes = Vec::new();
        for (name, value) in &file.slo {
            let slo: Slo = value
                .clone()
                .try_into()
                .map_err(|error: toml::de::Error| invalid(0, &format!("slo.{name}"), error.message().to_owned()))?;
            if !(slo.ttft_ms > 0.0 && slo.tpot_ms > 0.0) {
                return Err(invalid(
                    0,
                    &format!("slo.{name}"),
                    "ttft_ms and tpot_ms must be above 0".to_owned(),
                ));
            }
            slo_classes.push((name.clone(), slo));
        }
        if slo_classes.is_empty() {
            slo_classes = default_slos();
        }
        let mut slo_mix = vec![0.0; slo_classes.len()];
        if file.slo_mix.is_empty() {
            slo_mix[0] = 1.0;
        } else {
            for (name, share) in &file.slo_mix {
                let index = slo_classes
                    .iter()
                    .position(|(class, _)| class == name)
                    .ok_or_else(|| invalid(0, &format!("slo_mix.{name}"), format!("no SLO class '{name}'")))?;
                if !(share.is_finite() && *share >= 0.0) {
                    return Err(invalid(
                        0,
                        &format!("slo_mix.{name}"),
                        "must be a share >= 0".to_owned(),
                    ));
                }
                slo_mix[index] = *share;
            }
            let total: f64 = slo_mix.iter().sum();
            if total <= 0.0 {
                return Err(invalid(0, "slo_mix", "the shares sum to 0".to_owned()));
            }
            slo_mix.iter_mut().for_each(|share| *share /= total);
        }

        let mut models = Vec::new();
        for model in &file.models {
            let known = accelerators
                .all()
                .iter()
                .any(|accelerator| accelerator.classes.contains_key(model.class.get_ref()));
            if !known {
                return Err(invalid(
                    line_of(text, model.class.span().start),
                    &format!("models '{}'.class", model.name),
                    format!("no accelerator profile serves the class '{}'", model.class.get_ref()),
                ));
            }
            if models.iter().any(|known: &Model| known.name == model.name) {
                return Err(invalid(0, "models.name", format!("'{}' is declared twice", model.name)));
            }
            models.push(Model {
                name: model.name.clone(),
                class: model.class.get_ref().clone(),
            });
        }
        if models.is_empty() {
            return Err(invalid(
                0,
                "models",
                "the fleet serves no model; add a [[models]] table".to_owned(),
            ));
        }

        let mut sites = Vec::new();
        let mut replicas = Vec::new();
        for (site_index, site) in file.sites.iter().enumerate() {
            let field = |name: &str| format!("sites '{}'.{name}", site.name);
            if sites.iter().any(|known: &Site| known.name == site.name) {
                return Err(invalid(0, &field("name"), "declared twice".to_owned()));
            }
            if !(site.lat.abs() <= 90.0 && site.lon.abs() <= 180.0) {
                return Err(invalid(
                    0,
                    &field("lat"),
                    "latitude must be within ±90 and longitude within ±180".to_owned(),
                ));
            }
            if !(site.power_cap_mw.is_finite() && site.power_cap_mw > 0.0) {
                return Err(invalid(
                    0,
                    &field("power_cap_mw"),
                    "must be a number of megawatts above 0".to_owned(),
                ));
            }
            if !(site.pue.is_finite() && (1.0..=3.0).contains(&site.pue)) {
                return Err(invalid(
                    0,
                    &field("pue"),
                    format!("{} is not a PUE (between 1.0 and 3.0)", site.pue),
                ));
            }
            let (price, price_source) = read_series(
                path,
                &resolve,
                &site.price,
                SeriesKind::Price,
                site.negative_prices,
                &field("price"),
            )?;
            let (carbon, carbon_source) = read_series(
                path,
                &resolve,
                &site.carbon,
                SeriesKind::Carbon,
                NegativePrices::Reject,
                &field("carbon"),
            )?;
            for name in site.accelerators_available.keys() {
                if accelerators.find(name).is_none() {
                    return Err(invalid(
                        0,
                        &field("accelerators_available"),
                        format!("unknown accelerator '{name}'; known: {}", accelerators.names()),
                    ));
                }
            }
            for replica in &site.replicas {
                let model_index = models
                    .iter()
                    .position(|model| &model.name == replica.model.get_ref())
                    .ok_or_else(|| {
                        invalid(
                            line_of(text, replica.model.span().start),
                            &field("replicas.model"),
                            format!("no model '{}' in [[models]]", replica.model.get_ref()),
                        )
                    })?;
                let accelerator_index = accelerators.find(replica.accelerator.get_ref()).ok_or_else(|| {
                    invalid(
                        line_of(text, replica.accelerator.span().start),
                        &field("replicas.accelerator"),
                        format!(
                            "unknown accelerator '{}'; known: {}",
                            replica.accelerator.get_ref(),
                            accelerators.names()
                        ),
                    )
                })?;
                let accelerator = accelerators
                    .get(accelerator_index)
                    .ok_or_else(|| FleetError::Unknown("accelerator index".to_owned()))?;
                let class = &models[model_index].class;
                let profile = accelerator.classes.get(class).ok_or_else(|| {
                    invalid(
                        line_of(text, replica.accelerator.span().start),
                        &field("replicas.accelerator"),
                        format!("{} has no profile for the model class '{class}'", accelerator.name),
                    )
                })?;
                let chips = replica.accelerators.unwrap_or(profile.accelerators_per_replica);
                if chips < profile.accelerators_per_replica {
                    return Err(invalid(
                        line_of(text, replica.accelerator.span().start),
                        &field("replicas.accelerators"),
                        format!(
                            "a '{class}' model needs {} x {} ({:.0} GB each) to fit; {chips} given",
                            profile.accelerators_per_replica, accelerator.name, accelerator.memory_gb
                        ),
                    ));
                }
                for i in 0..replica.count {
                    replicas.push(Replica {
                        name: format!("{}/{}/{}/{i}", site.name, models[model_index].name, accelerator.name),
                        site: site_index,
                        model: model_index,
                        accelerator: accelerator_index,
                        accelerators: chips,
                        endpoint: replica.endpoint.clone(),
                        profile: profile.clone(),
                        idle_w: accelerator.idle_w,
                        prefill_w: accelerator.prefill_w,
                        decode_w: accelerator.decode_w,
                    });
                }
            }
            sites.push(Site {
                name: site.name.clone(),
                region: site.region.clone(),
                lat: site.lat,
                lon: site.lon,
                power_cap_w: site.power_cap_mw * 1e6,
                pue: site.pue,
                price,
                carbon,
                price_source,
                carbon_source,
                accelerators_available: site.accelerators_available.clone(),
            });
        }
        if sites.is_empty() {
            return Err(invalid(
                0,
                "sites",
                "the fleet has no site; add a [[sites]] table".to_owned(),
            ));
        }

        let mut user_regions = Vec::new();
        let mut latency_ms = Vec::new();
        for region in &file.user_regions {
            if !(region.share.is_finite() && region.share >= 0.0) {
                return Err(invalid(
                    0,
                    &format!("user_regions '{}'.share", region.name),
                    "must be >= 0".to_owned(),
                ));
            }
            let mut row: Vec<f64> = sites
                .iter()
                .map(|site| estimated_rtt_ms(region.lat, region.lon, site.lat, site.lon))
                .collect();
            for (site_name, latency) in &region.latency_ms {
                let index = sites.iter().position(|site| &site.name == site_name).ok_or_else(|| {
                    invalid(
                        0,
                        &format!("user_regions '{}'.latency_ms", region.name),
                        format!("no site '{site_name}'"),
                    )
                })?;
                if !(latency.is_finite() && *latency >= 0.0) {
                    return Err(invalid(
                        0,
                        &format!("user_regions '{}'.latency_ms", region.name),
                        "must be >= 0".to_owned(),
                    ));
                }
                row[index] = *latency;
            }
            user_regions.push(UserRegion {
                name: region.name.clone(),
                lat: region.lat,
                lon: region.lon,
                share: region.share,
            });
            latency_ms.push(row);
        }
        if user_regions.is_empty() {
            // With no regions declared, users sit at the first site.
            let first = &sites[0];
            user_regions.push(UserRegion {
                name: first.region.clone(),
                lat: first.lat,
                lon: first.lon,
                share: 1.0,
            });
            latency_ms.push(
                sites
                    .iter()
                    .map(|site| estimated_rtt_ms(first.lat, first.lon, site.lat, site.lon))
                    .collect(),
            );
        }
        let total_share: f64 = user_regions.iter().map(|region| region.share).sum();
        if total_share <= 0.0 {
            return Err(invalid(0, "user_regions.share", "the shares sum to 0".to_owned()));
        }
        user_regions.iter_mut().for_each(|region| region.share /= total_share);

        let carbon_price = file
            .carbon_price_usd_per_tonne
            .unwrap_or(DEFAULT_CARBON_PRICE_USD_PER_TONNE);
        if !(carbon_price.is_finite() && carbon_price >= 0.0) {
            return Err(invalid(0, "carbon_price_usd_per_tonne", "must be >= 0".to_owned()));
        }
        Ok(Fleet {
            name: file.name.clone().unwrap_or_else(|| {
                path.file_stem()
                    .map(|stem| stem.to_string_lossy().into_owned())
                    .unwrap_or_default()
            }),
            carbon_price_usd_per_tonne: carbon_price,
            slo_classes,
            slo_mix,
            models,
            sites,
            replicas,
            user_regions,
            latency_ms,
            accelerators,
        })
    }

    /// The index of the model called `name`.
    pub fn model_index(&self, name: &str) -> Option<usize> {
        self.models.iter().position(|model| model.name == name)
    }

    /// The index of the user region called `name`.
    pub fn region_index(&self, name: &str) -> Option<usize> {
        self.user_regions.iter().position(|region| region.name == name)
    }

    /// The index of the SLO class called `name`.
    pub fn slo_index(&self, name: &str) -> Option<usize> {
        self.slo_classes.iter().position(|(class, _)| class == name)
    }

    /// The index of the site called `name`.
    pub fn site_index(&self, name: &str) -> Option<usize> {
        self.sites.iter().position(|site| site.name == name)
    }

    /// The most power each site's replicas can draw (every chip in prefill), facility overhead included, in W.
    pub fn site_peak_w(&self) -> Vec<f64> {
        let mut peak = vec![0.0; self.sites.len()];
        for replica in &self.replicas {
            peak[replica.site] += replica.prefill_w * replica.accelerators as f64 * self.sites[replica.site].pue;
        }
        peak
    }
}

fn read_series(
    fleet_path: &Path,
    resolve: &dyn Fn(&str) -> PathBuf,
    series: &SeriesFile,
    kind: SeriesKind,
    negative: NegativePrices,
    field: &str,
) -> Result<(HourlySeries, String), FleetError> {
    match (&series.file, series.constant) {
        (Some(file), None) => {
            let path = resolve(file);
            let values = HourlySeries::read_csv(&path, kind, series.column.as_deref(), negative)?;
            Ok((values, series.source.clone().unwrap_or_else(|| file.clone())))
        }
        (None, Some(constant)) => {
            let probe = format!(
                "Datetime (UTC),{}\n1970-01-01 00:00:00,{constant}\n",
                match kind {
                    SeriesKind::Price => "Price (USD/MWh)",
                    SeriesKind::Carbon => "gCO2eq/kWh",
                }
            );
            HourlySeries::parse_csv(fleet_path, &probe, kind, None, negative).map_err(|error| match error {
                FleetError::Invalid { message, .. } => FleetError::invalid(fleet_path, 0, field, message),
                other => other,
            })?;
            Ok((
                HourlySeries::constant(constant),
                series.source.clone().unwrap_or_else(|| "constant".to_owned()),
            ))
        }
        _ => Err(FleetError::invalid(
            fleet_path,
            0,
            field,
            "give either file = \"series.csv\" or constant = <value>",
        )),
    }
}

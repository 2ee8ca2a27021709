//! Demand for planning: requests per second per model, user region and SLO class, with the typical prompt and
//! output length of those requests. A CSV with the header `model,region,requests_per_s,prompt_tokens,
//! output_tokens` and an optional `slo` column (the fleet's first SLO class when absent).

use std::path::Path;

use crate::{Fleet, FleetError};

/// One stream of demand the plan must serve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemandRow {
    /// Index into [`Fleet::models`].
    pub model: usize,
    /// Index into [`Fleet::user_regions`].
    pub region: usize,
    /// Index into [`Fleet::slo_classes`].
    pub slo: usize,
    /// Requests per second at the hour being planned for (usually the peak).
    pub requests_per_s: f64,
    /// Prompt tokens per request.
    pub prompt_tokens: f64,
    /// Output tokens per request.
    pub output_tokens: f64,
}

/// All demand for one planning run.
#[derive(Debug, Clone, PartialEq)]
pub struct Demand {
    /// The rows, one per (model, region, SLO class), in file order.
    pub rows: Vec<DemandRow>,
}

impl Demand {
    /// Reads a demand CSV, resolving names against `fleet`.
    pub fn read(path: &Path, fleet: &Fleet) -> Result<Self, FleetError> {
        let text = std::fs::read_to_string(path).map_err(|cause| FleetError::io(path, cause))?;
        Self::parse(path, &text, fleet)
    }

    /// [`Demand::read`] over text already read.
    pub fn parse(path: &Path, text: &str, fleet: &Fleet) -> Result<Self, FleetError> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let headers = reader
            .headers()
            .map_err(|error| FleetError::invalid(path, 1, "header", error.to_string()))?
            .clone();
        let column = |name: &str| headers.iter().position(|header| header.eq_ignore_ascii_case(name));
        let required = ["model", "region", "requests_per_s", "prompt_tokens", "output_tokens"];
        let mut indices = [0usize; 5];
        for (slot, name) in indices.iter_mut().zip(required) {
            *slot = column(name).ok_or_else(|| {
                FleetError::invalid(
                    path,
                    1,
                    "header",
                    format!(
                        "missing column '{name}' (expected {}, and optionally slo)",
                        required.join(",")
                    ),
                )
            })?;
        }
        let [model_column, region_column, rate_column, prompt_column, output_column] = indices;
        let slo_column = column("slo");

        let mut rows: Vec<DemandRow> = Vec::new();
        for (index, record) in reader.records().enumerate() {
            let line = index + 2;
            let record = record.map_err(|error| FleetError::invalid(path, line, "row", error.to_string()))?;
            let text_at = |column: usize| record.get(column).unwrap_or("");
            let model_name = text_at(model_column);
            let model = fleet.model_index(model_name).ok_or_else(|| {
                let known: Vec<&str> = fleet.models.iter().map(|model| model.name.as_str()).collect();
                FleetError::invalid(
                    path,
                    line,
                    "model",
                    format!("no model '{model_name}' in the fleet (it has {})", known.join(", ")),
                )
            })?;
            let region_name = text_at(region_column);
            let region = fleet.region_index(region_name).ok_or_else(|| {
                let known: Vec<&str> = fleet.user_regions.iter().map(|region| region.name.as_str()).collect();
                FleetError::invalid(
                    path,
                    line,
                    "region",
                    format!(
                        "no user region '{region_name}' in the fleet (it has {})",
                        known.join(", ")
                    ),
                )
            })?;
            let slo = match slo_column.map(text_at).filter(|name| !name.is_empty()) {
                None => 0,
                Some(name) => fleet.slo_index(name).ok_or_else(|| {
                    let known: Vec<&str> = fleet.slo_classes.iter().map(|(name, _)| name.as_str()).collect();
                    FleetError::invalid(
                        path,
                        line,
                        "slo",
                        format!("no SLO class '{name}' in the fleet (it has {})", known.join(", ")),
                    )
                })?,
            };
            let number = |column: usize, field: &str, minimum: f64| -> Result<f64, FleetError> {
                text_at(column)
                    .parse::<f64>()
                    .ok()
                    .filter(|value| value.is_finite() && *value >= minimum)
                    .ok_or_else(|| {
                        FleetError::invalid(
                            path,
                            line,
                            field,
                            format!("'{}' is not a number >= {minimum}", text_at(column)),
                        )
                    })
            };
            let row = DemandRow {
                model,
                region,
                slo,
                requests_per_s: number(rate_column, "requests_per_s", 0.0)?,
                prompt_tokens: number(prompt_column, "prompt_tokens", 0.0)?,
                output_tokens: number(output_column, "output_tokens", 1.0)?,
            };
            if rows
                .iter()
                .any(|seen| (seen.model, seen.region, seen.slo) == (row.model, row.region, row.slo))
            {
                return Err(FleetError::invalid(
                    path,
                    line,
                    "region",
                    format!(
                        "a second row for model '{model_name}', region '{region_name}' and SLO class '{}'; merge them",
                        fleet.slo_classes[row.slo].0
                    ),
                ));
            }
            rows.push(row);
        }
        if rows.iter().all(|row| row.requests_per_s == 0.0) {
            return Err(FleetError::invalid(
                path,
                0,
                "requests_per_s",
                "the file asks for no requests at all",
            ));
        }
        Ok(Demand { rows })
    }

    /// The same demand with every rate multiplied by `factor`.
    pub fn scaled(&self, factor: f64) -> Demand {
        Demand {
            rows: self
                .rows
                .iter()
                .map(|row| DemandRow {
                    requests_per_s: row.requests_per_s * factor,
                    ..*row
                })
                .collect(),
        }
    }

    /// Requests per second over all rows.
    pub fn total_requests_per_s(&self) -> f64 {
        self.rows.iter().map(|row| row.requests_per_s).sum()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod tests {
    use std::path::PathBuf;

    use super::*;

    /// The shipped example fleet.
    pub(crate) fn example() -> Fleet {
        Fleet::read(&shipped("example.toml")).unwrap()
    }

    /// A file of the shipped example in `data/fleet/`.
    pub(crate) fn shipped(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../data/fleet")
            .join(name)
    }

    fn error_of(text: &str) -> String {
        Demand::parse(Path::new("demand.csv"), text, &example())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_shipped_demand_reads_with_the_default_slo_class() {
        let fleet = example();
        let demand = Demand::read(&shipped("demand.csv"), &fleet).unwrap();
        assert_eq!(demand.rows.len(), 5);
        assert!(demand.rows.iter().all(|row| row.slo == 0));
        assert_eq!(demand.total_requests_per_s(), 50.0);
        assert_eq!(demand.scaled(2.0).total_requests_per_s(), 100.0);
    }

    #[test]
    fn bad_rows_name_the_line_and_the_field() {
        let header = "model,region,requests_per_s,prompt_tokens,output_tokens\n";
        assert_eq!(
            error_of(&format!("{header}llama-70b,us-east,-1,100,10\n")),
            "demand.csv:2: requests_per_s: '-1' is not a number >= 0"
        );
        assert!(
            error_of(&format!("{header}llama-70b,us-east,1,100,10\ngpt-9,us-east,1,100,10\n"))
                .starts_with("demand.csv:3: model: no model 'gpt-9' in the fleet (it has llama-70b)")
        );
        assert!(
            error_of(&format!("{header}llama-70b,mars,1,100,10\n"))
                .starts_with("demand.csv:2: region: no user region 'mars'")
        );
        assert!(
            error_of(&format!(
                "{header}llama-70b,us-east,1,100,10\nllama-70b,us-east,2,100,10\n"
            ))
            .starts_with("demand.csv:3: region: a second row")
        );
        assert!(error_of("model,region,requests_per_s\n").contains("missing column 'prompt_tokens'"));
        assert!(error_of(&format!("{header}llama-70b,us-east,0,100,10\n")).contains("no requests at all"));
        assert!(
            error_of("model,region,requests_per_s,prompt_tokens,output_tokens,slo\nllama-70b,us-east,1,100,10,gold\n")
                .contains("no SLO class 'gold'")
        );
    }
}

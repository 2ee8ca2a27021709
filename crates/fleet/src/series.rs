//! Hourly series of energy price (USD/MWh) and grid carbon intensity (gCO2eq/kWh), read from CSV files with
//! a UTC time column and a value column whose header names its unit.
//!
//! A series must be hourly without gaps or repeats; units are read from the header and converted, and values
//! that cannot be physical for the unit are refused, so a file in the wrong unit fails loudly instead of
//! skewing every decision by a factor of a thousand.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::FleetError;

/// What a price series may do with hours below zero (real in wholesale markets with surplus wind and solar).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NegativePrices {
    /// Refuse the file: a negative price is taken for a data error unless the site says otherwise.
    #[default]
    Reject,
    /// Keep them: the site buys at wholesale and is paid to consume in those hours.
    Allow,
    /// Count them as zero: the site's contract never pays it to consume.
    Clamp,
}

/// Which quantity a series holds, for reading its header and checking its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesKind {
    /// Energy price, stored in USD per MWh.
    Price,
    /// Grid carbon intensity, stored in gCO2eq per kWh.
    Carbon,
}

/// One value per UTC hour from `start_hour` on, without gaps.
#[derive(Debug, Clone, PartialEq)]
pub struct HourlySeries {
    /// The first hour, in hours since the Unix epoch.
    start_hour: i64,
    values: Vec<f64>,
    /// One value for all time, not a file's first hour.
    constant: bool,
}

impl HourlySeries {
    /// The same value at every hour.
    pub fn constant(value: f64) -> Self {
        HourlySeries {
            start_hour: 0,
            values: vec![value],
            constant: true,
        }
    }

    /// A series from its first hour (hours since the epoch) and values.
    pub fn new(start_hour: i64, values: Vec<f64>) -> Option<Self> {
        (!values.is_empty()).then_some(HourlySeries {
            start_hour,
            values,
            constant: false,
        })
    }

    /// Whether it holds one value for all time.
    pub fn is_constant(&self) -> bool {
        self.constant
    }

    /// The first and one past the last hour it covers, in hours since the epoch.
    pub fn hours(&self) -> (i64, i64) {
        (self.start_hour, self.start_hour + self.values.len() as i64)
    }

    /// The values, hour by hour.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The value in the hour holding `unix_s`. Outside the covered hours the series repeats (a one-year file
    /// stands for a typical year), so live routing in a later year still follows the daily and seasonal shape.
    pub fn at(&self, unix_s: f64) -> f64 {
        self.at_hour((unix_s / 3600.0).floor() as i64)
    }

    /// The value in hour `hour` (hours since the epoch), repeating outside the covered hours.
    pub fn at_hour(&self, hour: i64) -> f64 {
        let len = self.values.len() as i64;
        let index = (hour - self.start_hour).rem_euclid(len);
        self.values[index as usize]
    }

    /// Whether hours `from..to` lie inside the file (always true for a constant).
    pub fn covers(&self, from_hour: i64, to_hour: i64) -> bool {
        self.is_constant() || (from_hour >= self.start_hour && to_hour <= self.start_hour + self.values.len() as i64)
    }

    /// The mean over all values.
    pub fn mean(&self) -> f64 {
        self.values.iter().sum::<f64>() / self.values.len() as f64
    }

    /// Reads a series from a CSV file. `column` picks the value column by its exact header; otherwise the
    /// first column whose header names a unit of `kind` is used (for carbon, the direct figure before the
    /// life-cycle one).
    pub fn read_csv(
        path: &Path,
        kind: SeriesKind,
        column: Option<&str>,
        negative: NegativePrices,
    ) -> Result<Self, FleetError> {
        let text = std::fs::read_to_string(path).map_err(|cause| FleetError::io(path, cause))?;
        Self::parse_csv(path, &text, kind, column, negative)
    }

    /// [`HourlySeries::read_csv`] over text already read; `path` names it in errors.
    pub fn parse_csv(
        path: &Path,
        text: &str,
        kind: SeriesKind,
        column: Option<&str>,
        negative: NegativePrices,
    ) -> Result<Self, FleetError> {
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
        let headers = reader
            .headers()
            .map_err(|error| FleetError::invalid(path, 1, "header", error.to_string()))?
            .clone();
        let time_index = headers
            .iter()
            .position(|header| {
                let header = header.to_ascii_lowercase();
                header.contains("utc") || header == "timestamp" || header == "datetime" || header == "time"
            })
            .ok_or_else(|| {
                FleetError::invalid(
                    path,
                    1,
                    "header",
                    "no time column: expected a header such as 'Datetime (UTC)'",
                )
            })?;
        let (value_index, unit) = value_column(&headers, kind, column)
            .map_err(|message| FleetError::invalid(path, 1, column.unwrap_or("header"), message))?;
        let field = headers.get(value_index).unwrap_or_default().to_owned();
        let mut start_hour = None;
        let mut values: Vec<f64> = Vec::new();
        for (row, record) in reader.records().enumerate() {
            let line = row + 2;
            let record = record.map_err(|error| FleetError::invalid(path, line, "row", error.to_string()))?;
            let time_text = record.get(time_index).unwrap_or_default().trim();
            if time_text.is_empty() && record.iter().all(|cell| cell.trim().is_empty()) {
                continue;
            }
            let hour = parse_hour(time_text).map_err(|message| {
                FleetError::invalid(path, line, headers.get(time_index).unwrap_or("time"), message)
            })?;
            let value_text = record.get(value_index).unwrap_or_default().trim();
            if value_text.is_empty() {
                return Err(FleetError::invalid(path, line, &field, "no value for this hour"));
            }
            let raw: f64 = value_text
                .parse()
                .map_err(|_| FleetError::invalid(path, line, &field, format!("'{value_text}' is not a number")))?;
            if !raw.is_finite() {
                return Err(FleetError::invalid(
                    path,
                    line,
                    &field,
                    format!("'{value_text}' is not a finite number"),
                ));
            }
            let value = check_value(raw * unit, kind, negative)
                .map_err(|message| FleetError::invalid(path, line, &field, message))?;
            match start_hour {
                None => start_hour = Some(hour),
                Some(start) => {
                    let expected = start + values.len() as i64;
                    if hour < expected {
                        return Err(FleetError::invalid(
                            path,
                            line,
                            headers.get(time_index).unwrap_or("time"),
                            format!("{time_text} repeats or goes back in time; hours must increase one by one"),
                        ));
                    }
                    if hour > expected {
                        return Err(FleetError::invalid(
                            path,
                            line,
                            headers.get(time_index).unwrap_or("time"),
                            format!(
                                "{} missing hour(s) before {time_text}; the series must be hourly without gaps",
                                hour - expected
                            ),
                        ));
                    }
                }
            }
            values.push(value);
        }
        match start_hour {
            Some(start_hour) => Ok(HourlySeries {
                start_hour,
                values,
                constant: false,
            }),
            None => Err(FleetError::invalid(path, 2, &field, "the file has no rows")),
        }
    }
}

/// The value column and the factor that converts it to the stored unit.
fn value_column(headers: &csv::StringRecord, kind: SeriesKind, column: Option<&str>) -> Result<(usize, f64), String> {
    let unit_of = |header: &str| -> Option<f64> {
        let header = header.replace('₂', "2").to_ascii_lowercase().replace(' ', "");
        match kind {
            SeriesKind::Price if header.contains("usd/mwh") || header.contains("$/mwh") => Some(1.0),
            SeriesKind::Price if header.contains("usd/kwh") || header.contains("$/kwh") => Some(1000.0),
            SeriesKind::Carbon if header.contains("gco2") && header.contains("/kwh") && !header.contains("kgco2") => {
                Some(1.0)
            }
            SeriesKind::Carbon if header.contains("kgco2") && header.contains("/mwh") => Some(1.0),
            SeriesKind::Carbon if header.contains("kgco2") && header.contains("/kwh") => Some(1000.0),
            SeriesKind::Carbon if header.contains("tco2") && header.contains("/mwh") => Some(1000.0),
            SeriesKind::Carbon if header.contains("lbs") && header.contains("/mwh") => Some(0.453_592),
            _ => None,
        }
    };
    let expected = match kind {
        SeriesKind::Price => "USD/MWh or USD/kWh",
        SeriesKind::Carbon => "gCO2eq/kWh, kgCO2/MWh, tCO2/MWh or lbs/MWh",
    };
    if let Some(column) = column {
        let index = headers
            .iter()
            .position(|header| header == column)
            .ok_or_else(|| format!("no column named '{column}'"))?;
        let unit = unit_of(column).ok_or_else(|| format!("the header '{column}' does not name a unit ({expected})"))?;
        return Ok((index, unit));
    }
    headers
        .iter()
        .enumerate()
        .filter_map(|(index, header)| unit_of(header).map(|unit| (index, unit)))
        .next()
        .ok_or_else(|| format!("no value column: expected a header naming its unit ({expected})"))
}

/// The largest magnitudes that can be real; beyond them the file is in another unit.
const MAX_PRICE_USD_PER_MWH: f64 = 20_000.0;
const MAX_CARBON_G_PER_KWH: f64 = 2_000.0;

fn check_value(value: f64, kind: SeriesKind, negative: NegativePrices) -> Result<f64, String> {
    match kind {
        SeriesKind::Price => {
            if value.abs() > MAX_PRICE_USD_PER_MWH {
                return Err(format!(
                    "{value} USD/MWh is beyond any market's price cap ({MAX_PRICE_USD_PER_MWH}); is the column in another unit?"
                ));
            }
            if value < 0.0 {
                return match negative {
                    NegativePrices::Reject => Err(format!(
                        "negative price {value} USD/MWh; set negative_prices = \"allow\" (wholesale) or \"clamp\" on the site to accept it"
                    )),
                    NegativePrices::Allow => Ok(value),
                    NegativePrices::Clamp => Ok(0.0),
                };
            }
            Ok(value)
        }
        SeriesKind::Carbon => {
            if value < 0.0 {
                return Err(format!("negative carbon intensity {value} gCO2eq/kWh"));
            }
            if value > MAX_CARBON_G_PER_KWH {
                return Err(format!(
                    "{value} gCO2eq/kWh is above any grid's intensity ({MAX_CARBON_G_PER_KWH}); is the column in another unit?"
                ));
            }
            Ok(value)
        }
    }
}

/// Hours since the epoch of a UTC time on the hour: `2023-01-01 00:00:00`, with `+00:00` or `Z` or a `T`.
pub(crate) fn parse_hour(text: &str) -> Result<i64, String> {
    let seconds = parse_utc_seconds(text)?;
    if seconds.rem_euclid(3600.0) != 0.0 {
        return Err(format!("{text} is not on the hour"));
    }
    Ok((seconds / 3600.0) as i64)
}

/// Seconds since the epoch of a time in UTC (an explicit offset is honoured), fractions kept.
pub(crate) fn parse_utc_seconds(text: &str) -> Result<f64, String> {
    let text = text.trim();
    if let Ok(timestamp) = text.parse::<jiff::Timestamp>() {
        return Ok(timestamp.as_nanosecond() as f64 / 1e9);
    }
    let civil = text
        .replace('T', " ")
        .parse::<jiff::civil::DateTime>()
        .map_err(|_| format!("'{text}' is not a time such as 2023-01-01 00:00:00"))?;
    let zoned = civil
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .map_err(|error| format!("'{text}': {error}"))?;
    Ok(zoned.timestamp().as_nanosecond() as f64 / 1e9)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn parse(text: &str, kind: SeriesKind, negative: NegativePrices) -> Result<HourlySeries, FleetError> {
        HourlySeries::parse_csv(Path::new("s.csv"), text, kind, None, negative)
    }

    #[test]
    fn reads_the_green_dcc_price_shape() {
        let text = "Datetime (UTC),Datetime (Local),Price (USD/MWh)\n\
            2023-01-01 00:00:00+00:00,2023-01-01 11:00:00+11:00,24.9\n\
            2023-01-01 01:00:00+00:00,2023-01-01 12:00:00+11:00,39.7\n";
        let series = parse(text, SeriesKind::Price, NegativePrices::Reject).unwrap();
        assert_eq!(series.values(), &[24.9, 39.7]);
        let start = series.hours().0 as f64 * 3600.0;
        assert_eq!(series.at(start + 3599.0), 24.9);
        assert_eq!(series.at(start + 3600.0), 39.7);
        assert_eq!(series.at(start + 7200.0), 24.9, "repeats outside the file");
    }

    #[test]
    fn converts_units_and_picks_the_direct_carbon_figure() {
        let text = "Datetime (UTC),Zone Id,Carbon Intensity gCO₂eq/kWh (direct),Carbon Intensity gCO₂eq/kWh (LCA)\n\
            2023-01-01 00:00:00,AU-NSW,295.12,345.14\n";
        let series = parse(text, SeriesKind::Carbon, NegativePrices::Reject).unwrap();
        assert_eq!(series.values(), &[295.12]);
        let kwh = "timestamp,price USD/kWh\n2023-01-01T00:00:00Z,0.05\n";
        assert_eq!(
            parse(kwh, SeriesKind::Price, NegativePrices::Reject).unwrap().values(),
            &[50.0]
        );
    }

    #[test]
    fn gaps_repeats_negatives_and_wrong_units_name_the_line() {
        let gap = "Datetime (UTC),Price (USD/MWh)\n2023-01-01 00:00:00,1\n2023-01-01 02:00:00,2\n";
        let error = parse(gap, SeriesKind::Price, NegativePrices::Reject)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("s.csv:3: Datetime (UTC): 1 missing hour"), "{error}");
        let repeat = "Datetime (UTC),Price (USD/MWh)\n2023-01-01 00:00:00,1\n2023-01-01 00:00:00,2\n";
        assert!(
            parse(repeat, SeriesKind::Price, NegativePrices::Reject)
                .unwrap_err()
                .to_string()
                .contains(":3:")
        );
        let negative = "Datetime (UTC),Price (USD/MWh)\n2023-01-01 00:00:00,-5\n";
        let error = parse(negative, SeriesKind::Price, NegativePrices::Reject)
            .unwrap_err()
            .to_string();
        assert!(error.contains("s.csv:2: Price (USD/MWh): negative price"), "{error}");
        assert_eq!(
            parse(negative, SeriesKind::Price, NegativePrices::Clamp)
                .unwrap()
                .values(),
            &[0.0]
        );
        assert_eq!(
            parse(negative, SeriesKind::Price, NegativePrices::Allow)
                .unwrap()
                .values(),
            &[-5.0]
        );
        let wrong_unit = "Datetime (UTC),Price (USD/kWh)\n2023-01-01 00:00:00,45\n";
        let error = parse(wrong_unit, SeriesKind::Price, NegativePrices::Reject)
            .unwrap_err()
            .to_string();
        assert!(error.contains("another unit"), "{error}");
        let no_unit = "Datetime (UTC),price\n2023-01-01 00:00:00,45\n";
        assert!(
            parse(no_unit, SeriesKind::Price, NegativePrices::Reject)
                .unwrap_err()
                .to_string()
                .contains("unit")
        );
        let not_number = "Datetime (UTC),Price (USD/MWh)\n2023-01-01 00:00:00,abc\n";
        assert!(
            parse(not_number, SeriesKind::Price, NegativePrices::Reject)
                .unwrap_err()
                .to_string()
                .contains("not a number")
        );
        let off_hour = "Datetime (UTC),Price (USD/MWh)\n2023-01-01 00:30:00,4\n";
        assert!(
            parse(off_hour, SeriesKind::Price, NegativePrices::Reject)
                .unwrap_err()
                .to_string()
                .contains("on the hour")
        );
    }
}

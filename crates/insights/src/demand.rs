//! Hourly demand: model calls per model and tenant from the ledger, and shopper events per kind, laid on a
//! dense hour axis (hours with nothing are zeros, not gaps, so a quiet night is seen as quiet).

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::InsightsError;

/// Model calls of one model by one tenant in one hour, as the gateway's ledger sums them.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerHour {
    /// Hours since the Unix epoch (UTC).
    pub hour: i64,
    /// The model as clients named it.
    pub model: String,
    /// The tenant that paid.
    pub tenant: String,
    /// The product feature that made the calls; empty when the caller did not say.
    pub feature: String,
    /// Requests, whatever their outcome.
    pub requests: i64,
    /// Requests that did not end `ok`.
    pub failed: i64,
    /// Input tokens.
    pub prompt_tokens: i64,
    /// Output tokens.
    pub completion_tokens: i64,
    /// What they cost, micro-dollars.
    pub cost_micros: i64,
}

/// Shopper events of one kind in one hour.
#[derive(Debug, Clone, PartialEq)]
pub struct ShopperHour {
    /// Hours since the Unix epoch (UTC).
    pub hour: i64,
    /// `search`, `view`, `cart`, `order`, ...
    pub kind: String,
    /// How many.
    pub events: i64,
}

/// Reads an RFC 3339 time, or the ledger's hour labels (`2026-12-03T14:00Z`), as hours since the epoch
/// (rounded down).
pub fn unix_hour(text: &str) -> Result<i64, InsightsError> {
    let bad = || InsightsError::BadTime { text: text.to_owned() };
    let timestamp = jiff::Timestamp::from_str(text)
        .or_else(|_| jiff::Timestamp::from_str(&text.replace(":00Z", ":00:00Z")))
        .or_else(|_| {
            jiff::civil::Date::from_str(text)
                .and_then(|date| jiff::tz::TimeZone::UTC.to_timestamp(date.to_datetime(jiff::civil::Time::midnight())))
        })
        .map_err(|_| bad())?;
    Ok(timestamp.as_second().div_euclid(3600))
}

/// An hour as `YYYY-MM-DDTHH:00Z`.
pub fn hour_label(hour: i64) -> String {
    match jiff::Timestamp::from_second(hour.saturating_mul(3600)) {
        Ok(timestamp) => format!("{}Z", timestamp.strftime("%Y-%m-%dT%H:00")),
        Err(_) => format!("hour {hour}"),
    }
}

/// Values per hour over `[from, to)`, zeros where nothing happened.
pub(crate) fn dense<T>(
    rows: &[T],
    from: i64,
    to: i64,
    hour: impl Fn(&T) -> i64,
    value: impl Fn(&T) -> f64,
) -> Vec<f64> {
    let length = usize::try_from(to - from).unwrap_or(0);
    let mut values = vec![0.0; length];
    for row in rows {
        if let Ok(index) = usize::try_from(hour(row) - from)
            && index < length
        {
            values[index] += value(row);
        }
    }
    values
}

/// Sums by a key, largest first.
pub(crate) fn totals_by<T>(rows: &[T], key: impl Fn(&T) -> &str, value: impl Fn(&T) -> i64) -> Vec<(String, i64)> {
    let mut sums: BTreeMap<&str, i64> = BTreeMap::new();
    for row in rows {
        *sums.entry(key(row)).or_default() += value(row);
    }
    let mut sums: Vec<(String, i64)> = sums.into_iter().map(|(key, sum)| (key.to_owned(), sum)).collect();
    sums.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sums
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn hours_read_from_rfc3339_ledger_labels_and_dates() {
        let hour = unix_hour("2026-12-03T14:00Z").unwrap();
        assert_eq!(hour, unix_hour("2026-12-03T14:59:59.999Z").unwrap());
        assert_eq!(hour_label(hour), "2026-12-03T14:00Z");
        assert_eq!(unix_hour("2026-12-03").unwrap(), hour - 14);
        assert!(matches!(unix_hour("yesterday"), Err(InsightsError::BadTime { .. })));
    }

    #[test]
    fn quiet_hours_are_zeros_and_rows_outside_the_range_are_left_out() {
        let rows = [(10, 2.0), (12, 3.0), (12, 1.0), (20, 9.0), (5, 9.0)];
        let values = dense(&rows, 10, 14, |row| row.0, |row| row.1);
        assert_eq!(values, vec![2.0, 0.0, 4.0, 0.0]);
    }
}

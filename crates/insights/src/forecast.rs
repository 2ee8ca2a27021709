//! Forecasts of hourly series: additive Holt-Winters with a damped trend and a daily season, its smoothing
//! weights chosen over a grid by the squared error of the day-ahead forecasts they would have made; prediction intervals from the residuals; and a
//! backtest that holds out the last hours and compares with the seasonal naive forecast (the same hour a day
//! earlier).
//!
//! Shorter histories get what they can support: under two seasons, a damped trend without a season (Holt);
//! under two points, the last value. The method used is always reported, so a forecast never looks more
//! confident than its data.

use serde::Serialize;

use crate::InsightsError;

/// One day of hours: the season demand repeats with.
pub const SEASON_HOURS: usize = 24;

/// The two-sided 90% normal quantile: intervals hold 90% of outcomes when residuals are normal.
const Z_90: f64 = 1.644_853_6;

/// Hours between the origins whose day-ahead forecasts score a set of weights.
const SELECTION_STRIDE: usize = 4;

const ALPHAS: [f64; 7] = [0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9];
const BETAS: [f64; 4] = [0.0, 0.02, 0.1, 0.3];
const GAMMAS: [f64; 5] = [0.0, 0.05, 0.15, 0.3, 0.5];
const PHIS: [f64; 3] = [0.8, 0.9, 0.98];

/// How a forecast was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Level, damped trend and a daily season (two days of history or more).
    HoltWinters,
    /// Level and damped trend (two hours of history or more).
    Holt,
    /// The last value, flat (less history than that).
    LastValue,
}

/// A model fitted to a series, ready to forecast from its end.
#[derive(Debug, Clone, Serialize)]
pub struct Fitted {
    /// How.
    pub method: Method,
    /// Level smoothing weight.
    pub alpha: f64,
    /// Trend smoothing weight.
    pub beta: f64,
    /// Season smoothing weight.
    pub gamma: f64,
    /// Trend damping per step.
    pub phi: f64,
    /// Standard deviation of the one-step-ahead errors.
    pub residual_sd: f64,
    /// Points fitted.
    pub observations: usize,
    #[serde(skip)]
    level: f64,
    #[serde(skip)]
    trend: f64,
    /// Seasonal terms by position in the season (`t % SEASON_HOURS`); empty without a season.
    #[serde(skip)]
    season: Vec<f64>,
}

/// One forecast step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ForecastPoint {
    /// Steps after the last observation (1 = the next hour).
    pub step: usize,
    /// Expected value.
    pub mean: f64,
    /// Lower end of the 90% prediction interval.
    pub lower: f64,
    /// Upper end of the 90% prediction interval.
    pub upper: f64,
}

/// How well the method forecast hours it had not seen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Backtest {
    /// Hours held out at the end of the series.
    pub holdout_hours: usize,
    /// Mean absolute error over them.
    pub mae: f64,
    /// Symmetric mean absolute percentage error, 0-200 (hours where forecast and actual are both 0 skipped).
    pub smape_percent: f64,
    /// The seasonal naive forecast's mean absolute error on the same hours.
    pub seasonal_naive_mae: f64,
    /// `mae / seasonal_naive_mae`: below 1 beats the naive forecast.
    pub relative_mae: f64,
    /// Share of held-out hours inside the 90% interval.
    pub interval_coverage: f64,
}

/// Fits the best model the history supports. Every value must be finite.
pub fn fit(series: &[f64]) -> Result<Fitted, InsightsError> {
    if let Some(index) = series.iter().position(|value| !value.is_finite()) {
        return Err(InsightsError::NotFinite { index });
    }
    let fitted = if series.len() >= 2 * SEASON_HOURS {
        best_of(series, &GAMMAS, Method::HoltWinters)
    } else if series.len() >= 2 {
        best_of(series, &[0.0], Method::Holt)
    } else {
        Fitted {
            method: Method::LastValue,
            alpha: 1.0,
            beta: 0.0,
            gamma: 0.0,
            phi: 0.0,
            residual_sd: 0.0,
            observations: series.len(),
            level: series.last().copied().unwrap_or(0.0),
            trend: 0.0,
            season: Vec::new(),
        }
    };
    Ok(fitted)
}

fn best_of(series: &[f64], gammas: &[f64], method: Method) -> Fitted {
    let mut best: Option<(f64, Fitted)> = None;
    for &alpha in &ALPHAS {
        for &beta in &BETAS {
            for &gamma in gammas {
                for &phi in &PHIS {
                    let run = smooth(series, method, alpha, beta, gamma, phi);
                    if best.as_ref().is_none_or(|(sse, _)| run.0 < *sse) {
                        best = Some(run);
                    }
                }
            }
        }
    }
    match best {
        Some((_, fitted)) => fitted,
        None => smooth(series, method, ALPHAS[0], BETAS[0], gammas[0], PHIS[0]).1,
    }
}

/// One pass of the smoother with fixed weights: the squared errors of its day-ahead forecasts (made every
/// `SELECTION_STRIDE` hours) and the final state.
fn smooth(series: &[f64], method: Method, alpha: f64, beta: f64, gamma: f64, phi: f64) -> (f64, Fitted) {
    let seasonal = method == Method::HoltWinters;
    let (mut level, mut trend, mut season, start) = if seasonal {
        let first = mean(&series[..SEASON_HOURS]);
        let second = mean(&series[SEASON_HOURS..2 * SEASON_HOURS]);
        let season: Vec<f64> = series[..SEASON_HOURS].iter().map(|value| value - first).collect();
        (first, (second - first) / SEASON_HOURS as f64, season, SEASON_HOURS)
    } else {
        (series[0], series[1] - series[0], Vec::new(), 1)
    };
    let mut squared_errors = 0.0;
    let mut horizon_errors = 0.0;
    for (t, &actual) in series.iter().enumerate().skip(start) {
        if t % SELECTION_STRIDE == 0 {
            // What the forecast from here would have said about the coming day: the weights are chosen for the
            // horizon the loop plans on, not only the next hour.
            let mut damped_sum = 0.0;
            let mut damping = 1.0;
            for (step, &later) in series[t..].iter().take(SEASON_HOURS).enumerate() {
                damping *= phi;
                damped_sum += damping;
                let seasonal_term = if seasonal {
                    season[(t + step) % SEASON_HOURS]
                } else {
                    0.0
                };
                let error = later - (level + damped_sum * trend + seasonal_term);
                horizon_errors += error * error;
            }
        }
        let seasonal_term = if seasonal { season[t % SEASON_HOURS] } else { 0.0 };
        let predicted = level + phi * trend + seasonal_term;
        let error = actual - predicted;
        squared_errors += error * error;
        let new_level = alpha * (actual - seasonal_term) + (1.0 - alpha) * (level + phi * trend);
        trend = beta * (new_level - level) + (1.0 - beta) * phi * trend;
        level = new_level;
        if seasonal {
            season[t % SEASON_HOURS] = gamma * (actual - level) + (1.0 - gamma) * seasonal_term;
        }
    }
    let residuals = series.len() - start;
    let fitted = Fitted {
        method,
        alpha,
        beta,
        gamma,
        phi,
        residual_sd: (squared_errors / residuals.max(1) as f64).sqrt(),
        observations: series.len(),
        level,
        trend,
        season,
    };
    (horizon_errors, fitted)
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

impl Fitted {
    /// The next `steps` values with 90% intervals; with `floor`, nothing below it (demand is never negative).
    pub fn forecast(&self, steps: usize, floor: Option<f64>) -> Vec<ForecastPoint> {
        let mut points = Vec::with_capacity(steps);
        let mut damped_sum: f64 = 0.0;
        let mut damping: f64 = 1.0;
        // Variance of the h-step error relative to the one-step variance, for ETS(A,Ad,A).
        let mut variance_factor: f64 = 1.0;
        for step in 1..=steps {
            damping *= self.phi;
            damped_sum += damping;
            let seasonal = if self.season.is_empty() {
                0.0
            } else {
                self.season[(self.observations + step - 1) % SEASON_HOURS]
            };
            let mean = self.level + damped_sum * self.trend + seasonal;
            let spread = Z_90 * self.residual_sd * variance_factor.sqrt();
            let clamp = |value: f64| floor.map_or(value, |floor| value.max(floor));
            points.push(ForecastPoint {
                step,
                mean: clamp(mean),
                lower: clamp(mean - spread),
                upper: clamp(mean + spread),
            });
            let season_hit = if !self.season.is_empty() && step.is_multiple_of(SEASON_HOURS) {
                self.gamma
            } else {
                0.0
            };
            let weight = self.alpha + self.alpha * self.beta * damped_sum + season_hit;
            variance_factor += weight * weight;
        }
        points
    }
}

/// Fits on all but the last `holdout` hours and scores the forecast of those; `None` when what is left would
/// not hold two seasons (the seasonal naive baseline needs one, the fit two).
pub fn backtest(series: &[f64], holdout: usize, floor: Option<f64>) -> Result<Option<Backtest>, InsightsError> {
    if holdout == 0 || series.len() < 2 * SEASON_HOURS + holdout {
        return Ok(None);
    }
    let split = series.len() - holdout;
    let (train, test) = series.split_at(split);
    let forecast = fit(train)?.forecast(holdout, floor);
    let mut absolute = 0.0;
    let mut naive_absolute = 0.0;
    let mut percent = 0.0;
    let mut percent_count = 0usize;
    let mut covered = 0usize;
    for (index, (&actual, point)) in test.iter().zip(&forecast).enumerate() {
        absolute += (actual - point.mean).abs();
        let naive = train[split - SEASON_HOURS + index % SEASON_HOURS];
        naive_absolute += (actual - naive).abs();
        let scale = actual.abs() + point.mean.abs();
        if scale > 0.0 {
            percent += 200.0 * (actual - point.mean).abs() / scale;
            percent_count += 1;
        }
        if point.lower <= actual && actual <= point.upper {
            covered += 1;
        }
    }
    let hours = holdout as f64;
    let mae = absolute / hours;
    let seasonal_naive_mae = naive_absolute / hours;
    Ok(Some(Backtest {
        holdout_hours: holdout,
        mae,
        smape_percent: percent / percent_count.max(1) as f64,
        seasonal_naive_mae,
        relative_mae: if seasonal_naive_mae > 0.0 {
            mae / seasonal_naive_mae
        } else if mae == 0.0 {
            1.0
        } else {
            f64::INFINITY
        },
        interval_coverage: covered as f64 / hours,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A deterministic noise source, so tests see the same series every run.
    fn noise(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    }

    fn daily(hours: usize, noise_scale: f64) -> Vec<f64> {
        let mut seed = 7;
        (0..hours)
            .map(|t| {
                let hour = (t % SEASON_HOURS) as f64;
                100.0 + 40.0 * (hour / 24.0 * std::f64::consts::TAU).sin() + noise_scale * noise(&mut seed)
            })
            .collect()
    }

    #[test]
    fn an_exactly_repeating_day_is_forecast_exactly() {
        let series = daily(24 * 5, 0.0);
        let fitted = fit(&series).unwrap();
        assert_eq!(fitted.method, Method::HoltWinters);
        for point in fitted.forecast(48, None) {
            let expected = series[(series.len() + point.step - 1) % SEASON_HOURS];
            assert!((point.mean - expected).abs() < 1e-6, "{point:?} vs {expected}");
        }
    }

    #[test]
    fn on_a_noisy_day_the_backtest_beats_the_seasonal_naive_forecast() {
        let series = daily(24 * 14, 30.0);
        let backtest = backtest(&series, 24, Some(0.0)).unwrap().unwrap();
        assert!(backtest.relative_mae < 1.0, "{backtest:?}");
        assert!(backtest.interval_coverage >= 0.7, "{backtest:?}");
    }

    #[test]
    fn short_histories_fall_back_and_say_so() {
        assert_eq!(fit(&[]).unwrap().method, Method::LastValue);
        assert_eq!(fit(&[3.0]).unwrap().forecast(2, None)[1].mean, 3.0);
        assert_eq!(fit(&[1.0, 2.0, 3.0]).unwrap().method, Method::Holt);
        assert!(backtest(&[1.0; 30], 24, None).unwrap().is_none());
    }

    #[test]
    fn a_value_that_is_not_a_number_is_named() {
        let error = fit(&[1.0, f64::NAN]).unwrap_err();
        assert!(matches!(error, InsightsError::NotFinite { index: 1 }));
    }

    proptest! {
        #[test]
        fn forecasts_are_finite_ordered_and_floored(series in proptest::collection::vec(0.0f64..1e6, 0..120)) {
            let fitted = fit(&series).unwrap();
            for point in fitted.forecast(30, Some(0.0)) {
                prop_assert!(point.mean.is_finite() && point.lower.is_finite() && point.upper.is_finite());
                prop_assert!(point.lower <= point.mean && point.mean <= point.upper);
                prop_assert!(point.lower >= 0.0);
            }
        }

        #[test]
        fn intervals_widen_with_the_horizon(series in proptest::collection::vec(0.0f64..1e3, 50..100)) {
            let points = fit(&series).unwrap().forecast(48, None);
            for pair in points.windows(2) {
                let width = |point: &ForecastPoint| point.upper - point.lower;
                prop_assert!(width(&pair[1]) >= width(&pair[0]) - 1e-9);
            }
        }
    }
}

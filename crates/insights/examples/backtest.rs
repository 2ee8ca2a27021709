//! Backtests the forecaster on hourly CSV series (`Datetime,value` with a header, as the fleet's price files):
//! for each file and each of its last seven days, that day is forecast from the hours before it and scored
//! against the seasonal naive forecast; the figures are the means over the seven days.
//! `cargo run --release -p insights --example backtest -- data/fleet/prices/*.csv`

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut failed = false;
    println!(
        "{:<28} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "series", "hours", "MAE", "naive", "relative", "in 90%"
    );
    for path in std::env::args().skip(1) {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => {
                eprintln!("error: {path}: {error}");
                failed = true;
                continue;
            }
        };
        let values: Vec<f64> = text
            .lines()
            .skip(1)
            .filter_map(|line| line.split(',').nth(1)?.trim().parse().ok())
            .collect();
        let days: Result<Vec<_>, _> = (0..7)
            .filter_map(|day| values.len().checked_sub(day * 24))
            .map(|end| insights::forecast::backtest(&values[..end], 24, None))
            .collect();
        let days: Option<Vec<insights::Backtest>> = match days {
            Ok(days) => days.into_iter().collect(),
            Err(error) => {
                eprintln!("error: {path}: {error}");
                failed = true;
                continue;
            }
        };
        let mean = |days: &[insights::Backtest], figure: fn(&insights::Backtest) -> f64| {
            days.iter().map(figure).sum::<f64>() / days.len().max(1) as f64
        };
        match days {
            Some(days) => println!(
                "{:<28} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>8.0}%",
                std::path::Path::new(&path)
                    .file_name()
                    .map_or(path.clone(), |name| name.to_string_lossy().into_owned()),
                values.len(),
                mean(&days, |day| day.mae),
                mean(&days, |day| day.seasonal_naive_mae),
                mean(&days, |day| day.mae) / mean(&days, |day| day.seasonal_naive_mae),
                mean(&days, |day| day.interval_coverage) * 100.0
            ),
            None => println!("{path}: too short to backtest ({} hours)", values.len()),
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

//! SVG charts of simulation results: each policy's energy cost and carbon side by side, and each site's
//! hourly power draw against its cap under each policy.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::FleetError;
use crate::sim::SimulationReport;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn chart_error(path: &Path, error: impl std::fmt::Display) -> FleetError {
    FleetError::io(path, std::io::Error::other(error.to_string()))
}

/// Writes `policies.svg` and one `site-power-<policy>.svg` per report into `directory`; returns the paths.
pub fn write_simulation_charts(directory: &Path, reports: &[SimulationReport]) -> Result<Vec<PathBuf>, FleetError> {
    std::fs::create_dir_all(directory).map_err(|cause| FleetError::io(directory, cause))?;
    let mut written = Vec::new();
    let path = directory.join("policies.svg");
    policy_bars(&path, reports).map_err(|error| chart_error(&path, error))?;
    written.push(path);
    for report in reports {
        let path = directory.join(format!("site-power-{}.svg", report.policy));
        site_power(&path, report).map_err(|error| chart_error(&path, error))?;
        written.push(path);
    }
    Ok(written)
}

/// One chart panel: its title and the figure it plots for each report.
type Metric = (&'static str, fn(&SimulationReport) -> f64);

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn policy_bars(path: &Path, reports: &[SimulationReport]) -> DrawResult {
    let root = SVGBackend::new(path, (1100, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 3));
    let metrics: [Metric; 3] = [
        ("energy cost (USD)", |report| report.energy_cost_usd),
        ("carbon (kg CO2e)", |report| report.carbon_kg),
        ("SLO attainment (%)", |report| report.slo_attainment * 100.0),
    ];
    for (panel, (title, value)) in panels.iter().zip(metrics) {
        let top = reports.iter().map(value).fold(0.0_f64, f64::max).max(1e-9) * 1.15;
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(70)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..reports.len() as f64, 0.0..top)?;
        let names: Vec<String> = reports.iter().map(|report| report.policy.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(reports.len().max(1) * 2 + 1)
            .x_label_formatter(&|x| {
                let index = x.floor() as usize;
                if (x - index as f64 - 0.5).abs() < 0.26 {
                    names.get(index).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_label_style(("sans-serif", 11).into_font().transform(FontTransform::Rotate90))
            .draw()?;
        chart.draw_series(reports.iter().enumerate().map(|(index, report)| {
            let color = PALETTE[index % PALETTE.len()];
            Rectangle::new(
                [(index as f64 + 0.15, 0.0), (index as f64 + 0.85, value(report))],
                color.filled(),
            )
        }))?;
    }
    root.present()?;
    Ok(())
}

fn site_power(path: &Path, report: &SimulationReport) -> DrawResult {
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let hours = report
        .sites
        .iter()
        .map(|site| site.hourly_mw.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let top = report
        .sites
        .iter()
        .flat_map(|site| site.hourly_mw.iter().copied().chain([site.power_cap_mw]))
        .fold(0.0_f64, f64::max)
        .max(1e-9)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("average draw per hour by site, MW ({})", report.policy),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..hours as f64, 0.0..top)?;
    chart.configure_mesh().x_desc("hour").y_desc("MW").draw()?;
    for (index, site) in report.sites.iter().enumerate() {
        let color = PALETTE[index % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                site.hourly_mw
                    .iter()
                    .enumerate()
                    .map(|(hour, mw)| (hour as f64 + 0.5, *mw)),
                color.stroke_width(2),
            ))?
            .label(site.site.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        chart.draw_series(LineSeries::new(
            [(0.0, site.power_cap_mw), (hours as f64, site.power_cap_mw)],
            color.mix(0.4),
        ))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

//! Server-rendered SVG charts (plotters): hourly series as lines, with a shaded band for prediction intervals.
//! A page embeds the SVG inline, so charts need no script and no request of their own.

use plotters::prelude::*;

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One line: values at consecutive hours from `start`.
pub(crate) struct Line<'a> {
    pub(crate) name: &'a str,
    pub(crate) start: usize,
    pub(crate) values: &'a [f64],
}

/// A shaded interval under the lines: lower and upper values from `start`.
pub(crate) struct Band<'a> {
    pub(crate) start: usize,
    pub(crate) lower: &'a [f64],
    pub(crate) upper: &'a [f64],
}

/// A line chart over hours, as SVG text; a chart that cannot be drawn is a sentence saying so.
pub(crate) fn hourly_chart(title: &str, y_label: &str, lines: &[Line<'_>], band: Option<&Band<'_>>) -> String {
    let mut svg = String::new();
    let drawn = draw(&mut svg, title, y_label, lines, band);
    match drawn {
        Ok(()) => svg,
        Err(error) => format!(
            "<p class=\"note\">chart unavailable: {}</p>",
            escape(&error.to_string())
        ),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn draw(
    svg: &mut String,
    title: &str,
    y_label: &str,
    lines: &[Line<'_>],
    band: Option<&Band<'_>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let hours = lines
        .iter()
        .map(|line| line.start + line.values.len())
        .chain(band.map(|band| band.start + band.upper.len()))
        .max()
        .unwrap_or(1)
        .max(2);
    let top = lines
        .iter()
        .flat_map(|line| line.values.iter().copied())
        .chain(band.into_iter().flat_map(|band| band.upper.iter().copied()))
        .filter(|value| value.is_finite())
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.1;
    let bottom = lines
        .iter()
        .flat_map(|line| line.values.iter().copied())
        .filter(|value| value.is_finite())
        .fold(0.0_f64, f64::min)
        * 1.1;
    {
        let root = SVGBackend::with_string(svg, (760, 260)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..(hours - 1) as f64, bottom..top)?;
        chart
            .configure_mesh()
            .x_desc("hour")
            .y_desc(y_label)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        if let Some(band) = band {
            let upper = band
                .upper
                .iter()
                .enumerate()
                .map(|(index, value)| ((band.start + index) as f64, *value));
            let lower = band
                .lower
                .iter()
                .enumerate()
                .rev()
                .map(|(index, value)| ((band.start + index) as f64, *value));
            let outline: Vec<(f64, f64)> = upper.chain(lower).collect();
            chart.draw_series(std::iter::once(Polygon::new(outline, PALETTE[1].mix(0.2).filled())))?;
        }
        for (index, line) in lines.iter().enumerate() {
            let color = PALETTE[index % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    line.values
                        .iter()
                        .enumerate()
                        .map(|(hour, value)| ((line.start + hour) as f64, *value)),
                    color.stroke_width(2),
                ))?
                .label(line.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        }
        if lines.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(RGBColor(200, 200, 200))
                .draw()?;
        }
        root.present()?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_inline_svg_and_empty_series_still_draw() {
        let values = [1.0, 4.0, 2.0];
        let svg = hourly_chart(
            "requests",
            "per hour",
            &[Line {
                name: "chat",
                start: 0,
                values: &values,
            }],
            Some(&Band {
                start: 2,
                lower: &[1.0, 1.5],
                upper: &[3.0, 5.0],
            }),
        );
        assert!(svg.starts_with("<svg"), "{svg:.80}");
        assert!(svg.contains("requests"));
        assert!(hourly_chart("nothing", "", &[], None).starts_with("<svg"));
    }
}

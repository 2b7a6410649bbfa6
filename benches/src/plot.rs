//! Throughput and latency curves (plotters), as SVG and PNG for docs/.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::report::Row;

/// Fonts tried, in order, for the text in the images.
const FONTS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

fn load_font() -> Result<()> {
    let path = FONTS
        .iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| {
            anyhow!("no TrueType font found for the images (install fonts-dejavu-core)")
        })?;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {path}"))?;
    // plotters keeps the font for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{path} is not a usable font"))
}

/// One curve: a label and (callers, value) points.
struct Series {
    label: String,
    points: Vec<(f64, f64)>,
}

fn series(rows: &[Row], value: impl Fn(&Row) -> f64) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for r in rows {
        let label = r.op.name().to_owned();
        let point = (r.concurrency as f64, value(r));
        match out.iter_mut().find(|s| s.label == label) {
            Some(s) => s.points.push(point),
            None => out.push(Series {
                label,
                points: vec![point],
            }),
        }
    }
    out
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    data: &[Series],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
    let max_x = data
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(1.0_f64, f64::max);
    let (min_y, max_y) = data
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|v| *v > 0.0)
        .fold((f64::MAX, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if max_y <= 0.0 {
        bail!("nothing to plot");
    }
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (0.8..max_x * 1.25).log_scale(),
            ((min_y * 0.5).max(1e-3)..max_y * 2.0).log_scale(),
        )
        .map_err(|e| anyhow!("{e:?}"))?;
    chart
        .configure_mesh()
        .x_desc("concurrent callers")
        .y_desc(y_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| {
            if *y >= 1.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.2}")
            }
        })
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;
    for (i, s) in data.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|p| p.1 > 0.0).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| anyhow!("{e:?}"))?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(|e| anyhow!("{e:?}"))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;
    root.present().map_err(|e| anyhow!("{e:?}"))?;
    Ok(())
}

/// Writes `throughput.{svg,png}` and `latency.{svg,png}` into `dir`;
/// returns the files written.
///
/// # Errors
/// If no font is found or a file cannot be written.
pub fn write_images(dir: &Path, rows: &[Row], nodes: u64) -> Result<Vec<PathBuf>> {
    load_font()?;
    let throughput = series(rows, |r| r.ours.ops_per_s);
    let latency = series(rows, |r| r.ours.p99_ms);
    let charts = [
        (
            "throughput",
            format!("Throughput through the SDK, {nodes}-node cluster"),
            "operations per second",
            &throughput,
        ),
        (
            "latency",
            format!("p99 latency through the SDK, {nodes}-node cluster"),
            "p99 latency (ms)",
            &latency,
        ),
    ];
    let mut written = Vec::new();
    for (name, title, y, data) in charts {
        let svg = dir.join(format!("{name}.svg"));
        draw(
            SVGBackend::new(&svg, (900, 560)).into_drawing_area(),
            &title,
            y,
            data,
        )?;
        let png = dir.join(format!("{name}.png"));
        draw(
            BitMapBackend::new(&png, (900, 560)).into_drawing_area(),
            &title,
            y,
            data,
        )?;
        written.extend([svg, png]);
    }
    Ok(written)
}

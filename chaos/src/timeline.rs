//! The run's timeline as an image, `DIR/timeline.svg`, drawn as Jepsen's
//! latency plots are: every operation a point at the time it was invoked
//! and the latency it had (log scale), coloured by outcome, over the fault
//! windows shaded in the colour of their kind; below, the throughput (ok,
//! and failed or unknown, operations per second) over the same time axis.
//!
//! The SVG is written by hand. A big history is downsampled: each
//! occupied 2-pixel cell of each outcome is drawn once, so the file stays
//! small (a few MB at most for hundreds of thousands of operations).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

use crate::history::{self, Entry, Outcome};

/// One fault, from `faults.jsonl`: when it started and when it was healed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultWindow {
    /// Its kind as the nemesis names it (`kill`, `one-way`, ...).
    pub kind: String,
    /// When it started, ms since the run started.
    pub start_ms: u64,
    /// When it was healed; none if the log ends before it was (it then
    /// lasts to the end of the timeline).
    pub healed_ms: Option<u64>,
    /// How long after the heal the cluster took to recover, when known.
    pub recovery_ms: Option<u64>,
}

/// Reads `faults.jsonl`: a start line per fault (`start_ms`, and the step
/// with its kind in `step.fault`) and, later, a heal line (`healed_ms`,
/// perhaps `recovery_ms`). A heal closes the earliest fault still open, so
/// overlapping faults pair up in order; a heal with none open and lines of
/// other shapes are ignored, and so are unknown fields.
///
/// # Errors
/// If reading fails, or a line is not JSON (named by its number).
pub fn read_faults(r: impl BufRead) -> anyhow::Result<Vec<FaultWindow>> {
    let mut faults: Vec<FaultWindow> = Vec::new();
    let mut open: VecDeque<usize> = VecDeque::new();
    for (n, line) in r.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("faults line {}: {e}", n + 1))?;
        let recovery_ms = v.get("recovery_ms").and_then(Value::as_u64);
        let healed_ms = v.get("healed_ms").and_then(Value::as_u64);
        if let Some(start_ms) = v.get("start_ms").and_then(Value::as_u64) {
            let kind = v
                .pointer("/step/fault")
                .and_then(Value::as_str)
                .unwrap_or("fault")
                .to_string();
            if healed_ms.is_none() {
                open.push_back(faults.len());
            }
            faults.push(FaultWindow {
                kind,
                start_ms,
                healed_ms,
                recovery_ms,
            });
        } else if let Some(healed_ms) = healed_ms {
            if let Some(i) = open.pop_front() {
                faults[i].healed_ms = Some(healed_ms);
                faults[i].recovery_ms = recovery_ms;
            }
        }
    }
    Ok(faults)
}

/// Reads `dir/history.jsonl` and `dir/faults.jsonl` (none there means no
/// faults) and writes their timeline to `dir/timeline.svg`.
///
/// # Errors
/// If a file cannot be read or parsed, or the image cannot be written.
pub fn write(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("history.jsonl");
    let file =
        std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let history = history::read_jsonl(std::io::BufReader::new(file))
        .with_context(|| format!("cannot read {}", path.display()))?;
    let path = dir.join("faults.jsonl");
    let faults = match std::fs::File::open(&path) {
        Ok(file) => read_faults(std::io::BufReader::new(file))
            .with_context(|| format!("cannot read {}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    let out = dir.join("timeline.svg");
    std::fs::write(&out, svg(&history, &faults))
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(out)
}

// The layout, in pixels.
const WIDTH: f64 = 1400.0;
const HEIGHT: f64 = 800.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 1380.0;
const LAT_TOP: f64 = 96.0;
const LAT_BOTTOM: f64 = 560.0;
const TP_TOP: f64 = 604.0;
const TP_BOTTOM: f64 = 744.0;
/// Above this many operations, points are drawn once per occupied cell.
const MAX_POINTS: usize = 20_000;
/// The cell size when downsampling.
const CELL: f64 = 2.0;

/// Outcomes in drawing order: name, colour, and opacity of the points (ok
/// and failed ones often share a cell; both stay visible, the rare unknown
/// ones on top).
const OUTCOMES: [(&str, &str, f64); 3] = [
    ("ok", "#1f6fd1", 0.55),
    ("failed", "#ee6a1f", 0.55),
    ("unknown", "#7b2fa8", 0.95),
];

/// Colours of the known fault kinds; others get [`SPARE_COLOURS`] in turn.
const KIND_COLOURS: [(&str, &str); 11] = [
    ("kill", "#e6194b"),
    ("pause", "#f58231"),
    ("isolate", "#c9a800"),
    ("partition", "#3cb44b"),
    ("one-way", "#21b5d6"),
    ("bridge", "#4363d8"),
    ("kill-majority", "#911eb4"),
    ("zone", "#f032e6"),
    ("loss", "#8fbf1f"),
    ("clock", "#469990"),
    ("disk-full", "#9a6324"),
];
const SPARE_COLOURS: [&str; 6] = [
    "#800000", "#808000", "#000075", "#707070", "#e08fa8", "#a78bd4",
];

fn outcome_index(o: &Outcome) -> usize {
    match o {
        Outcome::Ok { .. } => 0,
        Outcome::Failed { .. } => 1,
        Outcome::Unknown => 2,
    }
}

/// `s` safe inside SVG text or an attribute.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A round tick step (1, 2 or 5 times a power of ten) giving about
/// `ticks` ticks over `range`.
fn nice_step(range: f64, ticks: f64) -> f64 {
    let raw = (range / ticks).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

/// Roughly how wide `s` is at font size 11.
#[allow(clippy::cast_precision_loss)]
fn text_width(s: &str) -> f64 {
    s.chars().count() as f64 * 6.3
}

fn decade_label(exp: u32) -> String {
    match exp {
        0 => "1 ms".into(),
        1 => "10 ms".into(),
        2 => "100 ms".into(),
        e => format!("{} s", 10u64.saturating_pow(e - 3)),
    }
}

/// Appends formatted text to the image (writing to a String cannot fail).
macro_rules! put {
    ($s:expr, $($arg:tt)*) => {
        let _ = write!($s, $($arg)*);
    };
}

/// A panel's border, from `top` to `bottom`.
fn frame(s: &mut String, top: f64, bottom: f64) {
    put!(
        s,
        "<rect x=\"{LEFT}\" y=\"{top}\" width=\"{}\" height=\"{}\" fill=\"none\" \
         stroke=\"#888\"/>\n",
        RIGHT - LEFT,
        bottom - top
    );
}

/// The timeline of `history` under `faults` as an SVG document (about
/// 1400x800): latency per operation (log scale) over time with the fault
/// windows shaded and labelled by kind, and the throughput below.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::too_many_lines
)]
pub fn svg(history: &[Entry], faults: &[FaultWindow]) -> String {
    // The time axis: from 0 to the last thing that happened.
    let end_ms = history
        .iter()
        .map(|e| e.complete_ms.max(e.invoke_ms))
        .chain(faults.iter().map(|f| {
            f.start_ms.max(
                f.healed_ms
                    .unwrap_or(0)
                    .saturating_add(f.recovery_ms.unwrap_or(0)),
            )
        }))
        .max()
        .unwrap_or(0)
        .max(1000);
    let end_s = end_ms as f64 / 1000.0;
    let x_of = |ms: u64| LEFT + (ms as f64 / end_ms as f64) * (RIGHT - LEFT);

    // The latency axis: 1 ms to the decade above the slowest operation (at
    // least 1 s).
    let max_latency = history
        .iter()
        .map(|e| e.complete_ms.saturating_sub(e.invoke_ms))
        .max()
        .unwrap_or(0);
    let mut top_exp = 3u32;
    while top_exp < 19 && 10u64.pow(top_exp) < max_latency {
        top_exp += 1;
    }
    let y_of_latency = |ms: u64| {
        let l = (ms.max(1) as f64).log10() / f64::from(top_exp);
        LAT_BOTTOM - l.min(1.0) * (LAT_BOTTOM - LAT_TOP)
    };

    let mut counts = [0usize; 3];
    for e in history {
        counts[outcome_index(&e.outcome)] += 1;
    }

    // Colours per fault kind, known kinds first.
    let mut kinds: Vec<(String, &str, usize)> = Vec::new();
    for f in faults {
        if let Some(k) = kinds.iter_mut().find(|k| k.0 == f.kind) {
            k.2 += 1;
        } else {
            let colour = KIND_COLOURS
                .iter()
                .find(|(name, _)| *name == f.kind)
                .map_or_else(
                    || {
                        let spare = kinds
                            .iter()
                            .filter(|k| !KIND_COLOURS.iter().any(|(n, _)| *n == k.0))
                            .count();
                        SPARE_COLOURS[spare % SPARE_COLOURS.len()]
                    },
                    |(_, c)| *c,
                );
            kinds.push((f.kind.clone(), colour, 1));
        }
    }
    kinds.sort_by_key(|k| {
        KIND_COLOURS
            .iter()
            .position(|(n, _)| *n == k.0)
            .unwrap_or(KIND_COLOURS.len())
    });
    let colour_of = |kind: &str| {
        kinds
            .iter()
            .find(|k| k.0 == kind)
            .map_or("#707070", |k| k.1)
    };

    let mut s = String::with_capacity(64 * 1024);
    put!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"11\">\n"
    );
    put!(
        s,
        "<rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#ffffff\"/>\n"
    );

    // Title and legends.
    let title = format!(
        "hsm-chaos timeline: {} operations ({} ok, {} failed, {} unknown), {} fault{}, {:.0} s",
        history.len(),
        counts[0],
        counts[1],
        counts[2],
        faults.len(),
        if faults.len() == 1 { "" } else { "s" },
        end_s
    );
    put!(
        s,
        "<text x=\"{LEFT}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
        esc(&title)
    );
    let mut lx = LEFT;
    put!(
        s,
        "<text x=\"{lx}\" y=\"46\" fill=\"#444\">outcome:</text>\n"
    );
    lx += 56.0;
    for (i, (name, colour, _)) in OUTCOMES.iter().enumerate() {
        put!(
            s,
            "<rect x=\"{lx}\" y=\"37\" width=\"10\" height=\"10\" fill=\"{colour}\"/>\
             <text x=\"{}\" y=\"46\">{name} ({})</text>\n",
            lx + 14.0,
            counts[i]
        );
        lx += 14.0 + text_width(&format!("{name} ({})", counts[i])) + 14.0;
    }
    if !kinds.is_empty() {
        lx += 16.0;
        put!(
            s,
            "<text x=\"{lx}\" y=\"46\" fill=\"#444\">faults:</text>\n"
        );
        lx += 46.0;
        for (kind, colour, n) in &kinds {
            let label = format!("{kind} ({n})");
            put!(
                s,
                "<rect x=\"{lx}\" y=\"37\" width=\"10\" height=\"10\" fill=\"{colour}\" \
                 fill-opacity=\"0.5\" stroke=\"{colour}\"/>\
                 <text x=\"{}\" y=\"46\">{}</text>\n",
                lx + 14.0,
                esc(&label)
            );
            lx += 14.0 + text_width(&label) + 12.0;
        }
    }

    // Fault bands in both panels; labels in two rows above the top one.
    let mut row_end = [f64::MIN; 2];
    for (i, f) in faults.iter().enumerate() {
        let colour = colour_of(&f.kind);
        let x0 = x_of(f.start_ms);
        let healed = f.healed_ms.unwrap_or(end_ms).max(f.start_ms);
        let x1 = x_of(healed);
        let w = (x1 - x0).max(1.0);
        put!(
            s,
            "<rect class=\"fault\" x=\"{x0:.1}\" y=\"{LAT_TOP}\" width=\"{w:.1}\" height=\"{}\" \
             fill=\"{colour}\" fill-opacity=\"0.16\"><title>{} {:.1}s to {}</title></rect>\n",
            LAT_BOTTOM - LAT_TOP,
            esc(&f.kind),
            f.start_ms as f64 / 1000.0,
            f.healed_ms.map_or_else(
                || "the end".to_string(),
                |h| format!("{:.1}s", h as f64 / 1000.0)
            )
        );
        put!(
            s,
            "<rect class=\"fault-tp\" x=\"{x0:.1}\" y=\"{TP_TOP}\" width=\"{w:.1}\" \
             height=\"{}\" fill=\"{colour}\" fill-opacity=\"0.16\"/>\n",
            TP_BOTTOM - TP_TOP
        );
        put!(
            s,
            "<rect x=\"{x0:.1}\" y=\"{}\" width=\"{w:.1}\" height=\"4\" fill=\"{colour}\"/>\n",
            LAT_TOP - 4.0
        );
        if let (Some(h), Some(r)) = (f.healed_ms, f.recovery_ms) {
            let rx0 = x_of(h);
            let rw = (x_of(h.saturating_add(r)) - rx0).max(0.5);
            put!(
                s,
                "<rect class=\"recovery\" x=\"{rx0:.1}\" y=\"{LAT_TOP}\" width=\"{rw:.1}\" \
                 height=\"{}\" fill=\"{colour}\" fill-opacity=\"0.06\"/>\n",
                LAT_BOTTOM - LAT_TOP
            );
        }
        // The label goes in the alternate row, or the other one, or is left
        // off when both would overlap a neighbour (the legend still names
        // the colour).
        let lw = text_width(&f.kind);
        if x0 + lw > WIDTH - 4.0 {
            continue;
        }
        let first = i % 2;
        for row in [first, 1 - first] {
            if x0 >= row_end[row] {
                row_end[row] = x0 + lw + 6.0;
                let y = LAT_TOP - 22.0 + 13.0 * row as f64;
                put!(
                    s,
                    "<text class=\"fault-label\" x=\"{x0:.1}\" y=\"{y}\" fill=\"#333\">{}</text>\n",
                    esc(&f.kind)
                );
                break;
            }
        }
    }

    // Time gridlines and tick labels, for both panels.
    let step = nice_step(end_s, 14.0);
    let mut t = 0.0;
    while t <= end_s + 1e-9 {
        let x = LEFT + t / end_s * (RIGHT - LEFT);
        let label = if step >= 1.0 {
            format!("{t:.0}")
        } else {
            format!("{t:.1}")
        };
        for (top, bottom) in [(LAT_TOP, LAT_BOTTOM), (TP_TOP, TP_BOTTOM)] {
            put!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"#e2e2e2\"/>\
                 <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#444\">{label}</text>\n",
                bottom + 14.0
            );
        }
        t += step;
    }
    put!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#222\">time since the run \
         started (s)</text>\n",
        (LEFT + RIGHT) / 2.0,
        TP_BOTTOM + 30.0
    );

    // Latency gridlines, one per decade.
    for e in 0..=top_exp {
        let y = y_of_latency(10u64.pow(e));
        put!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{RIGHT}\" y2=\"{y:.1}\" stroke=\"#d8d8d8\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#444\">{}</text>\n",
            LEFT - 6.0,
            y + 4.0,
            decade_label(e)
        );
    }
    put!(
        s,
        "<text transform=\"translate(18 {:.1}) rotate(-90)\" text-anchor=\"middle\" \
         fill=\"#222\">latency, by invocation time (log scale)</text>\n",
        (LAT_TOP + LAT_BOTTOM) / 2.0
    );

    // The operations.
    let downsampled = history.len() > MAX_POINTS;
    if downsampled {
        let cols = ((RIGHT - LEFT) / CELL).ceil() as usize + 1;
        let rows = ((LAT_BOTTOM - LAT_TOP) / CELL).ceil() as usize + 1;
        let mut cells = vec![false; cols * rows * OUTCOMES.len()];
        for e in history {
            let cx = ((x_of(e.invoke_ms) - LEFT) / CELL) as usize;
            let cy = ((y_of_latency(e.complete_ms.saturating_sub(e.invoke_ms)) - LAT_TOP) / CELL)
                as usize;
            let o = outcome_index(&e.outcome);
            cells[(o * rows + cy.min(rows - 1)) * cols + cx.min(cols - 1)] = true;
        }
        for (o, (name, colour, opacity)) in OUTCOMES.iter().enumerate() {
            put!(
                s,
                "<path class=\"{name}\" stroke=\"{colour}\" stroke-opacity=\"{opacity}\" \
                 stroke-width=\"{CELL}\" fill=\"none\" d=\""
            );
            for cy in 0..rows {
                for cx in 0..cols {
                    if cells[(o * rows + cy) * cols + cx] {
                        // A CELL-wide horizontal stroke CELL thick: a square.
                        put!(
                            s,
                            "M{} {}h{CELL}",
                            LEFT + cx as f64 * CELL,
                            LAT_TOP + (cy as f64 + 0.5) * CELL
                        );
                    }
                }
            }
            s.push_str("\"/>\n");
        }
    } else {
        for (o, (name, colour, opacity)) in OUTCOMES.iter().enumerate() {
            let radius = if o == 2 { 2.6 } else { 2.0 };
            put!(
                s,
                "<g class=\"{name}\" fill=\"{colour}\" fill-opacity=\"{opacity}\">\n"
            );
            for e in history.iter().filter(|e| outcome_index(&e.outcome) == o) {
                put!(
                    s,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{radius}\"/>\n",
                    x_of(e.invoke_ms),
                    y_of_latency(e.complete_ms.saturating_sub(e.invoke_ms))
                );
            }
            s.push_str("</g>\n");
        }
    }
    frame(&mut s, LAT_TOP, LAT_BOTTOM);

    // Throughput: completions per second in buckets of at least 2 pixels.
    let bucket_s = (end_s / ((RIGHT - LEFT) / 2.0)).ceil().max(1.0);
    let bucket_ms = (bucket_s * 1000.0) as u64;
    let buckets = (end_ms / bucket_ms + 1) as usize;
    let mut ok = vec![0u64; buckets];
    let mut not_ok = vec![0u64; buckets];
    for e in history {
        let b = ((e.complete_ms / bucket_ms) as usize).min(buckets - 1);
        if e.outcome.is_ok() {
            ok[b] += 1;
        } else {
            not_ok[b] += 1;
        }
    }
    let max_rate = ok.iter().chain(&not_ok).copied().max().unwrap_or(0) as f64 / bucket_s;
    let rate_step = nice_step(max_rate.max(1.0), 4.0);
    let rate_top = ((max_rate / rate_step).ceil() * rate_step).max(rate_step);
    let y_of_rate = |r: f64| TP_BOTTOM - r / rate_top * (TP_BOTTOM - TP_TOP);
    let mut r = 0.0;
    while r <= rate_top + 1e-9 {
        let y = y_of_rate(r);
        put!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{RIGHT}\" y2=\"{y:.1}\" stroke=\"#d8d8d8\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#444\">{r}</text>\n",
            LEFT - 6.0,
            y + 4.0
        );
        r += rate_step;
    }
    put!(
        s,
        "<text transform=\"translate(18 {:.1}) rotate(-90)\" text-anchor=\"middle\" \
         fill=\"#222\">ops/s</text>\n",
        (TP_TOP + TP_BOTTOM) / 2.0
    );
    for (series, colour) in [(&ok, OUTCOMES[0].1), (&not_ok, OUTCOMES[1].1)] {
        put!(
            s,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.2\" points=\""
        );
        for (b, n) in series.iter().enumerate() {
            let y = y_of_rate(*n as f64 / bucket_s);
            let xa = x_of(b as u64 * bucket_ms);
            let xb = x_of(((b as u64 + 1) * bucket_ms).min(end_ms));
            put!(s, "{xa:.1},{y:.1} {xb:.1},{y:.1} ");
        }
        s.push_str("\"/>\n");
    }
    frame(&mut s, TP_TOP, TP_BOTTOM);
    put!(
        s,
        "<text x=\"{}\" y=\"{}\" fill=\"#444\">throughput by completion time \
         ({bucket_s:.0} s buckets): <tspan fill=\"{}\" font-weight=\"bold\">ok</tspan>, \
         <tspan fill=\"{}\" font-weight=\"bold\">failed or unknown</tspan></text>\n",
        LEFT + 4.0,
        TP_TOP - 6.0,
        OUTCOMES[0].1,
        OUTCOMES[1].1
    );
    let note = format!(
        "shaded: a fault from start to heal (paler after: until recovered){}",
        if downsampled {
            "; points downsampled to one per 2-pixel cell and outcome"
        } else {
            ""
        }
    );
    put!(
        s,
        "<text x=\"{RIGHT}\" y=\"{}\" text-anchor=\"end\" fill=\"#666\" font-size=\"10\">{}</text>\n",
        TP_TOP - 6.0,
        esc(&note)
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Failure, Op};

    fn fault(kind: &str, start_ms: u64, healed_ms: Option<u64>) -> FaultWindow {
        FaultWindow {
            kind: kind.into(),
            start_ms,
            healed_ms,
            recovery_ms: None,
        }
    }

    fn entry(i: u64, invoke_ms: u64, complete_ms: u64, outcome: Outcome) -> Entry {
        Entry {
            id: i,
            process: u32::try_from(i % 4).unwrap_or(0),
            actor: "p0-alice".into(),
            node: None,
            op: if i % 2 == 0 {
                Op::Sign { key: i }
            } else {
                Op::ReadKey { key: i }
            },
            invoke_ms,
            complete_ms,
            outcome,
        }
    }

    #[test]
    fn read_faults_pairs_starts_and_heals() {
        let text = r#"{"start_ms":100,"step":{"at_ms":99,"lasts_ms":50,"fault":"kill","target":"leader"},"acted_on":{"killed":1}}
{"healed_ms":160,"recovery_ms":812}

{"start_ms":200,"step":{"at_ms":200,"lasts_ms":50,"fault":"one-way","from":1,"to":2},"acted_on":"cut","future":[1,2]}
{"start_ms":220,"step":{"fault":"disk-full"}}
{"healed_ms":260,"recovery_ms":null}
{"healed_ms":300,"something":"new"}
{"start_ms":400,"step":{"fault":"pause"}}
"#;
        let faults = read_faults(text.as_bytes()).expect("parses");
        assert_eq!(
            faults,
            vec![
                FaultWindow {
                    kind: "kill".into(),
                    start_ms: 100,
                    healed_ms: Some(160),
                    recovery_ms: Some(812),
                },
                fault("one-way", 200, Some(260)),
                fault("disk-full", 220, Some(300)),
                fault("pause", 400, None),
            ]
        );
        assert!(read_faults("not json\n".as_bytes()).is_err());
    }

    #[test]
    fn svg_of_a_small_history() {
        let history: Vec<Entry> = (0..30)
            .map(|i| {
                let outcome = match i % 3 {
                    0 => Outcome::DONE,
                    1 => Outcome::Failed {
                        failure: Failure::Other("<boom> & \"x\"".into()),
                    },
                    _ => Outcome::Unknown,
                };
                entry(i, i * 100, i * 100 + i * i, outcome)
            })
            .collect();
        let faults = vec![
            FaultWindow {
                recovery_ms: Some(150),
                ..fault("kill", 500, Some(900))
            },
            fault("one-way", 950, Some(1200)),
            fault("disk-<full>", 1300, None),
        ];
        let svg = svg(&history, &faults);
        assert_eq!(svg.matches("class=\"fault\"").count(), faults.len());
        assert_eq!(svg.matches("class=\"fault-tp\"").count(), faults.len());
        assert_eq!(svg.matches("class=\"recovery\"").count(), 1);
        for label in ["kill", "one-way", "disk-&lt;full&gt;"] {
            assert!(
                svg.contains(&format!(">{label}</text>")),
                "no label {label}"
            );
        }
        assert!(!svg.contains("disk-<full>"));
        assert_eq!(svg.matches("<circle").count(), history.len());
        assert!(svg.contains("30 operations (10 ok, 10 failed, 10 unknown), 3 faults"));
        // Every element opened is closed.
        assert_eq!(svg.matches("<svg").count(), 1);
        assert_eq!(svg.matches("</svg>").count(), 1);
        assert!(svg.trim_end().ends_with("</svg>"));
        for tag in ["g", "text", "title", "tspan"] {
            let opened =
                svg.matches(&format!("<{tag}>")).count() + svg.matches(&format!("<{tag} ")).count();
            assert_eq!(opened, svg.matches(&format!("</{tag}>")).count(), "<{tag}>");
        }
        for tag in ["circle", "line", "path", "polyline"] {
            let opened = svg.matches(&format!("<{tag} ")).count();
            let closed = svg
                .split(&format!("<{tag} "))
                .skip(1)
                .filter(|rest| rest.find("/>") < rest.find('<').or(Some(usize::MAX)))
                .count();
            assert_eq!(opened, closed, "<{tag}>");
        }
        assert_eq!(svg.matches('<').count(), svg.matches('>').count());
    }

    #[test]
    fn svg_of_no_history() {
        let svg = svg(&[], &[]);
        assert!(svg.contains("0 operations"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn svg_of_200k_operations_is_small() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let history: Vec<Entry> = (0..200_000u64)
            .map(|i| {
                let invoke = i * 9;
                let latency = match next() % 100 {
                    0 => 5000,
                    1..=10 => next() % 5000,
                    _ => next() % 200,
                };
                let outcome = match next() % 10 {
                    0..=6 => Outcome::DONE,
                    7 | 8 => Outcome::Failed {
                        failure: Failure::NotFound,
                    },
                    _ => Outcome::Unknown,
                };
                entry(i, invoke, invoke + latency, outcome)
            })
            .collect();
        let faults: Vec<FaultWindow> = (0..300u64)
            .map(|i| {
                fault(
                    ["kill", "pause", "isolate"][(i % 3) as usize],
                    i * 6000,
                    Some(i * 6000 + 3000),
                )
            })
            .collect();
        let svg = svg(&history, &faults);
        assert!(svg.len() < 5_000_000, "{} bytes", svg.len());
        assert_eq!(svg.matches("class=\"fault\"").count(), faults.len());
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn write_reads_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let history = vec![
            entry(0, 10, 20, Outcome::DONE),
            entry(1, 30, 5030, Outcome::Unknown),
        ];
        let mut out = Vec::new();
        history::write_jsonl(&history, &mut out).expect("writes");
        std::fs::write(dir.path().join("history.jsonl"), out).expect("writes");
        // No faults.jsonl: no faults.
        let path = write(dir.path()).expect("draws");
        assert_eq!(path, dir.path().join("timeline.svg"));
        let svg = std::fs::read_to_string(&path).expect("reads");
        assert!(svg.contains("2 operations"));
        std::fs::write(
            dir.path().join("faults.jsonl"),
            "{\"start_ms\":15,\"step\":{\"fault\":\"kill\"}}\n{\"healed_ms\":25}\n",
        )
        .expect("writes");
        let svg = std::fs::read_to_string(write(dir.path()).expect("draws")).expect("reads");
        assert!(svg.contains("1 fault, "));
    }
}

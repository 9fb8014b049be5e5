//! A workflow drawn from its ASL: the states and their edges (`Next`, `Default`, `Choices[].Next`,
//! `Catch[].Next`), laid out in layers by longest path from `StartAt`, as an SVG — with the path
//! one execution took highlighted.

use super::html::esc;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

/// One edge of the workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// `next`, `default`, `choice` or `catch`.
    pub kind: &'static str,
    /// The errors a `Catch` edge is taken on.
    pub errors: Vec<String>,
}

/// A workflow's states (in definition order, each with its `Type`) and edges, with the two
/// pseudo-states `(start)` and `(end)`.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub states: Vec<(String, String)>,
    pub edges: Vec<Edge>,
}

pub const START: &str = "(start)";
pub const END: &str = "(end)";

/// Parses an ASL definition. Placeholders a template substitutes (`${Name}`, unquoted numbers in
/// the files as written) are replaced by `0` first, so the repository's files parse as they are.
pub fn parse(definition: &str) -> anyhow::Result<Workflow> {
    let mut text = String::with_capacity(definition.len());
    let mut rest = definition;
    while let Some(i) = rest.find("${") {
        text.push_str(&rest[..i]);
        match rest[i..].find('}') {
            Some(j) => {
                // Inside a string the placeholder stays text; outside it becomes a number.
                let quoted = text.chars().filter(|&c| c == '"').count() % 2 == 1;
                text.push_str(if quoted { "x" } else { "0" });
                rest = &rest[i + j + 1..];
            }
            None => {
                rest = &rest[i..];
                break;
            }
        }
    }
    text.push_str(rest);
    let asl: Value = serde_json::from_str(&text)?;
    let start = asl["StartAt"].as_str().unwrap_or_default().to_string();
    let mut states = Vec::new();
    let mut edges = vec![Edge { from: START.into(), to: start, kind: "next", errors: vec![] }];
    let mut ends = false;
    if let Some(map) = asl["States"].as_object() {
        for (name, state) in map {
            let kind = state["Type"].as_str().unwrap_or("?").to_string();
            let mut add = |to: &str, kind: &'static str, errors: Vec<String>| {
                edges.push(Edge { from: name.clone(), to: to.to_string(), kind, errors });
            };
            if let Some(next) = state["Next"].as_str() {
                add(next, "next", vec![]);
            }
            if let Some(next) = state["Default"].as_str() {
                add(next, "default", vec![]);
            }
            for choice in state["Choices"].as_array().into_iter().flatten() {
                if let Some(next) = choice["Next"].as_str() {
                    add(next, "choice", vec![]);
                }
            }
            for catch in state["Catch"].as_array().into_iter().flatten() {
                if let Some(next) = catch["Next"].as_str() {
                    let errors = catch["ErrorEquals"].as_array().into_iter().flatten().filter_map(|e| e.as_str().map(str::to_string)).collect();
                    add(next, "catch", errors);
                }
            }
            if state["End"].as_bool() == Some(true) || kind == "Succeed" {
                ends = true;
                edges.push(Edge { from: name.clone(), to: END.into(), kind: "next", errors: vec![] });
            }
            states.push((name.clone(), kind));
        }
    }
    states.insert(0, (START.into(), "Start".into()));
    if ends {
        states.push((END.into(), "End".into()));
    }
    Ok(Workflow { states, edges })
}

/// The path one execution took: the states it entered, in order, and how it ended.
#[derive(Debug, Clone, Default)]
pub struct Taken {
    pub entered: Vec<String>,
    /// The execution's status (`RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`), if known.
    pub status: Option<String>,
}

impl Taken {
    /// The edges this path went along (consecutive states entered; `(start)` first, `(end)` last
    /// when the execution succeeded).
    pub fn edges(&self) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        let mut previous = START.to_string();
        for state in &self.entered {
            out.insert((previous.clone(), state.clone()));
            previous = state.clone();
        }
        if self.status.as_deref() == Some("SUCCEEDED") && !self.entered.is_empty() {
            out.insert((previous, END.to_string()));
        }
        out
    }
}

const W: i64 = 170;
const H: i64 = 38;
const GAP_X: i64 = 40;
const GAP_Y: i64 = 50;
const MARGIN: i64 = 20;
/// Room on each side for the edges that skip a layer (they go around, not through, the states).
const LANE: i64 = 40;

/// Each state's layer: the longest path to it from `(start)` (edges closing a cycle are not
/// followed further than the number of states).
fn layers(workflow: &Workflow) -> HashMap<&str, i64> {
    let mut layer: HashMap<&str, i64> = HashMap::new();
    layer.insert(START, 0);
    let limit = workflow.states.len() as i64;
    for _ in 0..workflow.states.len() {
        let mut changed = false;
        for edge in &workflow.edges {
            if let Some(&from) = layer.get(edge.from.as_str()) {
                let want = (from + 1).min(limit);
                let current = layer.get(edge.to.as_str()).copied();
                if current.is_none_or(|c| c < want) {
                    layer.insert(edge.to.as_str(), want);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    // Unreachable states go below everything else.
    let bottom = layer.values().copied().max().unwrap_or(0) + 1;
    for (name, _) in &workflow.states {
        layer.entry(name.as_str()).or_insert(bottom);
    }
    if let Some(end) = layer.get(END).copied() {
        let max = layer.values().copied().max().unwrap_or(end);
        layer.insert(END, max.max(end));
    }
    layer
}

/// The workflow as an SVG, with `taken`'s states and edges highlighted, and `title` as its
/// accessible name. Node classes: `entered`, `current` (entered last while the execution runs),
/// `failed-state` (a `Fail` state entered).
pub fn svg(workflow: &Workflow, taken: &Taken, title: &str) -> String {
    let layer = layers(workflow);
    let mut rows: Vec<Vec<&str>> = Vec::new();
    for (name, _) in &workflow.states {
        let l = layer[name.as_str()] as usize;
        if rows.len() <= l {
            rows.resize(l + 1, Vec::new());
        }
        rows[l].push(name.as_str());
    }
    rows.retain(|r| !r.is_empty());
    let widest = rows.iter().map(Vec::len).max().unwrap_or(1) as i64;
    let width = MARGIN * 2 + LANE * 2 + widest * W + (widest - 1) * GAP_X;
    let height = MARGIN * 2 + rows.len() as i64 * H + (rows.len() as i64 - 1).max(0) * GAP_Y;
    let mut at: HashMap<&str, (i64, i64)> = HashMap::new();
    for (r, row) in rows.iter().enumerate() {
        // Each state under the states that lead to it (mean of their centres), so the edges
        // between layers cross as little as they can.
        let mut keyed: Vec<(f64, usize, &str)> = row
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let from: Vec<f64> = workflow.edges.iter().filter(|e| e.to == *name).filter_map(|e| at.get(e.from.as_str())).map(|&(x, _)| x as f64).collect();
                let key = if from.is_empty() { f64::MAX } else { from.iter().sum::<f64>() / from.len() as f64 };
                (key, i, *name)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let row: Vec<&str> = keyed.into_iter().map(|(_, _, n)| n).collect();
        let row_width = row.len() as i64 * W + (row.len() as i64 - 1) * GAP_X;
        let x0 = (width - row_width) / 2;
        for (i, name) in row.iter().enumerate() {
            at.insert(name, (x0 + i as i64 * (W + GAP_X), MARGIN + r as i64 * (H + GAP_Y)));
        }
    }
    let entered: BTreeSet<&str> = taken.entered.iter().map(String::as_str).collect();
    let walked = taken.edges();
    let running = taken.status.as_deref() == Some("RUNNING");
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg class="workflow" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-labelledby="wf-title"><title id="wf-title">{title}</title><defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="10" markerHeight="10" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker><marker id="arrow-on" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="12" markerHeight="12" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead-on"/></marker></defs>"##,
        title = esc(title)
    );
    // Edges first, under the nodes.
    for edge in &workflow.edges {
        let (Some(&(x1, y1)), Some(&(x2, y2))) = (at.get(edge.from.as_str()), at.get(edge.to.as_str())) else { continue };
        let on = walked.contains(&(edge.from.clone(), edge.to.clone()));
        let (sx, sy) = (x1 + W / 2, y1 + H);
        let (tx, ty) = (x2 + W / 2, y2);
        let skips = ty > sy + GAP_Y;
        let (mut lx, mut ly) = ((sx + tx) / 2, (sy + ty) / 2);
        let d = if ty > sy && !skips {
            let mid = (sy + ty) / 2;
            format!("M {sx} {sy} C {sx} {mid}, {tx} {mid}, {tx} {ty}")
        } else if skips {
            // Down more than one layer: out to the nearer side lane, down it, and in again.
            let lane = if sx + tx <= width { MARGIN + LANE / 2 } else { width - MARGIN - LANE / 2 };
            let (a, b) = (sy + GAP_Y / 2, ty - GAP_Y / 2);
            lx = lane;
            ly = (a + b) / 2;
            format!("M {sx} {sy} L {sx} {a} L {lane} {a} L {lane} {b} L {tx} {b} L {tx} {ty}")
        } else {
            // Back or sideways: around the right of both nodes.
            let side = x1.max(x2) + W + GAP_X / 2;
            format!("M {} {} C {side} {}, {side} {}, {} {}", x1 + W, y1 + H / 2, y1 + H / 2, y2 + H / 2, x2 + W, y2 + H / 2)
        };
        let class = format!("edge {}{}", edge.kind, if on { " walked" } else { "" });
        let marker = if on { "arrow-on" } else { "arrow" };
        let tip = if edge.errors.is_empty() { String::new() } else { format!("<title>on {}</title>", esc(&edge.errors.join(", "))) };
        let _ = write!(out, r#"<path class="{class}" d="{d}" marker-end="url(#{marker})">{tip}</path>"#);
        if edge.kind == "catch" {
            let label = if edge.errors.len() == 1 { edge.errors[0].clone() } else { format!("catch ({})", edge.errors.len()) };
            // Along a side lane the label runs up the lane, clear of the states.
            let turn = if skips { format!(r#" transform="rotate(-90 {lx} {ly})" dy="-4""#) } else { String::new() };
            let _ = write!(out, r#"<text class="edge-label" x="{lx}" y="{ly}" text-anchor="middle"{turn}>{}</text>"#, esc(&shorten(&label, 22)));
        }
    }
    for (name, kind) in &workflow.states {
        let Some(&(x, y)) = at.get(name.as_str()) else { continue };
        let is_entered = entered.contains(name.as_str())
            || (name == START && !taken.entered.is_empty())
            || (name == END && walked.iter().any(|(_, to)| to == END));
        let mut class = format!("node t-{}", kind.to_ascii_lowercase());
        if is_entered {
            class.push_str(" entered");
        }
        if running && taken.entered.last() == Some(name) {
            class.push_str(" current");
        }
        if is_entered && kind == "Fail" {
            class.push_str(" failed-state");
        }
        let (rx, label) = match name.as_str() {
            START => (H / 2, "start".to_string()),
            END => (H / 2, "end".to_string()),
            _ => (6, shorten(name, 22)),
        };
        let _ = write!(
            out,
            r#"<g class="{class}" data-state="{state}"><rect x="{x}" y="{y}" width="{W}" height="{H}" rx="{rx}"/><text x="{tx}" y="{ty}" text-anchor="middle">{label}</text><text class="kind" x="{tx}" y="{ky}" text-anchor="middle">{kind}</text></g>"#,
            state = esc(name),
            tx = x + W / 2,
            ty = y + 17,
            ky = y + 32,
            label = esc(&label),
            kind = esc(if matches!(name.as_str(), START | END) { "" } else { kind }),
        );
    }
    out.push_str("</svg>");
    out
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { s.chars().take(n - 1).collect::<String>() + "…" }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PURCHASE: &str = include_str!("../../../../statemachine/purchase.asl.json");

    #[test]
    fn the_purchase_workflow_has_its_states_and_catch_edges() {
        let wf = parse(PURCHASE).unwrap();
        let names: Vec<&str> = wf.states.iter().map(|(n, _)| n.as_str()).collect();
        for state in ["Purchase", "Compensate", "NotifyOwner", "NotifyFailure", START, END] {
            assert!(names.contains(&state), "{names:?}");
        }
        assert!(wf.edges.iter().any(|e| e.from == "Purchase" && e.to == "Compensate" && e.kind == "catch"));
        assert!(wf.edges.iter().any(|e| e.from == START && e.to == "Purchase"));
        assert!(wf.edges.iter().any(|e| e.from == "NotifyOwner" && e.to == END));
    }

    #[test]
    fn the_path_taken_is_highlighted_and_nothing_else() {
        let wf = parse(PURCHASE).unwrap();
        let taken = Taken { entered: vec!["Purchase".into(), "NotifyOwner".into()], status: Some("SUCCEEDED".into()) };
        let svg = svg(&wf, &taken, "purchase");
        let entered: Vec<&str> = svg.split(r#"<g class=""#).skip(1).filter(|g| g.split('"').next().unwrap().contains("entered")).map(|g| g.split(r#"data-state=""#).nth(1).unwrap().split('"').next().unwrap()).collect();
        let mut entered = entered;
        entered.sort();
        assert_eq!(entered, vec![END, START, "NotifyOwner", "Purchase"]);
        assert_eq!(svg.matches("walked").count(), 3, "{svg}");
    }
}

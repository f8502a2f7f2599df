//! The server-rendered page: the status cards, the search form and the table, complete without
//! JavaScript. `assets/page.js` renders the same markup from the JSON API when it refreshes, so
//! the two stay in step: change one, change the other (the browser test checks the script's side).
//!
//! Every piece of text from outside (paths, names, messages: they come from file names and file
//! contents) goes through `escape`.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::params::{Column, Params, current_plan};
use super::time;
use crate::model::Status;
use crate::report::{WorkspaceView, WorkspacesDocument};

/// Everything the page shows.
pub struct PageView<'a> {
    pub doc: &'a WorkspacesDocument,
    pub params: &'a Params,
    pub now: DateTime<Utc>,
    /// A problem with the address (an unknown status), shown above the cards.
    pub notice: Option<&'a str>,
    /// False until the first full scan is done.
    pub ready: bool,
    /// Workspaces under the root filter, before the search and the status filter.
    pub in_root: usize,
    /// The roots as configured.
    pub roots: &'a [String],
    /// The exposition's address, relative to the page's (`metrics`).
    pub telemetry_link: &'a str,
}

/// Escapes text for HTML content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The whole document.
pub fn page(view: &PageView, style: &str, script: &str) -> String {
    let counts = &view.doc.counts;
    let total: u64 = Status::ALL.iter().map(|s| counts.get(*s)).sum();
    let urgent = counts.failed + counts.drifted;
    let title = if urgent > 0 {
        format!("iacwatch · {} failed, {} drifted", counts.failed, counts.drifted)
    } else {
        format!("iacwatch · {total} workspaces")
    };
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light\">\n\
         <title>{title}</title>\n\
         <noscript><meta http-equiv=\"refresh\" content=\"30\"></noscript>\n\
         <style>{style}</style>\n</head>\n<body data-base=\"{base}\">\n",
        title = escape(&title),
        base = escape(base(view)),
    );
    header(&mut out, view);
    out.push_str("<main class=\"wrap\">\n");
    notices(&mut out, view);
    cards(&mut out, view);
    toolbar(&mut out, view);
    table(&mut out, view);
    problems(&mut out, view);
    out.push_str("</main>\n");
    let _ = writeln!(
        out,
        "<footer class=\"wrap foot\"><a href=\"{base}api/v1/workspaces\">JSON API</a> · <a href=\"{base}{metrics}\">Metrics</a> · \
         Shows metadata only: no value from a state or plan leaves iacwatch. \
         <span class=\"version\">iacwatch {version}</span>\
         <noscript> This page reloads every 30 s; with JavaScript it updates in place.</noscript></footer>",
        base = escape(base(view)),
        metrics = escape(view.telemetry_link),
        version = escape(crate::build_info::VERSION),
    );
    let _ = write!(out, "<script>{script}</script>\n</body>\n</html>\n");
    out
}

/// The base of the page's links.
fn base<'a>(view: &'a PageView) -> &'a str {
    if view.params.base.is_empty() {
        "/"
    } else {
        &view.params.base
    }
}

fn header(out: &mut String, view: &PageView) {
    let generated = time::parse(&view.doc.generated_at);
    let _ = writeln!(
        out,
        "<header class=\"top\"><div class=\"wrap top-in\"><h1><a href=\"{}\">iacwatch</a></h1>\
         <span class=\"sub\">Terraform and OpenTofu workspaces</span>\
         <span id=\"updated\" class=\"updated\" role=\"status\">{}</span></div></header>",
        escape(base(view)),
        match generated {
            Some(t) => format!(
                "Updated <time datetime=\"{}\" title=\"{}\" data-rel>{}</time>",
                escape(&view.doc.generated_at),
                time::exact(t),
                time::relative(t, view.now)
            ),
            None => String::new(),
        }
    );
}

fn notices(out: &mut String, view: &PageView) {
    match view.notice {
        Some(message) => {
            let _ = writeln!(
                out,
                "<div id=\"notice\" class=\"banner warn\" role=\"alert\"><strong>This address has a filter \
                 that cannot be used:</strong> {}. The status filter is ignored. <a href=\"{}\">Show all \
                 workspaces</a></div>",
                escape(message),
                escape(&view.params.href(&[], view.params.sort)),
            );
        }
        None => out.push_str("<div id=\"notice\" class=\"banner warn\" role=\"alert\" hidden></div>\n"),
    }
    out.push_str("<div id=\"conn\" class=\"banner error\" role=\"status\" hidden></div>\n");
}

fn cards(out: &mut String, view: &PageView) {
    out.push_str("<nav aria-label=\"Filter by status\"><ul class=\"cards\" id=\"cards\">\n");
    for status in Status::ALL {
        let s = status.as_str();
        let n = view.doc.counts.get(status);
        let selected = view.params.statuses.contains(&status);
        let _ = writeln!(
            out,
            "<li><a class=\"card s-{s}{zero}\" id=\"card-{s}\" data-status=\"{s}\" href=\"{href}\"{current} \
             title=\"{hint}\"><span class=\"count\">{n}</span><span class=\"label\"><span class=\"dot\" \
             aria-hidden=\"true\"></span>{s}</span></a></li>",
            zero = if n == 0 { " zero" } else { "" },
            href = escape(&view.params.card_href(status)),
            current = if selected { " aria-current=\"true\"" } else { "" },
            hint = if selected && view.params.statuses.len() == 1 {
                "Show every status".to_owned()
            } else {
                format!("Show only {s} workspaces")
            },
        );
    }
    out.push_str("</ul></nav>\n");
}

fn toolbar(out: &mut String, view: &PageView) {
    let params = view.params;
    let mut hidden = String::new();
    if !params.statuses.is_empty() {
        let list: Vec<&str> = params.statuses.iter().map(|s| s.as_str()).collect();
        let _ = write!(
            hidden,
            "<input type=\"hidden\" name=\"status\" value=\"{}\">",
            list.join(",")
        );
    }
    if let Some(root) = &params.root {
        let _ = write!(
            hidden,
            "<input type=\"hidden\" name=\"root\" value=\"{}\">",
            escape(root)
        );
    }
    if params.sort != Default::default() {
        let _ = write!(
            hidden,
            "<input type=\"hidden\" name=\"sort\" value=\"{}\">",
            params.sort.param()
        );
    }
    let _ = writeln!(
        out,
        "<div class=\"toolbar\"><form id=\"search\" class=\"search\" method=\"get\" action=\"{action}\" role=\"search\">\
         <label for=\"q\">Search path</label><input id=\"q\" name=\"q\" type=\"search\" value=\"{q}\" \
         placeholder=\"e.g. prod/network\" autocomplete=\"off\" spellcheck=\"false\">{hidden}\
         <button type=\"submit\" class=\"nojs\">Search</button></form>\
         <p id=\"summary\" class=\"summary\" aria-live=\"polite\">{summary}</p></div>",
        action = escape(base(view)),
        q = escape(params.q.as_deref().unwrap_or("")),
        summary = summary(view),
    );
}

/// "Showing 2 of 9 workspaces · status failed · path contains "net" · Show all".
fn summary(view: &PageView) -> String {
    let params = view.params;
    let shown = view.doc.workspaces.len();
    let mut parts = vec![format!(
        "Showing {shown} of {} workspace{}",
        view.in_root,
        if view.in_root == 1 { "" } else { "s" }
    )];
    if !params.statuses.is_empty() {
        let list: Vec<&str> = params.statuses.iter().map(|s| s.as_str()).collect();
        parts.push(format!("status {}", list.join(" or ")));
    }
    if let Some(q) = &params.q {
        parts.push(format!("path contains “{}”", escape(q)));
    }
    if let Some(root) = &params.root {
        parts.push(format!("root {}", escape(root)));
    }
    let mut text = parts.join(" · ");
    if !params.statuses.is_empty() || params.q.is_some() {
        let _ = write!(text, " · <a href=\"{}\">Show all</a>", escape(&clear_href(params)));
    }
    text
}

fn clear_href(params: &Params) -> String {
    Params {
        statuses: Vec::new(),
        root: params.root.clone(),
        q: None,
        sort: params.sort,
        base: params.base.clone(),
    }
    .href(&[], params.sort)
}

fn table(out: &mut String, view: &PageView) {
    out.push_str("<div class=\"table-wrap\"><table id=\"workspaces\" class=\"ws\">\n<thead><tr>");
    for column in Column::ALL {
        let sort = view.params.sort;
        let (aria, arrow) = if sort.column == column {
            if sort.descending {
                (" aria-sort=\"descending\"", "▼")
            } else {
                (" aria-sort=\"ascending\"", "▲")
            }
        } else {
            ("", "")
        };
        let _ = write!(
            out,
            "<th scope=\"col\" class=\"c-{key}\"{aria} title=\"{hint}\"><a href=\"{href}\" data-sort=\"{key}\">{title}\
             <span class=\"arrow\" aria-hidden=\"true\">{arrow}</span></a></th>",
            key = column.key(),
            href = escape(&view.params.href(&view.params.statuses, sort.toggled(column))),
            title = column.title(),
            hint = column.hint(),
        );
    }
    out.push_str("<th scope=\"col\" class=\"c-reasons\">Reasons</th></tr></thead>\n<tbody id=\"rows\">\n");
    let mut rows: Vec<&WorkspaceView> = view.doc.workspaces.iter().collect();
    rows.sort_by(|a, b| view.params.sort.compare(a, b));
    for w in rows {
        row(out, w, view);
    }
    out.push_str("</tbody></table>\n");
    // The roots ride along for the script, which redraws this box as the table changes.
    let roots = escape(&view.roots.join(", "));
    match empty_message(view) {
        Some(message) => {
            let _ = writeln!(
                out,
                "<div id=\"empty\" class=\"empty\" data-roots=\"{roots}\">{message}</div>"
            );
        }
        None => {
            let _ = writeln!(
                out,
                "<div id=\"empty\" class=\"empty\" data-roots=\"{roots}\" hidden></div>"
            );
        }
    }
    out.push_str("</div>\n");
}

/// What an empty table means: still scanning, nothing found, or nothing matching.
fn empty_message(view: &PageView) -> Option<String> {
    if !view.doc.workspaces.is_empty() {
        return None;
    }
    if !view.ready {
        return Some(
            "<strong>Scanning…</strong> The first scan of the roots is not done yet; this page fills in when it is."
                .to_owned(),
        );
    }
    if view.in_root == 0 {
        let under = match &view.params.root {
            Some(root) => format!("under root <code>{}</code>", escape(root)),
            None => {
                let roots: Vec<String> = view
                    .roots
                    .iter()
                    .map(|r| format!("<code>{}</code>", escape(r)))
                    .collect();
                format!("under {}", roots.join(", "))
            }
        };
        return Some(format!(
            "<strong>No workspaces found {under}.</strong> A workspace directory holds a \
             <code>terraform.tfstate</code>, <code>.terraform/</code>, <code>.terraform.lock.hcl</code>, a \
             plan JSON or <code>.iacwatch/</code>; folders with only <code>.tf</code> files are modules."
        ));
    }
    Some(format!(
        "<strong>No workspace matches this filter.</strong> <a href=\"{}\">Show all workspaces</a>",
        escape(&clear_href(view.params))
    ))
}

fn row(out: &mut String, w: &WorkspaceView, view: &PageView) {
    let s = escape(w.status.as_str());
    let _ = write!(
        out,
        "<tr data-id=\"{id}\" data-status=\"{s}\"><td class=\"c-status\" data-label=\"Status\">\
         <span class=\"badge s-{s}\"><span class=\"dot\" aria-hidden=\"true\"></span>{s}</span>{flags}</td>",
        id = escape(&w.id),
        flags = other_flags(w),
    );
    let root = if view.roots.len() > 1 {
        format!("<span class=\"root\">{}</span>", escape(&w.root))
    } else {
        String::new()
    };
    let _ = write!(
        out,
        "<td class=\"c-path\" data-label=\"Path\"><span class=\"path\">{}</span>{root}</td>\
         <td class=\"c-workspace\" data-label=\"Workspace\">{}</td>",
        escape(&w.path),
        escape(&w.workspace),
    );
    let _ = write!(
        out,
        "<td class=\"c-resources num\" data-label=\"Resources\">{}</td>",
        resources(w)
    );
    let _ = write!(
        out,
        "<td class=\"c-changes\" data-label=\"Changes\">{}</td>",
        changes(w)
    );
    let drift = match current_plan(w) {
        Some(p) if p.drifted_resources > 0 => format!("<span class=\"drift\">{}</span>", p.drifted_resources),
        Some(_) => "0".to_owned(),
        None => none("no current plan"),
    };
    let _ = write!(out, "<td class=\"c-drift num\" data-label=\"Drift\">{drift}</td>");
    let _ = write!(
        out,
        "<td class=\"c-lock\" data-label=\"Lock\">{}</td>",
        lock(w, view.now)
    );
    let _ = write!(
        out,
        "<td class=\"c-last_run\" data-label=\"Last run\">{}</td>",
        last_run(w, view.now)
    );
    let since = w
        .status_since
        .as_deref()
        .and_then(|text| time::parse(text).map(|t| time_tag(text, t, view.now)))
        .unwrap_or_else(|| none("unknown"));
    let _ = write!(out, "<td class=\"c-since\" data-label=\"Since\">{since}</td>");
    let _ = writeln!(
        out,
        "<td class=\"c-reasons\" data-label=\"Reasons\">{}</td></tr>",
        reasons(w)
    );
}

fn none(why: &str) -> String {
    format!("<span class=\"none\" title=\"{}\">–</span>", escape(why))
}

fn time_tag(text: &str, t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!(
        "<time datetime=\"{}\" title=\"{}\" data-rel>{}</time>",
        escape(text),
        time::exact(t),
        time::relative(t, now)
    )
}

/// Flags the single status does not show ("also drifted" on a failed workspace).
fn other_flags(w: &WorkspaceView) -> String {
    let flags = [
        ("failed", w.flags.failed),
        ("drifted", w.flags.drifted),
        ("apply_needed", w.flags.apply_needed),
    ];
    let also: Vec<&str> = flags
        .iter()
        .filter(|(name, set)| *set && *name != w.status.as_str())
        .map(|(name, _)| *name)
        .collect();
    if also.is_empty() {
        String::new()
    } else {
        format!("<span class=\"also\">also {}</span>", also.join(", "))
    }
}

fn resources(w: &WorkspaceView) -> String {
    match &w.state {
        None => none("no state"),
        Some(s) if s.encrypted => {
            "<span class=\"muted\" title=\"encrypted state: count unknown\">encrypted</span>".into()
        }
        Some(s) => {
            let n = s.resources.map_or_else(|| none("state unreadable"), |n| n.to_string());
            if s.tainted > 0 {
                format!("{n} <span class=\"tainted\">({} tainted)</span>", s.tainted)
            } else {
                n
            }
        }
    }
}

fn changes(w: &WorkspaceView) -> String {
    let Some(plan) = w.plan.as_ref() else {
        return none("no plan");
    };
    if !plan.current {
        return "<span class=\"muted\" title=\"the plan is older than the state or the configuration\">stale plan</span>"
            .into();
    }
    if plan.errored {
        return "<span class=\"chg-err\">plan errored</span>".into();
    }
    let c = plan.changes;
    let parts = [
        ("create", "+", c.create),
        ("update", "~", c.update),
        ("delete", "−", c.delete),
        ("replace", "±", c.replace),
    ];
    let shown: Vec<String> = parts
        .iter()
        .filter(|(_, _, n)| *n > 0)
        .map(|(action, sign, n)| {
            format!("<span class=\"chg chg-{action}\" title=\"{n} to {action}\">{sign}{n}<span class=\"sr\"> to {action}</span></span>")
        })
        .collect();
    let outputs = if plan.output_changes > 0 {
        format!(
            "<span class=\"chg chg-output\" title=\"{n} output{s} to change\">{n} output{s}</span>",
            n = plan.output_changes,
            s = if plan.output_changes == 1 { "" } else { "s" }
        )
    } else {
        String::new()
    };
    if shown.is_empty() && outputs.is_empty() {
        return "<span class=\"muted\">none</span>".into();
    }
    format!("{}{outputs}", shown.join(""))
}

fn lock(w: &WorkspaceView, now: DateTime<Utc>) -> String {
    let Some(lock) = &w.lock else {
        return none("not locked");
    };
    let mut text = format!(
        "<span class=\"lock-op\" title=\"{} lock\">{}</span>",
        lock.source,
        escape(lock.operation)
    );
    if let Some(created) = lock.created_at.as_deref().and_then(time::parse) {
        let _ = write!(
            text,
            " <span class=\"age\" title=\"since {}\">{}</span>",
            time::exact(created),
            time::span((now - created).num_seconds().max(0).unsigned_abs())
        );
    }
    if lock.state != "live" {
        let _ = write!(text, " <span class=\"lock-{0}\">{0}</span>", escape(lock.state));
    }
    if let Some(who) = &lock.who {
        let _ = write!(text, "<span class=\"who\">{}</span>", escape(who));
    }
    text
}

fn last_run(w: &WorkspaceView, now: DateTime<Utc>) -> String {
    let Some(run) = &w.last_run else {
        return none("no pipeline run recorded");
    };
    let when = run.finished_at.as_deref().unwrap_or(&run.modified_at).to_owned();
    let time = time::parse(&when).map(|t| time_tag(&when, t, now)).unwrap_or_default();
    format!(
        "<span class=\"run run-{o}\">{o}</span> <span class=\"muted\">{op}</span><span class=\"when\">{time}</span>",
        o = escape(run.outcome),
        op = escape(run.operation),
    )
}

fn reasons(w: &WorkspaceView) -> String {
    // The summary line shows the reason that sets the status, not a fact beside it.
    let Some(first) = w.reasons.iter().find(|r| r.explains).or(w.reasons.first()) else {
        return none("no reasons");
    };
    let mut out = format!(
        "<details><summary><span class=\"first\">{}</span>{}</summary><ul>",
        escape(&first.message),
        if w.reasons.len() > 1 {
            format!(" <span class=\"more\">+{}</span>", w.reasons.len() - 1)
        } else {
            String::new()
        }
    );
    for r in &w.reasons {
        let _ = write!(out, "<li><code>{}</code> {}", escape(r.code), escape(&r.message));
        if let Some(artifact) = &r.artifact {
            let _ = write!(out, "<span class=\"artifact\">{}</span>", escape(artifact));
        }
        out.push_str("</li>");
    }
    out.push_str("</ul></details>");
    out
}

fn problems(out: &mut String, view: &PageView) {
    let errors = &view.doc.errors;
    let hidden = if errors.is_empty() { " hidden" } else { "" };
    let _ = write!(
        out,
        "<section id=\"problems\" class=\"problems\"{hidden}><h2>Directories that could not be read</h2><ul>"
    );
    for p in errors {
        let _ = write!(
            out,
            "<li><code>{}</code> <span class=\"muted\">{}</span>: {}</li>",
            escape(&p.path),
            escape(&p.root),
            escape(&p.message)
        );
    }
    out.push_str("</ul></section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_both_quotes() {
        assert_eq!(
            escape(r#"<script>a&"b"'c'</script>"#),
            "&lt;script&gt;a&amp;&quot;b&quot;&#39;c&#39;&lt;/script&gt;"
        );
    }
}

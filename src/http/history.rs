//! The history's endpoints: one workspace's transitions, every workspace's transitions with the
//! listing's filters, and the live feed of Server-Sent Events (`/api/v1/events`), which resumes
//! from the database after a `Last-Event-ID`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::shared::{AppState, Filter, Selection, error};
use crate::history::{self, MAX_LIMIT, Stored};
use crate::report;

/// Events kept for feed clients that are behind; a client further behind is dropped and resumes
/// with `Last-Event-ID` from the database.
pub const FEED_CAPACITY: usize = 4096;

/// The answer's length when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 1000;

/// Transitions read from the database per step of a resume.
const RESUME_PAGE: usize = 500;

/// The keep-alive comment's interval.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What the endpoints need of the history: a reading connection and the feed.
pub struct HistoryState {
    reader: Mutex<history::Reader>,
    events: broadcast::Sender<Arc<FeedEvent>>,
    /// True once the daemon is stopping: every feed ends, so shutdown need not wait for them.
    closing: tokio::sync::watch::Sender<bool>,
}

impl HistoryState {
    pub fn new(reader: history::Reader) -> HistoryState {
        HistoryState {
            reader: Mutex::new(reader),
            events: broadcast::channel(FEED_CAPACITY).0,
            closing: tokio::sync::watch::channel(false).0,
        }
    }

    /// Ends every feed (the daemon is stopping).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Sends an event to every feed client (none listening is no error).
    pub fn send(&self, event: FeedEvent) {
        let _ = self.events.send(Arc::new(event));
    }

    fn read<T>(&self, f: impl FnOnce(&history::Reader) -> Result<T, history::Error>) -> Result<T, history::Error> {
        let reader = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        f(&reader)
    }
}

/// One event of the feed, its data rendered once for every client.
#[derive(Debug)]
pub struct FeedEvent {
    kind: &'static str,
    id: Option<u64>,
    data: String,
}

impl FeedEvent {
    /// A `transition` event, after it is recorded.
    pub fn transition(stored: &Stored) -> FeedEvent {
        FeedEvent {
            kind: "transition",
            id: Some(stored.event_id),
            data: serde_json::to_string(&TransitionView::of(stored)).unwrap_or_default(),
        }
    }

    /// A `summary` event: the counts after a batch, as `/api/v1/summary`.
    pub fn summary(summary: &report::SummaryDocument) -> FeedEvent {
        FeedEvent {
            kind: "summary",
            id: None,
            data: serde_json::to_string(summary).unwrap_or_default(),
        }
    }

    fn sse(&self) -> Event {
        let event = Event::default().event(self.kind).data(&self.data);
        match self.id {
            Some(id) => event.id(id.to_string()),
            None => event,
        }
    }
}

/// A transition as the API shows it.
#[derive(Serialize)]
pub struct TransitionView<'a> {
    at: String,
    id: &'a str,
    root: &'a str,
    path: &'a str,
    workspace: &'a str,
    from: Option<&'static str>,
    to: Option<&'static str>,
    reasons: Vec<&'static str>,
}

impl TransitionView<'_> {
    pub fn of(stored: &Stored) -> TransitionView<'_> {
        let t = &stored.transition;
        TransitionView {
            at: report::rfc3339(t.at),
            id: &t.id,
            root: &t.root,
            path: &t.path,
            workspace: &t.workspace,
            from: t.from.map(|s| s.as_str()),
            to: t.to.map(|s| s.as_str()),
            reasons: t.reasons.iter().map(|r| r.as_str()).collect(),
        }
    }
}

/// The answer while `--history false`.
fn history_off() -> Response {
    error(
        StatusCode::CONFLICT,
        "history_off",
        "the status history is turned off (--history false)",
    )
}

fn failed(e: &history::Error) -> Response {
    tracing::error!(error = %e, "reading the history failed");
    error(StatusCode::INTERNAL_SERVER_ERROR, "history_failed", e.kind())
}

/// The query of the history endpoints.
#[derive(Deserialize, Default)]
pub(crate) struct HistoryQuery {
    since: Option<String>,
    limit: Option<String>,
    status: Option<String>,
    root: Option<String>,
    q: Option<String>,
}

/// A query that cannot be used: the code and message of its 400.
struct Bad(&'static str, String);

impl Bad {
    fn response(self) -> Response {
        error(StatusCode::BAD_REQUEST, self.0, self.1)
    }
}

/// `since` and `limit`.
fn window(query: &HistoryQuery) -> Result<(Option<DateTime<Utc>>, usize), Bad> {
    let since = match query.since.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            DateTime::parse_from_rfc3339(text.trim())
                .map_err(|_| Bad("bad_since", "since is not an RFC 3339 time".into()))?
                .with_timezone(&Utc),
        ),
    };
    let limit = match query.limit.as_deref() {
        None | Some("") => DEFAULT_LIMIT,
        Some(text) => match text.trim().parse::<usize>() {
            Ok(n) if n > 0 => n.min(MAX_LIMIT),
            _ => {
                return Err(Bad(
                    "bad_limit",
                    format!("limit is not a whole number from 1 to {MAX_LIMIT}"),
                ));
            }
        },
    };
    Ok((since, limit))
}

fn parse(query: Result<Query<HistoryQuery>, QueryRejection>) -> Result<HistoryQuery, Bad> {
    query
        .map(|Query(q)| q)
        .map_err(|_| Bad("bad_query", "the query string cannot be read".into()))
}

async fn blocking<T: Send + 'static>(
    state: Arc<HistoryState>,
    f: impl FnOnce(&history::Reader) -> Result<T, history::Error> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(move || state.read(f)).await {
        Ok(Ok(rows)) => Ok(rows),
        Ok(Err(e)) => Err(failed(&e)),
        Err(_) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "history_failed", "panicked")),
    }
}

#[derive(Serialize)]
struct WorkspaceHistory<'a> {
    id: &'a str,
    transitions: Vec<TransitionView<'a>>,
}

#[derive(Serialize)]
struct TransitionsDocument<'a> {
    transitions: Vec<TransitionView<'a>>,
}

/// `GET /api/v1/workspaces/{id}/history`.
pub(crate) async fn workspace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Response {
    let Some(history) = state.history.clone() else {
        return history_off();
    };
    let (since, limit) = match parse(query).and_then(|q| window(&q)) {
        Ok(window) => window,
        Err(bad) => return bad.response(),
    };
    let wanted = id.clone();
    let rows = match blocking(history, move |r| r.workspace(&wanted, since, limit)).await {
        Ok(rows) => rows,
        Err(response) => return response,
    };
    let known = state.store.snapshot().workspaces.values().any(|e| e.workspace.id == id);
    if rows.is_empty() && !known && since.is_none() {
        return error(StatusCode::NOT_FOUND, "unknown_workspace", "no workspace has this id");
    }
    axum::Json(WorkspaceHistory {
        id: &id,
        transitions: rows.iter().map(TransitionView::of).collect(),
    })
    .into_response()
}

/// `GET /api/v1/transitions`.
pub(crate) async fn transitions(
    State(state): State<AppState>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Response {
    let Some(history) = state.history.clone() else {
        return history_off();
    };
    let (query, (since, limit)) = match parse(query).and_then(|q| window(&q).map(|w| (q, w))) {
        Ok(parsed) => parsed,
        Err(bad) => return bad.response(),
    };
    let selection = match Selection::parse(Filter {
        status: query.status,
        root: query.root,
        q: query.q,
    }) {
        Ok(selection) => selection,
        Err(message) => return error(StatusCode::BAD_REQUEST, "unknown_status", message),
    };
    let filter = history::Filter {
        statuses: selection.statuses,
        root: selection.root,
        q: selection.q,
        since,
        limit,
    };
    match blocking(history, move |r| r.transitions(&filter)).await {
        Ok(rows) => axum::Json(TransitionsDocument {
            transitions: rows.iter().map(TransitionView::of).collect(),
        })
        .into_response(),
        Err(response) => response,
    }
}

/// A feed client's stream: first what it missed (from the database, after its `Last-Event-ID`),
/// then the live events it has not had yet. Ends when it falls too far behind.
struct Client {
    history: Arc<HistoryState>,
    live: broadcast::Receiver<Arc<FeedEvent>>,
    closing: tokio::sync::watch::Receiver<bool>,
    pending: VecDeque<Arc<FeedEvent>>,
    /// Still to read from the database after this event id.
    resume: Option<u64>,
    /// The last event id sent.
    last: u64,
}

async fn next(mut client: Client) -> Option<(Result<Event, Infallible>, Client)> {
    loop {
        if let Some(event) = client.pending.pop_front() {
            return Some((Ok(event.sse()), client));
        }
        if let Some(after) = client.resume {
            let rows = blocking(client.history.clone(), move |r| r.after(after, RESUME_PAGE))
                .await
                .ok()?;
            client.resume = rows.last().filter(|_| rows.len() == RESUME_PAGE).map(|s| s.event_id);
            for stored in &rows {
                client.last = stored.event_id;
                client.pending.push_back(Arc::new(FeedEvent::transition(stored)));
            }
            continue;
        }
        // Lagged (too far behind: it resumes from the database when it reconnects), closed, or
        // the daemon is stopping.
        let event = tokio::select! {
            event = client.live.recv() => event.ok()?,
            _ = client.closing.wait_for(|closing| *closing) => return None,
        };
        match event.id {
            Some(id) if id <= client.last => continue,
            Some(id) => client.last = id,
            None => {}
        }
        return Some((Ok(event.sse()), client));
    }
}

/// `GET /api/v1/events`.
pub(crate) async fn events(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(history) = state.history.clone() else {
        return history_off();
    };
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(value) => match value.to_str().ok().map(str::trim).and_then(|v| v.parse::<u64>().ok()) {
            Some(id) => Some(id),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_last_event_id",
                    "Last-Event-ID is not an event id",
                );
            }
        },
    };
    // Subscribed before the database is read, so nothing falls between the two.
    let client = Client {
        live: history.events.subscribe(),
        closing: history.closing.subscribe(),
        history,
        pending: VecDeque::new(),
        resume,
        last: resume.unwrap_or(0),
    };
    let stream = futures_util::stream::unfold(client, next);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (tempfile::TempDir, history::History, Arc<HistoryState>) {
        let dir = tempfile::tempdir().unwrap();
        let history = history::History::open(dir.path(), history::Options::default(), Utc::now()).unwrap();
        let state = Arc::new(HistoryState::new(history.reader().unwrap()));
        (dir, history, state)
    }

    fn summary() -> FeedEvent {
        FeedEvent::summary(&report::SummaryDocument {
            generated_at: String::new(),
            total: 0,
            counts: report::Counts::default(),
        })
    }

    fn client(state: &Arc<HistoryState>) -> Client {
        Client {
            history: state.clone(),
            live: state.events.subscribe(),
            closing: state.closing.subscribe(),
            pending: VecDeque::new(),
            resume: None,
            last: 0,
        }
    }

    #[tokio::test]
    async fn a_client_that_falls_behind_is_dropped_and_one_that_keeps_up_is_not() {
        let (_dir, _history, state) = state();
        let slow = client(&state);
        let mut quick = client(&state);
        for _ in 0..FEED_CAPACITY + 1 {
            state.send(summary());
            let (_, next_quick) = next(quick).await.expect("a client that keeps up gets every event");
            quick = next_quick;
        }
        assert!(next(slow).await.is_none(), "a lagged client's stream ends");
    }
}

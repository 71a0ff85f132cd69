//! `GET /v1/views/{name}/changes`: a view's change feed, as Server-Sent Events.
//!
//! The feed reads the store's change log ([`ResultStore::read_changes`]), which every
//! commit and repair that changes rows writes in its own transaction. So the feed is the
//! same whether this process runs the views (`serve`) or another one does (`serve --role
//! query`), and it survives a restart of either: each log entry is one `commit` event
//! whose `id` is its position, and a client that comes back with `Last-Event-ID` (or
//! `?from=`) gets exactly the entries after it, none twice, none skipped.
//!
//! One task per feed ([`Feed`]) polls the log every [`CHANGE_FEED_POLL`] on the blocking
//! pool and hands events to the response through a channel of
//! [`CHANGE_FEED_BUFFER_EVENTS`]. A request the log cannot serve (a position it no longer
//! holds or never held, the mark of a dropped view or an entry too large to send next, a
//! snapshot over its bound) is refused before anything streams (410, 422), so that an
//! EventSource, which reconnects after any stream that ends but never after an error
//! status, stops instead of asking again forever. Once streaming, every bound ends the
//! feed with a last event that says why: meeting one of those entries is `event: reset`
//! (the client's reconnect then gets the 410); a client
//! that leaves the buffer full for [`CHANGE_FEED_SLOW_CLIENT`] is `event: dropped`; a
//! store failure that retrying cannot cure is `event: failure` (not `error`, which
//! is the name of an EventSource's own event for a lost connection). At most
//! [`CHANGE_FEEDS_MAX`] feeds run at once (503 beyond). On shutdown every feed ends, so
//! the server's graceful stop does not wait for clients.
//!
//! What the feed does not do: it does not coalesce entries (a client far behind reads
//! every commit since its position), and it never holds more than one read of the log
//! (at most [`CHANGE_READ_ENTRIES_MAX`] commits) besides its buffer.

use super::error::{ApiError, Name};
use super::state::App;
use super::views::{blocking, freshness, store_error, view_def, with_reader};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use freshet_engine::ViewDef;
use freshet_engine::source::fmt_ms;
use freshet_store::{ChangeEntry, ChangeKind, ChangeLog, ResultQuery, ResultStore, StoreError};
use freshet_types::limits::{
    CHANGE_ENTRY_BYTES_MAX, CHANGE_FEED_BUFFER_EVENTS, CHANGE_FEED_KEEP_ALIVE, CHANGE_FEED_POLL,
    CHANGE_FEED_SLOW_CLIENT, CHANGE_FEEDS_MAX, CHANGE_READ_ENTRIES_MAX,
    CHANGE_SNAPSHOT_ROWS_PER_EVENT, RESULT_ROWS_PER_PAGE_MAX,
};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// How often an idle feed says that the view committed without changing rows.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What the client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FeedRequest {
    /// The position to resume after: `Last-Event-ID`, else `?from=`; live if neither.
    from: Option<u64>,
    /// Send the view's rows first (`?snapshot=true`), when not resuming.
    snapshot: bool,
}

impl FeedRequest {
    fn parse(headers: &HeaderMap, params: &[(String, String)]) -> Result<FeedRequest, ApiError> {
        let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m);
        let position = |what: &str, text: &str| {
            text.trim().parse::<u64>().map_err(|_| {
                bad(format!(
                    "{what}: '{text}' is not a position (a commit event's id, 0 for the start)"
                ))
            })
        };
        let mut request = FeedRequest {
            from: None,
            snapshot: false,
        };
        for (key, value) in params {
            match key.as_str() {
                "from" => request.from = Some(position("from", value)?),
                "snapshot" => {
                    request.snapshot = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(bad(format!("snapshot: '{value}' is not true or false"))),
                    }
                }
                _ => {
                    return Err(bad(format!(
                        "unknown parameter '{key}'; see docs/changes.md"
                    )));
                }
            }
        }
        // A reconnecting EventSource sends the id it saw last and the URL it started with:
        // the header is the newer news.
        if let Some(id) = headers.get("last-event-id") {
            let text = id
                .to_str()
                .map_err(|_| bad("Last-Event-ID is not text".into()))?;
            if !text.is_empty() {
                request.from = Some(position("Last-Event-ID", text)?);
            }
        }
        Ok(request)
    }
}

/// One of the [`CHANGE_FEEDS_MAX`] feeds, given back when the feed ends.
struct FeedSlot(Arc<App>);

impl FeedSlot {
    fn take(app: &Arc<App>) -> Result<FeedSlot, ApiError> {
        let taken = app
            .change_feeds
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < CHANGE_FEEDS_MAX).then_some(n + 1)
            });
        match taken {
            Ok(_) => Ok(FeedSlot(app.clone())),
            Err(_) => Err(ApiError {
                retry_after_s: Some(5),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too_many_feeds",
                    format!("this server streams {CHANGE_FEEDS_MAX} change feeds already"),
                )
            }),
        }
    }
}

impl Drop for FeedSlot {
    fn drop(&mut self) {
        self.0.change_feeds.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `GET /v1/views/{name}/changes`.
pub async fn changes(
    State(app): State<Arc<App>>,
    Name(name): Name,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let request = FeedRequest::parse(&headers, &params)?;
    let slot = FeedSlot::take(&app)?;
    let (def, start) = {
        let (app, name) = (app.clone(), name.clone());
        blocking(move || {
            with_reader(&app, |catalog, store| {
                let def = view_def(catalog, &name)?;
                let start = match request.from {
                    Some(from) => {
                        check_resume(store, &name, from)?;
                        Start::After(from)
                    }
                    None if request.snapshot => Start::Snapshot(read_snapshot(store, &name)?),
                    None => Start::After(latest_position(store, &name)?),
                };
                Ok((def, start))
            })
        })
        .await?
    };
    // One more than the buffer: a feed waits for two free places before it sends, so that
    // its last event (why it ends) always finds one.
    let (events, mut outlet) = mpsc::channel(CHANGE_FEED_BUFFER_EVENTS + 1);
    let feed = Feed {
        stopping: app.stopping.subscribe(),
        app,
        def,
        after: 0,
        events,
        committed_at_ms: None,
        progress_sent: None,
    };
    tokio::spawn(feed.run(start, slot));
    let stream = futures::stream::poll_fn(move |cx| {
        outlet
            .poll_recv(cx)
            .map(|event| event.map(Ok::<Event, Infallible>))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(CHANGE_FEED_KEEP_ALIVE))
        .into_response())
}

/// The newest position of the view's log; 0 if it has none or the store does not know the
/// view yet (its first commit will be position 1).
fn latest_position(store: Option<&dyn ResultStore>, view: &str) -> Result<u64, ApiError> {
    let Some(store) = store else { return Ok(0) };
    match store.read_changes(view, u64::MAX, 0) {
        Ok(log) => Ok(log.latest_seq.unwrap_or(0)),
        Err(StoreError::User { .. }) => Ok(0),
        Err(e) => Err(store_error(e)),
    }
}

/// Where a feed starts.
enum Start {
    /// With the commits after this position.
    After(u64),
    /// With these rows, then the commits after their position.
    Snapshot(Snapshot),
}

/// A view's rows as of a position or a little later (see [`read_snapshot`]).
struct Snapshot {
    position: u64,
    rows: Vec<Value>,
}

/// Refuses a resume from `from` that the log cannot continue: 410 with the reason as code.
fn check_resume(store: Option<&dyn ResultStore>, view: &str, from: u64) -> Result<(), ApiError> {
    let log = match store.map(|s| s.read_changes(view, from, 1)) {
        // A view the store does not hold yet: an empty log.
        None | Some(Err(StoreError::User { .. })) => ChangeLog::default(),
        Some(Ok(log)) => log,
        Some(Err(e)) => return Err(store_error(e)),
    };
    let gap = log_gap(from, &log).or_else(|| {
        log.entries
            .first()
            .and_then(|entry| entry_gap(view, entry.seq, entry.kind))
    });
    match gap {
        None => Ok(()),
        Some(gap) => Err(ApiError::new(StatusCode::GONE, gap.reason, gap.message)),
    }
}

/// The view's rows for a snapshot, as of the newest position or a little later: reading
/// the position before the rows is what makes this right, since a row changed after the
/// position is in the log, and the client applies that change again on top of the
/// snapshot, which ends where the log ends. 422 if the view holds more rows than a
/// snapshot sends.
fn read_snapshot(store: Option<&dyn ResultStore>, view: &str) -> Result<Snapshot, ApiError> {
    let position = latest_position(store, view)?;
    let query = ResultQuery {
        limit: RESULT_ROWS_PER_PAGE_MAX,
        ..ResultQuery::default()
    };
    let page = match store.map(|s| s.read_results(view, &query)) {
        None | Some(Err(StoreError::User { .. })) => {
            return Ok(Snapshot {
                position,
                rows: Vec::new(),
            });
        }
        Some(Ok(page)) => page,
        Some(Err(e)) => return Err(store_error(e)),
    };
    if page.has_more {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "snapshot_too_large",
            format!(
                "view '{view}' holds more than {RESULT_ROWS_PER_PAGE_MAX} rows, more than a \
                 snapshot sends; read them from /v1/views/{view}/results and follow the \
                 changes from position {position} (?from={position})"
            ),
        ));
    }
    Ok(Snapshot {
        position,
        rows: rows_json(&page.batch)?,
    })
}

/// Why the log cannot continue a feed: the reason (`reset` event's `reason`, or the
/// code of a 410), what to do, and the positions involved.
struct Gap {
    reason: &'static str,
    message: String,
    positions: Value,
}

impl Gap {
    /// The `reset` event. Its id is the client's position, which it had already: an
    /// EventSource that reconnects after it (as it does after any stream that ends) sends
    /// that position and is refused with the 410, which ends it.
    fn event(self) -> Event {
        let mut data = self.positions;
        let position = data["position"].as_u64();
        data["reason"] = json!(self.reason);
        data["message"] = json!(self.message);
        let event = reason_event("reset", data);
        match position {
            Some(position) => event.id(position.to_string()),
            None => event,
        }
    }
}

/// A gap if the log cannot continue from position `after`: it is past the newest position
/// (another store, or a log lost), or the entries after it were pruned.
fn log_gap(after: u64, log: &ChangeLog) -> Option<Gap> {
    let latest = log.latest_seq.unwrap_or(0);
    let (reason, message) = if after > latest {
        (
            "unknown_position",
            format!(
                "position {after} is past the view's newest, {latest}; start over with \
                 ?snapshot=true"
            ),
        )
    } else if let Some(oldest) = log.oldest_seq
        && after.saturating_add(1) < oldest
    {
        (
            "expired",
            format!(
                "the change log no longer holds the commits after position {after} (it \
                 keeps {oldest} to {latest}); start over with ?snapshot=true"
            ),
        )
    } else {
        return None;
    };
    Some(Gap {
        reason,
        message,
        positions: json!({
            "position": after,
            "oldest_position": log.oldest_seq,
            "latest_position": latest,
        }),
    })
}

/// A gap if the log's entry at `seq` cannot be sent to a client at the position before
/// it: the mark of a dropped view, or a commit too large for the log.
fn entry_gap(view: &str, seq: u64, kind: ChangeKind) -> Option<Gap> {
    let (reason, message) = match kind {
        ChangeKind::Commit | ChangeKind::Repair => return None,
        ChangeKind::Dropped => (
            "view_recreated",
            format!(
                "view '{view}' was dropped at position {seq} and created again; start over \
                 with ?snapshot=true"
            ),
        ),
        ChangeKind::Overflow => (
            "too_large",
            format!(
                "the commit at position {seq} changed more rows than one entry of the change \
                 log holds ({} MiB of encoded rows by default, \
                 FRESHET_CHANGES_ENTRY_BYTES_MAX on the writer); start over with \
                 ?snapshot=true, or read /v1/views/{view}/results and follow from \
                 ?from={seq}",
                CHANGE_ENTRY_BYTES_MAX / (1024 * 1024)
            ),
        ),
    };
    let mut positions = json!({"position": seq.saturating_sub(1), "at": seq});
    if kind == ChangeKind::Dropped {
        // The name this field had before `at`.
        positions["dropped_at"] = json!(seq);
    }
    Some(Gap {
        reason,
        message,
        positions,
    })
}

/// Why a feed ends.
enum Stop {
    /// The client left, or the server is stopping: nothing more to say.
    Quietly,
    /// With this last event.
    With(Event),
}

/// A feed's task: reads the log after `after` and hands the client one event per entry.
struct Feed {
    app: Arc<App>,
    def: ViewDef,
    /// The last position handed to the client.
    after: u64,
    events: mpsc::Sender<Event>,
    stopping: watch::Receiver<bool>,
    /// The commit time of the view's status last said in a `progress` event.
    committed_at_ms: Option<i64>,
    /// When the last `progress` check ran.
    progress_sent: Option<Instant>,
}

impl Feed {
    async fn run(mut self, start: Start, _slot: FeedSlot) {
        let result = match start {
            Start::Snapshot(snapshot) => self.snapshot(snapshot).await,
            Start::After(after) => {
                self.after = after;
                Ok(())
            }
        };
        let result = match result {
            Ok(()) => self.follow().await,
            Err(stop) => Err(stop),
        };
        if let Err(Stop::With(event)) = result {
            // One place is always free (see `send`); a client gone is no matter.
            let _ = self.events.try_send(event);
        }
    }

    /// Hands `event` to the client (see [`deliver`]); a client that leaves the buffer full
    /// for [`CHANGE_FEED_SLOW_CLIENT`] is dropped.
    async fn send(&mut self, event: Event) -> Result<(), Stop> {
        let after = self.after;
        deliver(
            &self.events,
            &mut self.stopping,
            event,
            CHANGE_FEED_SLOW_CLIENT,
        )
        .await
        .map_err(|stop| match stop {
            Stop::Quietly => Stop::Quietly,
            Stop::With(_) => Stop::With(reason_event(
                "dropped",
                json!({
                    "reason": "slow_client",
                    "message": format!(
                        "the client read nothing for {} s while events waited; resume from \
                         the last position received",
                        CHANGE_FEED_SLOW_CLIENT.as_secs()
                    ),
                    "position": after,
                }),
            )),
        })
    }

    /// Waits one poll interval; `Err` once the server stops or the client left.
    async fn pause(&mut self) -> Result<(), Stop> {
        tokio::select! {
            biased;
            _ = self.stopping.wait_for(|&stopping| stopping) => Err(Stop::Quietly),
            () = self.events.closed() => Err(Stop::Quietly),
            () = tokio::time::sleep(CHANGE_FEED_POLL) => Ok(()),
        }
    }

    /// `snapshot` events holding the rows, the last with their position.
    async fn snapshot(&mut self, snapshot: Snapshot) -> Result<(), Stop> {
        let Snapshot { position, rows } = snapshot;
        self.after = position;
        let mut chunks = rows.chunks(CHANGE_SNAPSHOT_ROWS_PER_EVENT).peekable();
        if chunks.peek().is_none() {
            return self.send(snapshot_event(position, &[], true)).await;
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            self.send(snapshot_event(position, chunk, last)).await?;
        }
        Ok(())
    }

    /// Follows the log: every entry after `after`, as it is committed.
    async fn follow(&mut self) -> Result<(), Stop> {
        loop {
            let (app, def, after) = (self.app.clone(), self.def.clone(), self.after);
            let read = blocking(move || {
                with_reader(&app, |_, store| {
                    let Some(store) = store else {
                        return Ok(Read::Log(ChangeLog::default(), Vec::new()));
                    };
                    match store.read_changes(&def.name, after, CHANGE_READ_ENTRIES_MAX) {
                        Ok(mut log) => {
                            let entries = std::mem::take(&mut log.entries);
                            let events = entries
                                .into_iter()
                                .map(|entry| {
                                    let seq = entry.seq;
                                    let event = match entry_gap(&def.name, seq, entry.kind) {
                                        Some(gap) => Err(gap),
                                        None => Ok(commit_event(&app, &def, entry)?),
                                    };
                                    Ok((seq, event))
                                })
                                .collect::<Result<Vec<_>, ApiError>>()?;
                            Ok(Read::Log(log, events))
                        }
                        // A view in the catalog that the store does not hold yet (the
                        // writer has not created it): an empty log, polled again.
                        Err(StoreError::User { .. }) => {
                            Ok(Read::Log(ChangeLog::default(), Vec::new()))
                        }
                        Err(e) if e.retriable() => Ok(Read::Retry(e.to_string())),
                        Err(e) => Err(store_error(e)),
                    }
                })
            })
            .await;
            let (log, events) = match read {
                Ok(Read::Log(log, events)) => (log, events),
                Ok(Read::Retry(error)) => {
                    tracing::warn!(
                        view = self.def.name,
                        error,
                        "change feed read failed; retrying"
                    );
                    self.pause().await?;
                    continue;
                }
                Err(e) => return Err(Stop::With(error_event(&e))),
            };
            if let Some(gap) = log_gap(self.after, &log) {
                return Err(Stop::With(gap.event()));
            }
            if events.is_empty() {
                self.progress().await?;
                self.pause().await?;
                continue;
            }
            for (seq, event) in events {
                self.send(event.map_err(|gap| Stop::With(gap.event()))?)
                    .await?;
                self.after = seq;
            }
        }
    }

    /// A `progress` event when the view committed since the last one said so, at most
    /// every [`PROGRESS_EVERY`]: commits that change no rows take no position, but their
    /// watermark and freshness are news.
    async fn progress(&mut self) -> Result<(), Stop> {
        if self
            .progress_sent
            .is_some_and(|at| at.elapsed() < PROGRESS_EVERY)
        {
            return Ok(());
        }
        self.progress_sent = Some(Instant::now());
        let (app, def, after) = (self.app.clone(), self.def.clone(), self.after);
        let status = blocking(move || {
            with_reader(&app, |_, store| {
                let Some(store) = store else { return Ok(None) };
                let Ok(status) = store.status(&def.name) else {
                    return Ok(None);
                };
                // The status is read first: if its commit changed rows, the log read next
                // shows it, and the client gets that commit's event before any word of
                // its progress.
                if latest_position(Some(store), &def.name)? != after {
                    return Ok(None);
                }
                let now = freshet_types::IngestTime::now().0;
                let fresh = freshness(&app, &def, &status, now).0;
                Ok(Some((status.committed_at_ms, fresh)))
            })
        })
        .await;
        let Ok(Some((committed_at_ms, fresh))) = status else {
            return Ok(());
        };
        if committed_at_ms.is_none() || committed_at_ms == self.committed_at_ms {
            return Ok(());
        }
        self.committed_at_ms = committed_at_ms;
        let data = json!({
            "view": self.def.name,
            "position": self.after,
            "freshness": fresh,
        });
        self.send(Event::default().event("progress").data(data.to_string()))
            .await
    }
}

/// Puts `event` in the buffer once two places are free in it, the second staying free for
/// a last event. `Err(Stop::With(_))` (carrying an empty event, for the caller to replace)
/// if the client left the buffer full for `patience`; `Err(Stop::Quietly)` if the client
/// left or the server stops.
async fn deliver(
    events: &mpsc::Sender<Event>,
    stopping: &mut watch::Receiver<bool>,
    event: Event,
    patience: Duration,
) -> Result<(), Stop> {
    let reserved = tokio::select! {
        biased;
        _ = stopping.wait_for(|&stopping| stopping) => return Err(Stop::Quietly),
        reserved = tokio::time::timeout(patience, events.reserve_many(2)) => reserved,
    };
    match reserved {
        Ok(Ok(mut permits)) => {
            permits.next().expect("two places reserved").send(event);
            Ok(())
        }
        Ok(Err(_)) => Err(Stop::Quietly),
        Err(_) => Err(Stop::With(Event::default())),
    }
}

/// What one read of the log found.
enum Read {
    /// The log's bounds and its entries after the position, as events, or the gap an
    /// entry that cannot be sent makes.
    Log(ChangeLog, Vec<(u64, Result<Event, Gap>)>),
    /// A failure retrying may cure.
    Retry(String),
}

fn reason_event(kind: &'static str, data: Value) -> Event {
    Event::default().event(kind).data(data.to_string())
}

fn error_event(e: &ApiError) -> Event {
    reason_event("failure", json!({"reason": e.code, "message": e.message}))
}

fn snapshot_event(position: u64, rows: &[Value], last: bool) -> Event {
    let data = json!({"position": position, "rows": rows, "last": last});
    let event = Event::default().event("snapshot").data(data.to_string());
    // Only the last part carries the position: a client cut off halfway has no id and
    // starts the snapshot again.
    match last {
        true => event.id(position.to_string()),
        false => event,
    }
}

fn rows_json(batch: &arrow_array::RecordBatch) -> Result<Vec<Value>, ApiError> {
    crate::rows_json::rows(batch).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{e:#}"),
        )
    })
}

/// The `commit` event of one log entry, its id the entry's position.
fn commit_event(app: &App, def: &ViewDef, entry: ChangeEntry) -> Result<Event, ApiError> {
    let deletes = match &entry.deletes {
        Some(batch) => rows_json(batch)?,
        None => Vec::new(),
    };
    let upserts = match &entry.upserts {
        Some(batch) => rows_json(batch)?,
        None => Vec::new(),
    };
    let (watermark, offsets) = match &entry.progress {
        Some(progress) => (
            progress.watermark_ms.map(fmt_ms),
            json!(
                progress
                    .partitions
                    .iter()
                    .map(|p| json!({
                        "stream": p.stream,
                        "partition": p.partition,
                        "next_offset": p.next_offset,
                    }))
                    .collect::<Vec<_>>()
            ),
        ),
        None => (None, Value::Null),
    };
    let fresh = entry.progress.clone().map(|progress| {
        let status = freshet_store::ViewStatus {
            view: def.name.clone(),
            progress: Some(progress),
            committed_at_ms: Some(entry.committed_at_ms),
        };
        freshness(app, def, &status, freshet_types::IngestTime::now().0).0
    });
    let data = json!({
        "view": def.name,
        "position": entry.seq,
        "kind": entry.kind.as_str(),
        "committed_at": fmt_ms(entry.committed_at_ms),
        "watermark": watermark,
        "offsets": offsets,
        "freshness": fresh,
        "deletes": deletes,
        "upserts": upserts,
    });
    Ok(Event::default()
        .id(entry.seq.to_string())
        .event("commit")
        .data(data.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn last_event_id_wins_over_from() {
        let mut headers = HeaderMap::new();
        let request = FeedRequest::parse(&headers, &params(&[("from", "3")])).expect("valid");
        assert_eq!(request.from, Some(3));
        headers.insert("last-event-id", HeaderValue::from_static("7"));
        let request = FeedRequest::parse(&headers, &params(&[("from", "3"), ("snapshot", "true")]))
            .expect("valid");
        assert_eq!(
            request,
            FeedRequest {
                from: Some(7),
                snapshot: true
            }
        );
        assert!(FeedRequest::parse(&HeaderMap::new(), &params(&[("from", "-1")])).is_err());
        assert!(FeedRequest::parse(&HeaderMap::new(), &params(&[("snapshot", "yes")])).is_err());
        assert!(FeedRequest::parse(&HeaderMap::new(), &params(&[("limit", "1")])).is_err());
    }

    /// A client that reads nothing fills the buffer and is dropped, and the place kept
    /// free takes the last event; one that leaves ends the feed quietly, as does the
    /// server stopping.
    #[tokio::test]
    async fn a_client_that_reads_nothing_is_dropped_with_a_last_event() {
        let patience = Duration::from_millis(20);
        let (stop_tx, mut stopping) = watch::channel(false);
        // A buffer of two events, plus the place kept for the last one.
        let (events, mut outlet) = mpsc::channel(3);
        for _ in 0..2 {
            assert!(
                deliver(&events, &mut stopping, Event::default(), patience)
                    .await
                    .is_ok()
            );
        }
        let full = deliver(&events, &mut stopping, Event::default(), patience).await;
        assert!(matches!(full, Err(Stop::With(_))), "dropped when full");
        assert!(
            events.try_send(Event::default()).is_ok(),
            "room for the last event"
        );
        for _ in 0..3 {
            assert!(outlet.try_recv().is_ok());
        }
        stop_tx.send_replace(true);
        let stopped = deliver(&events, &mut stopping, Event::default(), patience).await;
        assert!(matches!(stopped, Err(Stop::Quietly)), "the server stops");
        let (_running, mut running) = watch::channel(false);
        drop(outlet);
        let gone = deliver(&events, &mut running, Event::default(), patience).await;
        assert!(matches!(gone, Err(Stop::Quietly)), "the client left");
    }

    fn log(oldest: Option<u64>, latest: Option<u64>) -> ChangeLog {
        ChangeLog {
            oldest_seq: oldest,
            latest_seq: latest,
            entries: Vec::new(),
        }
    }

    #[test]
    fn positions_outside_the_log_are_gaps() {
        // Within the log, or just before its oldest entry: the feed continues.
        assert!(log_gap(0, &log(None, None)).is_none());
        assert!(log_gap(0, &log(Some(1), Some(5))).is_none());
        assert!(log_gap(4, &log(Some(5), Some(9))).is_none());
        assert!(log_gap(9, &log(Some(5), Some(9))).is_none());
        // Pruned, or never reached.
        let reason = |after, log| log_gap(after, &log).map(|g| g.reason);
        assert_eq!(reason(3, log(Some(5), Some(9))), Some("expired"));
        assert_eq!(reason(10, log(Some(5), Some(9))), Some("unknown_position"));
        assert_eq!(reason(1, log(None, None)), Some("unknown_position"));
        // Entries that cannot be sent.
        let reason = |kind| entry_gap("v", 5, kind).map(|g| g.reason);
        assert_eq!(reason(ChangeKind::Commit), None);
        assert_eq!(reason(ChangeKind::Repair), None);
        assert_eq!(reason(ChangeKind::Dropped), Some("view_recreated"));
        assert_eq!(reason(ChangeKind::Overflow), Some("too_large"));
    }
}

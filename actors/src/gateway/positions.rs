//! Read-your-writes: a query may name the positions its answer must reflect (`?reflects=
//! orders-p3:5,inventory:12`, or the `Herald-Reflects` header), as `POST /v1/events`
//! returned them. The answer waits until the state of the host answering includes each
//! one: its own record applied, or an input handled with its reactions appended; or 504
//! after [`REFLECT_TIMEOUT`].
//!
//! Per position of stream `S`, sequence `n`, for the host of stream `H` of domain `D`:
//! - `S` is `H`: the record must be in the log (durable): every own record is applied
//!   before it is acknowledged (ingress) or right after it is appended (reactions, timers).
//! - `S` is another partition of `D`: this host's state cannot depend on it.
//! - `S` is a stream of a domain `D` reads: the record must be in the log; if it is not an
//!   input of this host (another type, another partition's key) nothing waits on it; else
//!   the state must have handled `S` up to `n` (`HostedDomain::consumed`, kept in the state
//!   and its snapshots, so it holds across restarts and moves in both modes).
//! - anything else is refused (400): `D` neither writes nor reads `S`.

use std::time::{Duration, Instant};

use herald_runtime::log::Visibility;
use herald_runtime::Position;

use super::problem::{self, Problem};
use super::state::GatewayState;
use super::streams::log_problem;
use crate::registry::HostHandle;

/// The longest a query waits for the positions it names: under the default forwarding
/// timeout (`[bus.nats] request_timeout`, 5 s), so a forwarded read gets this answer.
pub const REFLECT_TIMEOUT: Duration = Duration::from_secs(4);

/// The query parameter naming the positions.
pub const PARAMETER: &str = "reflects";

/// The header naming the positions (the parameter wins when both are given).
pub const HEADER: &str = "herald-reflects";

/// Parses `stream:sequence[,stream:sequence…]`; a 400 names the piece that is wrong.
pub fn parse(text: &str, state: &GatewayState, domain: &str) -> Result<Vec<Position>, Problem> {
    let bad =
        |detail: String| Problem::new(problem::BAD_POSITION, detail).with("parameter", PARAMETER);
    let mut positions = Vec::new();
    for piece in text.split(',').map(str::trim) {
        let Some((stream, sequence)) = piece.rsplit_once(':') else {
            return Err(bad(format!(
                "position \"{piece}\" is not STREAM:SEQUENCE (for example \"orders-p3:5\", as POST /v1/events answers)"
            )));
        };
        let sequence: u64 = sequence.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            bad(format!(
                "position \"{piece}\": sequence \"{sequence}\" is not a whole number from 1"
            ))
        })?;
        let Some((owner, _)) = state.layout.locate(stream) else {
            return Err(bad(format!(
                "position \"{piece}\": no stream \"{stream}\" (streams are listed at GET /v1/streams)"
            )));
        };
        let reads = state.catalog.description(domain).is_some_and(|d| {
            d.subscriptions
                .iter()
                .any(|t| t.split_once('.').is_some_and(|(of, _)| of == owner))
        });
        if owner != domain && !reads {
            return Err(bad(format!(
                "position \"{piece}\": domain \"{domain}\" neither writes nor reads stream \"{stream}\", so its state never reflects it"
            )));
        }
        positions.push(Position {
            stream: stream.to_owned(),
            sequence,
        });
    }
    if positions.len() > 64 {
        return Err(bad(format!(
            "{} positions; a query may name at most 64",
            positions.len()
        )));
    }
    Ok(positions)
}

/// Waits until the host of `stream` reflects every one of `positions`; 504 naming the
/// first that it does not within [`REFLECT_TIMEOUT`].
pub async fn reflected(
    state: &GatewayState,
    host: &HostHandle,
    stream: &str,
    positions: &[Position],
) -> Result<(), Problem> {
    if positions.is_empty() {
        return Ok(());
    }
    let Some((domain, _)) = state.layout.locate(stream) else {
        return Ok(());
    };
    let mut wait = Wait::new(stream);
    for position in positions {
        // A durable record stays: it is looked up until found, then only the host's
        // progress is polled.
        let handled_here = loop {
            match handled_here(state, host, stream, domain, position)? {
                Some(handled_here) => break handled_here,
                None => {
                    let absent = format!(
                        "{}:{} is not in the log yet",
                        position.stream, position.sequence
                    );
                    wait.or_time_out(position, absent).await?;
                }
            }
        };
        if !handled_here {
            continue;
        }
        loop {
            let consumed = host.view.consumed(&position.stream);
            if consumed >= position.sequence {
                break;
            }
            let behind = format!("it has handled \"{}\" up to {consumed}", position.stream);
            wait.or_time_out(position, behind).await?;
        }
    }
    Ok(())
}

/// The bounded, backing-off wait of one read over all its positions.
struct Wait<'a> {
    stream: &'a str,
    started: Instant,
    pause: Duration,
}

impl<'a> Wait<'a> {
    fn new(stream: &'a str) -> Self {
        Self {
            stream,
            started: Instant::now(),
            pause: Duration::from_millis(1),
        }
    }

    /// Sleeps a little longer each time, or is the 504 naming `position` and
    /// `where_it_is` once [`REFLECT_TIMEOUT`] has passed.
    async fn or_time_out(
        &mut self,
        position: &Position,
        where_it_is: String,
    ) -> Result<(), Problem> {
        if self.started.elapsed() >= REFLECT_TIMEOUT {
            let stream = self.stream;
            return Err(Problem::new(
                problem::POSITION_NOT_REFLECTED,
                format!(
                    "stream \"{stream}\" did not reflect {}:{} within {}s ({where_it_is}); retry, or ask without \"{PARAMETER}\"",
                    position.stream,
                    position.sequence,
                    REFLECT_TIMEOUT.as_secs()
                ),
            )
            .with("stream", stream)
            .with("position", format!("{}:{}", position.stream, position.sequence)));
        }
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(Duration::from_millis(25));
        Ok(())
    }
}

/// Whether the host of `stream` (of `domain`) must have handled `position` for its state
/// to reflect it; `None` while the record is not in the log yet.
fn handled_here(
    state: &GatewayState,
    host: &HostHandle,
    stream: &str,
    domain: &str,
    position: &Position,
) -> Result<Option<bool>, Problem> {
    let owner = state.layout.locate(&position.stream).map(|(d, _)| d);
    if owner == Some(domain) && position.stream != stream {
        // Another partition of this domain: nothing here depends on it.
        return Ok(Some(false));
    }
    let record = state
        .log
        .read_stream(&position.stream, position.sequence, 1, Visibility::Durable)
        .map_err(log_problem)?
        .into_iter()
        .find(|record| record.envelope.sequence == position.sequence);
    let Some(record) = record else {
        return Ok(None);
    };
    // Its own record is applied once durable; another stream's counts if it is an input.
    Ok(Some(
        position.stream != stream && host.inputs.take(&record.envelope.event_type).takes(&record),
    ))
}

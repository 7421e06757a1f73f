//! Which node runs which stream, in networked mode: every stream of every enabled domain
//! (the domain's own, or each of its partitions) is owned by exactly one live node among
//! those that enable the domain, through a lease in NATS KV (see `bucket.rs`).
//!
//! At every tick (a sixth of the lease) a node announces itself, reads the bucket, renews
//! what it holds, and compares with where each stream belongs: `partition::assign` over the
//! live members enabling the domain, computed alike on every node.
//! - A free stream is claimed by the node it belongs to at once, and by any other enabled
//!   node once it stayed free for a third of the lease (its node may be gone).
//! - A held stream that belongs elsewhere (a node joined) is handed off, one per tick: no
//!   more forwarded requests, the host drains and snapshots, stops, and the lease is
//!   deleted; the new owner claims it at its next tick and replays almost nothing.
//! - A lease that could not be renewed (lost to another node, expired while this process
//!   was paused) stops the host at once. Until then the log refuses appends past the
//!   lease's deadline, and JetStream's expected-sequence fence refuses a stale append that
//!   slips through.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::web;
use dashmap::DashMap;
use herald_runtime::bus::Bus;
use herald_runtime::nats::{layout, JetStreamDomainLog, Lease, Nats};
use herald_runtime::partition::{self, Layout};
use tokio::sync::{oneshot, watch};
use tracing::{debug, error, info, warn};

pub use crate::members::{Bucket, Claim, Member};
use crate::registry::hosted;

use crate::gateway::{forward, GatewayState};
use crate::registry::HostHandle;
use crate::supervisor::{HostFactory, Hosting};

/// Renewals are sent this much before the lease would run out at the server, and the
/// node's own deadline is this much short of it.
const MARGIN: Duration = Duration::from_secs(1);

/// Makes the host of a stream from its bus.
pub type Factory = Arc<dyn Fn(&'static str, Arc<Bus>) -> HostFactory + Send + Sync>;

/// What the ownership loop needs.
pub struct Ownership {
    /// The members and leases.
    pub bucket: Bucket,
    /// The connection.
    pub nats: Arc<Nats>,
    /// Every domain's streams.
    pub layout: Arc<Layout>,
    /// The domains this node may own.
    pub enabled: Vec<&'static str>,
    /// This node's entry (its `domains` are filled in at each tick).
    pub member: Member,
    /// The node's hosts.
    pub hosts: Arc<DashMap<&'static str, HostHandle>>,
    /// Starts and stops hosts.
    pub hosting: Hosting,
    /// Makes a stream's host.
    pub factory: Factory,
    /// The gateway, to answer forwarded requests for held streams.
    pub gateway: web::Data<GatewayState>,
    /// Test hook: keep acting as owner past the lease (only the JetStream fence remains).
    pub ignore_lease: bool,
}

struct Held {
    revision: u64,
    claim: Claim,
    lease: Arc<Lease>,
    _serving: Option<forward::Serving>,
}

/// Runs the ownership loop; the handle says when the first round is done and stops it.
pub fn start(ownership: Ownership) -> OwnershipHandle {
    let (settled, settled_rx) = watch::channel(false);
    let (stop, stopping) = oneshot::channel::<oneshot::Sender<()>>();
    actix_rt::spawn(run(ownership, settled, stopping));

    OwnershipHandle {
        settled: settled_rx,
        stop: Some(stop),
    }
}

/// Controls a running ownership loop.
pub struct OwnershipHandle {
    settled: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<oneshot::Sender<()>>>,
}

impl OwnershipHandle {
    /// Waits until the first round claimed what was free for this node.
    pub async fn first_round(&mut self) {
        let _ = self.settled.wait_for(|done| *done).await;
    }

    /// Stops the loop without handing anything over (NATS is away): the leases run out.
    pub fn abandon(&mut self) {
        self.stop = None;
    }

    /// Hands every held stream off (drained and snapshotted hosts, deleted leases) and
    /// withdraws the node.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let (done, finished) = oneshot::channel();
            if stop.send(done).is_ok() {
                let _ = finished.await;
            }
        }
    }
}

async fn run(
    mut this: Ownership,
    settled: watch::Sender<bool>,
    mut stopping: oneshot::Receiver<oneshot::Sender<()>>,
) {
    let lease = this.bucket.lease();
    let mut interval = tokio::time::interval(lease / 6);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut held: HashMap<&'static str, Held> = HashMap::new();
    let mut free_since: HashMap<&'static str, Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = interval.tick() => {
                match this.tick(&mut held, &mut free_since).await {
                    Ok(()) => {
                        let _ = settled.send(true);
                    }
                    Err(error) => warn!(%error, "ownership round failed; held leases run out unless renewed in time"),
                }
            }
            done = &mut stopping => {
                // Asked to stop: hand everything over. Dropped (NATS away at shutdown):
                // stop at once; the leases run out by themselves.
                if let Ok(done) = done {
                    this.release_all(&mut held).await;
                    let _ = done.send(());
                }
                return;
            }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

impl Ownership {
    fn streams(&self) -> Vec<(&'static str, &'static str, u32)> {
        self.enabled
            .iter()
            .flat_map(|domain| {
                self.layout
                    .streams(domain)
                    .iter()
                    .enumerate()
                    .map(|(p, stream)| (*domain, *stream, p as u32))
            })
            .collect()
    }

    /// Puts this node's entry, with the streams it hosts now.
    async fn announce(&mut self) -> Result<(), String> {
        self.member.domains = hosted(&self.hosts);
        self.bucket.put_member(&self.member).await
    }

    async fn tick(
        &mut self,
        held: &mut HashMap<&'static str, Held>,
        free_since: &mut HashMap<&'static str, Instant>,
    ) -> Result<(), String> {
        let lease = self.bucket.lease();
        let sent = Instant::now();
        self.announce().await?;
        let scan = self.bucket.scan().await?;

        // Renew what is held; drop what was lost.
        let mut lost = Vec::new();
        for (stream, hold) in held.iter_mut() {
            let renewed = match scan.claims.get(*stream) {
                // This node's claim from this acquisition, at whatever revision the last
                // renewal left it (its answer may have been lost).
                Some((claim, revision))
                    if claim.node == self.member.id && claim.since == hold.claim.since =>
                {
                    self.bucket.renew(stream, &hold.claim, *revision).await?
                }
                // It ran out (NATS away past the lease) and nobody took it: claimed again,
                // the host kept. Had another node written meanwhile, JetStream's fence
                // would refuse this host's next append and it would rebuild.
                None => {
                    let again = self.bucket.claim(stream, &hold.claim).await?;
                    if again.is_some() {
                        info!(
                            stream,
                            "lease ran out with nobody else claiming it; claimed again"
                        );
                    }
                    again
                }
                Some(_) => None,
            };
            match renewed {
                Some(revision) => {
                    hold.revision = revision;
                    hold.lease.extend(sent + lease - MARGIN);
                }
                None if self.ignore_lease => {
                    warn!(
                        stream,
                        "lease lost, but the fault hook keeps this node acting as owner"
                    );
                }
                None => lost.push(*stream),
            }
        }
        for stream in lost {
            if let Some(hold) = held.remove(stream) {
                hold.lease.revoke();
                error!(stream, "lease lost (it ran out, or another node owns the stream now); stopping its host");
                drop(hold);
                self.hosting.stop(stream, false).await;
            }
        }

        // Where each stream belongs now.
        let mut belongs: HashMap<&'static str, Option<String>> = HashMap::new();
        for domain in &self.enabled {
            let members: Vec<&str> = scan
                .members
                .values()
                .filter(|member| member.enabled.iter().any(|d| d == domain))
                .map(|member| member.id.as_str())
                .collect();
            let owners = partition::assign(domain, self.layout.partitions(domain), &members);
            for (stream, owner) in self.layout.streams(domain).iter().zip(owners) {
                belongs.insert(stream, owner);
            }
        }

        // Hand streams off to where they belong (a node joined): one per domain per
        // round, so a domain never has several partitions between owners at once.
        let mut moving: Vec<&'static str> = Vec::new();
        for domain in &self.enabled {
            let away = self.layout.streams(domain).iter().copied().find(|stream| {
                held.contains_key(stream)
                    && belongs
                        .get(stream)
                        .and_then(Option::as_deref)
                        .is_some_and(|owner| owner != self.member.id)
            });
            moving.extend(away);
        }
        for stream in moving {
            if let Some(hold) = held.remove(stream) {
                self.hand_off(stream, hold, held).await;
            }
        }

        // Claim what is free and belongs here (or was left free too long).
        let mut claims = Vec::new();
        let mut inherited = Vec::new();
        for (domain, stream, partition) in self.streams() {
            if held.contains_key(stream) {
                free_since.remove(stream);
                continue;
            }
            if let Some((claim, revision)) = scan.claims.get(stream) {
                // Held under this node's id but not by this process: its previous life,
                // killed before the lease ran out. Taken over by revision, at once.
                if claim.node == self.member.id {
                    inherited.push((domain, stream, partition, *revision));
                }
                free_since.remove(stream);
                continue;
            }
            let since = *free_since.entry(stream).or_insert_with(Instant::now);
            let here = belongs
                .get(stream)
                .is_some_and(|owner| owner.as_deref() == Some(self.member.id.as_str()));
            if here || since.elapsed() >= lease / 3 {
                claims.push((domain, stream, partition));
            }
        }
        let changed = !claims.is_empty() || !inherited.is_empty();
        let claims = claims
            .into_iter()
            .map(|(domain, stream, partition)| (domain, stream, partition, None))
            .chain(
                inherited
                    .into_iter()
                    .map(|(domain, stream, partition, revision)| {
                        (domain, stream, partition, Some(revision))
                    }),
            );
        for (domain, stream, partition, previous) in claims {
            let claim = Claim {
                node: self.member.id.clone(),
                since: now_ms(),
            };
            let sent = Instant::now();
            let won = match previous {
                None => self.bucket.claim(stream, &claim).await?,
                Some(revision) => self.bucket.renew(stream, &claim, revision).await?,
            };
            let Some(revision) = won else {
                continue;
            };
            free_since.remove(stream);
            let lease = Arc::new(Lease::until(sent + self.bucket.lease() - MARGIN));
            if self.ignore_lease {
                lease.ignore_deadline();
            }
            info!(
                stream,
                domain, partition, revision, "lease won; starting the stream's host"
            );
            let serving = self.acquire(stream, Arc::clone(&lease)).await;
            let failed = serving.is_none();
            held.insert(
                stream,
                Held {
                    revision,
                    claim,
                    lease,
                    _serving: serving,
                },
            );
            if failed {
                if let Some(hold) = held.remove(stream) {
                    let _ = self.bucket.release(stream, hold.revision).await;
                }
            }
        }
        if changed {
            // Tell the cluster view at once what this node hosts now.
            self.announce().await?;
        }
        debug!(held = held.len(), "ownership round done");
        Ok(())
    }

    /// Opens the stream's log, starts its host and answers its forwarded requests.
    async fn acquire(&self, stream: &'static str, lease: Arc<Lease>) -> Option<forward::Serving> {
        let nats = Arc::clone(&self.nats);
        let place = layout::placement(&self.layout, stream);
        let opened = tokio::task::spawn_blocking(move || {
            JetStreamDomainLog::open(nats, stream, place, Some(lease))
        })
        .await;
        let log = match opened {
            Ok(Ok(log)) => log,
            Ok(Err(error)) => {
                error!(stream, %error, "cannot open the stream's log; giving the lease back");
                return None;
            }
            Err(error) => {
                error!(stream, %error, "opening the stream's log failed; giving the lease back");
                return None;
            }
        };
        self.hosting
            .start(stream, (self.factory)(stream, Arc::new(Bus::new(log))))
            .await;
        Some(forward::serve(
            self.gateway.clone(),
            Arc::clone(&self.nats),
            stream,
        ))
    }

    /// Moves a held stream to its next owner: no more requests here, the host drains and
    /// snapshots, then the lease is deleted so the next owner can claim it. The leases
    /// still `held` are renewed meanwhile: a hand-off under load must not cost the others.
    async fn hand_off(
        &self,
        stream: &'static str,
        hold: Held,
        held: &mut HashMap<&'static str, Held>,
    ) {
        let started = Instant::now();
        let Held {
            mut revision,
            lease,
            _serving,
            claim,
        } = hold;
        drop(_serving);
        let stopping = self.hosting.stop(stream, true);
        tokio::pin!(stopping);
        let every = self.bucket.lease() / 6;
        loop {
            tokio::select! {
                () = &mut stopping => break,
                () = tokio::time::sleep(every) => {
                    // The moving stream too: its host is still draining and writing.
                    let sent = Instant::now();
                    if let Ok(Some(renewed)) = self.bucket.renew(stream, &claim, revision).await {
                        revision = renewed;
                        lease.extend(sent + self.bucket.lease() - MARGIN);
                    }
                    self.renew_held(held).await;
                }
            }
        }
        lease.revoke();
        if let Err(error) = self.bucket.release(stream, revision).await {
            warn!(stream, %error, "cannot delete the lease; it runs out by itself");
        }
        info!(
            stream,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "stream handed off"
        );
    }

    /// Renews each of `held` at the revision it was last left at; one that fails is left
    /// for the next round, which reads the bucket and decides.
    async fn renew_held(&self, held: &mut HashMap<&'static str, Held>) {
        let lease = self.bucket.lease();
        for (stream, hold) in held.iter_mut() {
            let sent = Instant::now();
            if let Ok(Some(revision)) = self.bucket.renew(stream, &hold.claim, hold.revision).await
            {
                hold.revision = revision;
                hold.lease.extend(sent + lease - MARGIN);
            }
        }
    }

    async fn release_all(&self, held: &mut HashMap<&'static str, Held>) {
        let streams: Vec<&'static str> = held.keys().copied().collect();
        for stream in streams {
            if let Some(hold) = held.remove(stream) {
                self.hand_off(stream, hold, held).await;
            }
        }
        if let Err(error) = self.bucket.withdraw(&self.member.id).await {
            warn!(%error, "could not withdraw this node from the owners bucket; it expires by itself");
        }
    }
}

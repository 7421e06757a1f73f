//! Starts domain hosts and starts them again when they stop.
//!
//! actix's own `Supervisor` restarts an actor with the state it had, which is exactly what
//! must not happen after a failure: the state may be half-changed. Here a stopped host is
//! replaced by a new one that recovers from snapshot plus log, on the same thread and with
//! the same published view (so the gateway's handle keeps working). A host that stops
//! `restart_limit` times within `restart_window` is not started again: its domain is
//! marked failed in `/readyz` and `GET /v1/domains`, and the rest of the node goes on.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix::prelude::*;
use dashmap::DashMap;
use herald_runtime::nats::BusStatus;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, warn};

use crate::admission::Admission;
use crate::host::{Checkpoint, DomainHost, DomainView, Drain, HostArgs, HostStopped, Retire};
use crate::registry::HostHandle;

/// Makes the arguments of a new host for one domain, given the view to publish to.
pub type HostFactory = Box<dyn Fn(Option<DomainView>) -> HostArgs + Send>;

/// When to stop restarting a domain.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    /// Restarts allowed within `window`.
    pub limit: u32,
    /// The window.
    pub window: Duration,
}

/// The longest a fenced host waits before it is started again.
const FENCED_MAX_DELAY: Duration = Duration::from_secs(8);

/// How long after NATS comes back a host's stop is still blamed on the outage.
const OUTAGE_GRACE: Duration = Duration::from_secs(30);

/// Networked mode: whether NATS is reachable, and when it last came back. A host that
/// stops because NATS is away is started again once it is back, and the stop does not
/// count toward `restart_limit`: an outage is not a fault of the domain.
#[derive(Clone)]
pub struct Outages {
    status: watch::Receiver<BusStatus>,
    back_at: Arc<Mutex<Option<Instant>>>,
}

impl Outages {
    /// Watches `status` (call inside the actix system).
    pub fn new(status: watch::Receiver<BusStatus>) -> Self {
        let back_at = Arc::new(Mutex::new(None));
        let mut watching = status.clone();
        let noted = Arc::clone(&back_at);
        actix_rt::spawn(async move {
            let mut was_up = *watching.borrow() == BusStatus::Up;
            while watching.changed().await.is_ok() {
                let up = *watching.borrow() == BusStatus::Up;
                if up && !was_up {
                    *noted.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
                }
                was_up = up;
            }
        });
        Self { status, back_at }
    }

    fn up(&self) -> bool {
        *self.status.borrow() == BusStatus::Up
    }

    /// Whether a stop now is to be blamed on NATS: it is away, or came back only lately.
    fn excuses(&self) -> bool {
        !self.up()
            || self
                .back_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some_and(|at| at.elapsed() < OUTAGE_GRACE)
    }
}

/// Starts and stops hosts while the supervisor runs: networked mode does as the node wins
/// and loses partitions.
#[derive(Clone)]
pub struct Hosting {
    commands: mpsc::UnboundedSender<Command>,
}

enum Command {
    Start(&'static str, HostFactory, oneshot::Sender<()>),
    Stop {
        name: &'static str,
        hand_off: bool,
        done: oneshot::Sender<()>,
    },
}

impl Hosting {
    /// Starts a host for `name` on a thread of its own; returns once the gateway can
    /// reach it (it may still be recovering).
    pub async fn start(&self, name: &'static str, factory: HostFactory) {
        let (done, started) = oneshot::channel();
        if self
            .commands
            .send(Command::Start(name, factory, done))
            .is_ok()
        {
            let _ = started.await;
        }
    }

    /// Stops `name`'s host for good (it is not started again). With `hand_off`, it first
    /// handles what is waiting and writes a snapshot, so its next owner replays little.
    pub async fn stop(&self, name: &'static str, hand_off: bool) {
        let (done, stopped) = oneshot::channel();
        let stop = Command::Stop {
            name,
            hand_off,
            done,
        };
        if self.commands.send(stop).is_ok() {
            let _ = stopped.await;
        }
    }
}

/// The hosts of a node, and how to start each again.
pub struct Supervisor {
    outages: Option<Outages>,
    hosts: Arc<DashMap<&'static str, HostHandle>>,
    domains: HashMap<&'static str, (ArbiterHandle, HostFactory)>,
    policy: RestartPolicy,
    restarts: HashMap<&'static str, VecDeque<Instant>>,
    /// Per stream, its recent stops for want of the right to write it (backoff only).
    fenced: HashMap<&'static str, VecDeque<Instant>>,
    stops: mpsc::UnboundedSender<HostStopped>,
    stopped: mpsc::UnboundedReceiver<HostStopped>,
    /// Restarts whose backoff is over.
    due: mpsc::UnboundedSender<(&'static str, u64)>,
    due_now: mpsc::UnboundedReceiver<(&'static str, u64)>,
    commands: mpsc::UnboundedSender<Command>,
    commanded: mpsc::UnboundedReceiver<Command>,
    /// Threads of hosts started by [`Hosting`], stopped with them.
    threads: HashMap<&'static str, Arbiter>,
}

impl Supervisor {
    /// A supervisor publishing hosts into `hosts`.
    pub fn new(
        hosts: Arc<DashMap<&'static str, HostHandle>>,
        policy: RestartPolicy,
        outages: Option<Outages>,
    ) -> Self {
        let (stops, stopped) = mpsc::unbounded_channel();
        let (due, due_now) = mpsc::unbounded_channel();
        let (commands, commanded) = mpsc::unbounded_channel();
        Self {
            commands,
            commanded,
            threads: HashMap::new(),
            outages,
            hosts,
            domains: HashMap::new(),
            policy,
            restarts: HashMap::new(),
            fenced: HashMap::new(),
            stops,
            stopped,
            due,
            due_now,
        }
    }

    /// A handle that starts and stops hosts while [`Supervisor::run`] runs.
    pub fn hosting(&self) -> Hosting {
        Hosting {
            commands: self.commands.clone(),
        }
    }

    /// Starts the host of domain `name` on `arbiter`.
    pub fn start(&mut self, name: &'static str, arbiter: ArbiterHandle, factory: HostFactory) {
        self.spawn(name, &arbiter, &factory, None);
        self.domains.insert(name, (arbiter, factory));
    }

    fn spawn(
        &self,
        name: &'static str,
        arbiter: &ArbiterHandle,
        factory: &HostFactory,
        view: Option<DomainView>,
    ) {
        static STARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let started = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut args = factory(view);
        args.on_stop = Some((self.stops.clone(), started));
        // A restarted host keeps its ingress slots: requests queued at the old one still
        // hold theirs until they are answered.
        let admission = match self.hosts.get(name) {
            Some(handle) => Arc::clone(&handle.admission),
            // As many ingress slots as mailbox places: a full host answers 429.
            None => Arc::new(Admission::new(args.mailbox_capacity)),
        };
        let bus = Arc::clone(&args.bus);
        let host = DomainHost::new(args);
        let view = host.view();
        let inputs = host.inputs();
        let addr = DomainHost::start_in_arbiter(arbiter, move |_| host);
        self.hosts.insert(
            name,
            HostHandle {
                addr,
                view,
                admission,
                bus,
                inputs,
                started,
            },
        );
    }

    /// Restarts hosts as they stop, until the future is dropped (at shutdown).
    pub async fn run(mut self) {
        loop {
            tokio::select! {
                Some(stop) = self.stopped.recv() => self.stopped_host(stop),
                Some(command) = self.commanded.recv() => self.command(command),
                Some((name, stopped)) = self.due_now.recv() => {
                    // Only the host that stopped is replaced: if the stream was stopped and
                    // started again meanwhile, its new host runs and this restart is void.
                    let view = self
                        .hosts
                        .get(name)
                        .filter(|handle| handle.started == stopped)
                        .map(|handle| handle.view.clone());
                    if let (Some((arbiter, factory)), Some(view)) = (self.domains.get(name), view) {
                        self.spawn(name, arbiter, factory, Some(view));
                    }
                }
                else => return,
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Start(name, factory, done) => {
                let arbiter = Arbiter::new();
                self.spawn(name, &arbiter.handle(), &factory, None);
                self.domains.insert(name, (arbiter.handle(), factory));
                if let Some(old) = self.threads.insert(name, arbiter) {
                    old.stop();
                }
                let _ = done.send(());
            }
            Command::Stop {
                name,
                hand_off,
                done,
            } => {
                // Not started again from here on, whatever way it stops.
                self.domains.remove(name);
                self.restarts.remove(name);
                self.fenced.remove(name);
                let thread = self.threads.remove(name);
                let Some((_, host)) = self.hosts.remove(name) else {
                    let _ = done.send(());
                    return;
                };
                tokio::spawn(async move {
                    if hand_off {
                        let _ = host.addr.send(Drain).await;
                        let _ = host.addr.send(Checkpoint).await;
                    }
                    let _ = host.addr.send(Retire).await;
                    for _ in 0..500 {
                        if !host.addr.connected() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    if let Some(thread) = thread {
                        thread.stop();
                    }
                    let _ = done.send(());
                });
            }
        }
    }

    fn stopped_host(&mut self, stop: HostStopped) {
        let HostStopped {
            stream: name,
            started,
            fenced,
        } = stop;
        // A host stopped for good, or one already replaced (its signal came late).
        let Some(view) = self
            .hosts
            .get(name)
            .filter(|handle| handle.started == started)
            .map(|handle| handle.view.clone())
        else {
            return;
        };
        if !self.domains.contains_key(name) {
            return;
        }
        if let Some(outages) = self.outages.clone().filter(Outages::excuses) {
            warn!(
                domain = name,
                "domain host stopped while NATS was away; starting it again once NATS is back (not counted toward restart_limit)"
            );
            let due = self.due.clone();
            tokio::spawn(async move {
                let mut status = outages.status.clone();
                let _ = status.wait_for(|status| *status == BusStatus::Up).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                let _ = due.send((name, started));
            });
            return;
        }
        if fenced {
            // The lease ran out (NATS slow to answer a renewal, a JetStream leader
            // elected) or another node writes the stream: an ownership event, not a fault
            // of the domain, so not counted toward restart_limit (six such stops during a
            // NATS server's restart failed a healthy domain for good: nats_cluster.rs).
            // Started again with a backoff; the ownership loop stops it for good once it
            // sees this node no longer holds the lease.
            let history = self.fenced.entry(name).or_default();
            prune(history, self.policy.window);
            history.push_back(Instant::now());
            let attempt = history.len() as u32;
            let delay =
                (Duration::from_millis(500) * 2u32.pow(attempt.min(5) - 1)).min(FENCED_MAX_DELAY);
            warn!(
                domain = name,
                fenced = attempt,
                ?delay,
                "domain host stopped: this node may no longer write its stream; starting it again after a delay, unless the ownership loop gives the stream up first (not counted toward restart_limit)"
            );
            self.restart_after(name, started, delay);
            return;
        }
        let window = self.policy.window;
        let history = self.restarts.entry(name).or_default();
        prune(history, window);
        if history.len() >= self.policy.limit as usize {
            let reason = format!(
                "its host stopped {} times within {window:?} ([domains] restart_limit, restart_window); see the errors above, fix the cause and restart the node",
                history.len() + 1
            );
            error!(domain = name, %reason, "domain failed; not restarting it");
            view.set_failure(Some(reason));
            return;
        }
        history.push_back(Instant::now());
        let attempt = history.len() as u32;
        // Back off a little, so a fault that needs a moment to clear gets one.
        let delay = Duration::from_millis(100) * 2u32.pow(attempt.min(6) - 1);
        warn!(
            domain = name,
            restart = attempt,
            ?delay,
            "domain host stopped (see the error above); starting it again with its state rebuilt from snapshot and log"
        );
        self.restart_after(name, started, delay);
    }

    /// Starts `name` again after `delay`, if the host that stopped (start `started`) is
    /// still the one to replace then. Each restart waits on its own, so one domain's
    /// backoff delays no other's.
    fn restart_after(&self, name: &'static str, started: u64, delay: Duration) {
        let due = self.due.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = due.send((name, started));
        });
    }
}

/// Drops the stops older than `window` from `history`, oldest first.
fn prune(history: &mut VecDeque<Instant>, window: Duration) {
    let now = Instant::now();
    while history
        .front()
        .is_some_and(|at| now.duration_since(*at) > window)
    {
        history.pop_front();
    }
}

//! The world's clock and its servers: the event loop, what each event does to a server, a
//! server's boot from its store, and what a server asked for after each step (its disk, its
//! wake-ups, its links, its clients' replies), with the per-event checks.

use super::*;

impl World {
    pub(super) fn new(seed: u64, cfg: ClusterConfig) -> World {
        let nodes = (1..=(cfg.voters + cfg.observers) as Sid)
            .map(|sid| Node {
                sid,
                store: MemStore::new(),
                inc: 0,
                live: None,
                slow_disk_until: 0,
                skew: 0,
                epochs: (0, 0),
            })
            .collect();
        let clients = (0..cfg.clients).map(|i| Client::new(i, cfg.keys)).collect();
        let mut setup: VecDeque<Request> = ["/u", "/e", lock::LOCK]
            .iter()
            .map(|p| create(p, b"", 0))
            .collect();
        for k in 0..cfg.keys {
            setup.push_back(create(&history::key_path(k), INITIAL, 0));
        }
        World {
            rng: StdRng::seed_from_u64(seed ^ 0x5e55_1011),
            cfg,
            now: 0,
            base: Instant::now(),
            queue: BTreeMap::new(),
            seq: 0,
            nodes,
            links: BTreeMap::new(),
            next_link: 0,
            next_accept: 1 << 32,
            cut: BTreeSet::new(),
            clogged: BTreeMap::new(),
            clients,
            setup,
            ops: Vec::new(),
            expired: BTreeSet::new(),
            next_conn: 0,
            leaders: BTreeMap::new(),
            digests: BTreeMap::new(),
            chaos: false,
            healed_at: None,
            stopping: false,
            done: false,
            report: ClusterReport::default(),
            trace: VecDeque::new(),
            trace_len: std::env::var("WAZOO_SIM_TRACE")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(TRACE),
        }
    }

    pub(super) fn at(&mut self, t: u64, e: Event) {
        self.seq += 1;
        self.queue.insert((t.max(self.now), self.seq), e);
    }

    /// The time on server `sid`'s clocks (ahead of the simulation's by its skew).
    pub(super) fn now_at(&self, sid: Sid) -> Now {
        let t = self.now + self.nodes[Self::idx(sid)].skew;
        Now {
            at: self.base + Duration::from_millis(t),
            mono_ms: 1_000_000 + t as i64,
            wall_ms: 1_700_000_000_000 + t as i64,
        }
    }

    /// The simulation's time at which server `sid`'s clock reads `at`.
    pub(super) fn ms_of(&self, sid: Sid, at: Instant) -> u64 {
        let d = at.saturating_duration_since(self.base);
        let t = (d.as_micros() as u64).div_ceil(1000);
        t.saturating_sub(self.nodes[Self::idx(sid)].skew)
    }

    pub(super) fn idx(sid: Sid) -> usize {
        sid as usize - 1
    }

    pub(super) fn net_delay(&mut self) -> u64 {
        self.rng.random_range(1..=4)
    }

    pub(super) fn run(&mut self) -> Step {
        for i in 0..self.nodes.len() {
            self.boot(i)?;
        }
        for c in 0..self.clients.len() {
            let t = self.rng.random_range(0..50);
            self.wake(c, t);
        }
        // The setup must finish within this, then the chaos runs, then the convergence.
        let limit = 20_000 + self.cfg.chaos_ms + self.cfg.converge_ms;
        while !self.done {
            let Some(((t, _), e)) = self.queue.pop_first() else {
                return Err("nothing left to happen".into());
            };
            self.now = t;
            if t > limit {
                return Err(format!("the run did not finish by {limit} ms"));
            }
            if let Some(h) = self.healed_at {
                if t > h + self.cfg.converge_ms {
                    return Err(format!(
                        "no convergence within {} ms of healing: {}",
                        self.cfg.converge_ms,
                        self.roles()
                    ));
                }
            }
            self.report.events += 1;
            if self.superseded(&e) {
                continue;
            }
            self.note(e.describe());
            self.event(e)?;
            if self.healed_at.is_some() {
                self.check_convergence()?;
            }
        }
        Ok(())
    }

    /// A wake-up or client step a later one replaced (or of a server since restarted): nothing
    /// happens, and the trace skips it.
    pub(super) fn superseded(&self, e: &Event) -> bool {
        match *e {
            Event::Wake {
                sid,
                inc,
                which,
                gen,
            } => {
                let n = &self.nodes[Self::idx(sid)];
                n.inc != inc
                    || n.live
                        .as_ref()
                        .is_none_or(|l| l.alarms[which].get().1 != gen)
            }
            Event::ClientStep { client, gen } => self.clients[client].step.1 != gen,
            _ => false,
        }
    }

    pub(super) fn note(&mut self, what: String) {
        if self.trace.len() >= self.trace_len {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("{:>6} ms  {what}", self.now));
    }

    pub(super) fn roles(&self) -> String {
        self.nodes
            .iter()
            .map(|n| match &n.live {
                None => format!("{}: down", n.sid),
                Some(l) => format!(
                    "{}: {:?} at {:#x}",
                    n.sid,
                    l.core.serving(),
                    l.core.tree().last_applied()
                ),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(super) fn event(&mut self, e: Event) -> Step {
        match e {
            Event::Notify { to, n } => self.with_core(to, |c, now| {
                c.handle(now, CoreMsg::Link(LinkEvent::Notification(n)))
            }),
            Event::LinkUp { link } => self.link_up(link),
            Event::DialFailed {
                sid,
                inc,
                leader,
                conn,
            } => self.link_event(sid, inc, LinkEvent::QuorumDown { sid: leader, conn }),
            Event::Bytes { link, side, bytes } => self.bytes(link, side, bytes),
            Event::Down {
                sid,
                inc,
                peer,
                conn,
            } => self.link_event(sid, inc, LinkEvent::QuorumDown { sid: peer, conn }),
            Event::Post { sid, inc, event } => self.link_event(sid, inc, event),
            Event::Worker { sid, inc, msg } => {
                if !self.is_live(sid, inc) {
                    return Ok(());
                }
                self.with_core(sid, |c, now| c.handle(now, msg))
            }
            Event::Disk { sid, inc } => self.disk(sid, inc),
            Event::DiskDone { sid, inc, report } => {
                if !self.is_live(sid, inc) {
                    return Ok(());
                }
                if let Some(l) = self.nodes[Self::idx(sid)].live.as_mut() {
                    l.disk_busy = false;
                    l.in_flight_entries = 0;
                }
                self.with_core(sid, |c, now| c.handle(now, CoreMsg::Durable(report)))
            }
            Event::Wake { sid, which, .. } => {
                // Not superseded (checked by `run`): the alarm's latest instant has come.
                let msg = if which == 0 {
                    CoreMsg::PeerWake
                } else {
                    CoreMsg::PaceLarge
                };
                self.with_core(sid, |c, now| c.handle(now, msg))
            }
            Event::Tick { sid, inc } => {
                if !self.is_live(sid, inc) {
                    return Ok(());
                }
                let half = (self.cfg.tick_ms as u64 / 2).max(1);
                self.at(self.now + half, Event::Tick { sid, inc });
                let at_ms = self.now_at(sid).mono_ms;
                self.with_core(sid, |c, now| c.handle(now, CoreMsg::Tick { at_ms }))
            }
            Event::ClientSend {
                sid,
                inc,
                sink,
                msg,
            } => {
                if !self.is_live(sid, inc) {
                    sink.reset();
                    return Ok(());
                }
                let mono = self.now_at(sid).mono_ms;
                sink.received_at(mono);
                self.with_core(sid, |c, now| c.handle(now, msg))
            }
            Event::ClientStep { client, .. } => {
                // Not superseded (checked by `run`).
                self.clients[client].step.0 = None;
                self.client_step(client)
            }
            Event::Fault => self.fault(),
            Event::Heal => {
                self.heal();
                Ok(())
            }
            Event::Restart { sid } => {
                if self.nodes[Self::idx(sid)].live.is_none() {
                    self.boot(Self::idx(sid))?;
                }
                Ok(())
            }
            Event::EndChaos => {
                self.chaos = false;
                self.heal();
                self.clogged.clear();
                for i in 0..self.nodes.len() {
                    if self.nodes[i].live.is_none() {
                        self.boot(i)?;
                    }
                    self.nodes[i].slow_disk_until = 0;
                }
                self.healed_at = Some(self.now);
                Ok(())
            }
        }
    }

    pub(super) fn is_live(&self, sid: Sid, inc: u64) -> bool {
        let n = &self.nodes[Self::idx(sid)];
        n.inc == inc && n.live.is_some()
    }

    /// Boots server `i` from its store, as the server does at startup.
    pub(super) fn boot(&mut self, i: usize) -> Step {
        let sid = self.nodes[i].sid;
        let store = self.nodes[i].store.clone();
        store.set_inline_walks(true);
        let fail = |e: &dyn std::fmt::Display| format!("server {sid} cannot restart: {e}");
        let mut tree = load_tree(&store).map_err(|e| fail(&e))?;
        let persisted = wazoo_store::Store::last_applied(&store).map_err(|e| fail(&e))?;
        let (last_logged, _) = replay_log(&store, &mut tree).map_err(|e| fail(&e))?;
        let tick = self.cfg.tick_ms as u64;
        let voters: Vec<Sid> = (1..=self.cfg.voters as Sid).collect();
        let observers = (1..=self.cfg.observers as Sid).map(|o| self.cfg.voters as Sid + o);
        let mut pc = PeerConfig::new(sid, voters.iter().copied(), observers);
        pc.tick_ms = tick;
        pc.init_limit_ms = tick * self.cfg.init_limit as u64;
        pc.sync_limit_ms = tick * self.cfg.sync_limit as u64;
        let (peer, window) = member_state(&store, pc).map_err(|e| fail(&e))?;
        let epochs = (
            wazoo_store::Store::get_meta_u64(&store, wazoo_store::MetaKey::AcceptedEpoch),
            wazoo_store::Store::get_meta_u64(&store, wazoo_store::MetaKey::CurrentEpoch),
        );
        self.note(format!(
            "{sid} boots: log to {last_logged:#x}, tree at {:#x}, epochs (accepted, current) {epochs:?}",
            tree.last_applied()
        ));
        let storage = MemStorage::new(store);
        let outbox: Outbox = Arc::default();
        let alarms = [SimAlarm::default(), SimAlarm::default()];
        let mut seed = [0u8; 32];
        self.rng.fill(&mut seed);
        let now = self.now_at(sid);
        let mut core = Core::new(
            Arc::new(self.core_config(sid)),
            Recovered {
                tree,
                first_batch: Batch::default(),
                next_zxid: last_logged + 1,
                persisted,
            },
            Wiring {
                storage: Box::new(storage.clone()),
                pace_alarm: Box::new(alarms[1].clone()),
                metrics: Arc::new(Metrics::new()),
                gauges: Arc::new(Gauges::new()),
                started: now.at,
            },
            now,
            seed,
        );
        let links = Links::new(
            sid,
            voters,
            Box::new(SimTransport {
                outbox: outbox.clone(),
            }),
        );
        let replica = Replica::new(
            peer,
            links,
            window,
            self.cfg.diff_window_bytes,
            Box::new(alarms[0].clone()),
        );
        core.attach_replica(replica);
        let workers: recipes::WorkerOutbox = Arc::default();
        core.attach_recipes(Box::new(recipes::SimRecipes {
            outbox: workers.clone(),
        }));
        let node = &mut self.nodes[i];
        node.inc += 1;
        node.epochs = (0, 0);
        let inc = node.inc;
        node.live = Some(Live {
            core,
            storage,
            outbox,
            workers,
            alarms,
            armed: [0, 0],
            disk_busy: false,
            in_flight_entries: 0,
            serving: None,
        });
        self.at(self.now + 1, Event::Tick { sid, inc });
        self.with_core(sid, |c, now| c.start(now))
    }

    pub(super) fn core_config(&self, sid: Sid) -> CoreConfig {
        let tick = self.cfg.tick_ms;
        CoreConfig {
            tick_time_ms: tick,
            server_id: sid as u8,
            min_session_timeout_ms: 2 * tick,
            max_session_timeout_ms: 20 * tick,
            max_outstanding_per_connection: 64,
            large_request_threshold: 16 << 10,
            max_connection_output_bytes: 1 << 20,
            large_write_bytes_per_second: 0,
            jute_max_buffer: wazoo_proto::frame::DEFAULT_MAX_BUFFER,
            extended_types_enabled: false,
            reconfig_enabled: false,
            super_digest: None,
            container_max_never_used_ms: 0,
            log_retain_txns: 200,
            // An image of a few hundred records spans several frames (records span chunks, and
            // a fault can cut between them). Not smaller: the simulated link charges each frame
            // its latency in turn, and with 256-byte chunks a SNAP over a clogged link kept
            // seed 2521 from converging for 21.5 s (2.3 s with 1 MiB chunks).
            snap_chunk_bytes: 4096,
        }
    }

    /// Runs `f` on server `sid`'s core (if it is up), flushes, and carries out what it asked.
    pub(super) fn with_core(
        &mut self,
        sid: Sid,
        f: impl FnOnce(&mut Core, Now) -> Result<(), wazoo_core::CoreError>,
    ) -> Step {
        let now = self.now_at(sid);
        let Some(live) = self.nodes[Self::idx(sid)].live.as_mut() else {
            return Ok(());
        };
        f(&mut live.core, now).map_err(|e| format!("server {sid} stopped: {e}"))?;
        live.core.flush(true);
        self.after_step(sid)
    }

    pub(super) fn after_step(&mut self, sid: Sid) -> Step {
        let i = Self::idx(sid);
        let inc = self.nodes[i].inc;
        let slow = self.nodes[i].slow_disk_until > self.now;
        let Some(live) = self.nodes[i].live.as_mut() else {
            return Ok(());
        };
        // Recipe workers' messages reach the core a little later, in order.
        let from_workers =
            std::mem::take(&mut *live.workers.lock().unwrap_or_else(|e| e.into_inner()));
        let mut t = self.now;
        for msg in from_workers {
            t += self.rng.random_range(1..3);
            self.at(t, Event::Worker { sid, inc, msg });
        }
        let Some(live) = self.nodes[i].live.as_mut() else {
            return Ok(());
        };
        let serving = live.core.serving();
        if serving != live.serving {
            live.serving = serving;
            let z = live.core.tree().last_applied();
            self.note(format!("{sid} is now {serving:?}, applied {z:#x}"));
        } else if self.trace_len > TRACE {
            // Debugging a seed: every applied zxid too.
            let z = live.core.tree().last_applied();
            let store = live.storage.store();
            let persisted = wazoo_store::Store::last_applied(&store).unwrap_or(-1);
            let logged = wazoo_store::Store::last_logged_zxid(&store).unwrap_or(-1);
            self.note(format!(
                "{sid} applied {z:#x}, persisted {persisted:#x}, logged {logged:#x}"
            ));
        }
        let Some(live) = self.nodes[i].live.as_mut() else {
            return Ok(());
        };
        // At most one leader per epoch.
        if let Some(Serving::Leading { epoch }) = live.core.serving() {
            match self.leaders.get(&epoch) {
                Some(&other) if other != sid => {
                    return Err(format!("{sid} and {other} both lead epoch {epoch}"));
                }
                Some(_) => {}
                None => {
                    self.leaders.insert(epoch, sid);
                    self.report.leaders_established += 1;
                }
            }
        }
        // The epochs on disk: current never past accepted, neither going back while it runs;
        // and a serving server's tree holds nothing its store does not (D10).
        let store = live.storage.store();
        let meta = |k| {
            wazoo_store::Store::get_meta_u64(&store, k)
                .ok()
                .flatten()
                .unwrap_or(0)
        };
        let epochs = (
            meta(wazoo_store::MetaKey::AcceptedEpoch),
            meta(wazoo_store::MetaKey::CurrentEpoch),
        );
        if epochs.1 > epochs.0 {
            return Err(format!(
                "{sid}'s currentEpoch {} is past its acceptedEpoch {}",
                epochs.1, epochs.0
            ));
        }
        let was = self.nodes[i].epochs;
        if epochs.0 < was.0 || epochs.1 < was.1 {
            return Err(format!(
                "{sid}'s epochs went back from {was:?} to {epochs:?}"
            ));
        }
        self.nodes[i].epochs = epochs;
        let Some(live) = self.nodes[i].live.as_mut() else {
            return Ok(());
        };
        let logged = wazoo_store::Store::last_logged_zxid(&store)
            .unwrap_or(0)
            .max(wazoo_store::Store::last_applied(&store).unwrap_or(0));
        // (While it synchronises a learner applies the committed txns of the stream before its
        // log holds them: ZAB's D10 is for a serving server.)
        let serving_now = !matches!(live.core.serving(), Some(Serving::Looking));
        if serving_now && live.core.tree().last_applied() > logged {
            return Err(format!(
                "{sid} applied {:#x}, past what its store holds ({logged:#x})",
                live.core.tree().last_applied()
            ));
        }
        // Equal trees at equal applied zxids.
        let (z, d) = (live.core.tree().last_applied(), live.core.tree().digest());
        match self.digests.get(&z) {
            Some(&other) if other != d => {
                return Err(format!(
                    "server {sid}'s tree at zxid {z:#x} has digest {d:#x}, another server's had \
                     {other:#x}"
                ));
            }
            Some(_) => {}
            None => {
                self.digests.insert(z, d);
            }
        }
        let disk = !live.disk_busy && live.storage.has_work();
        if disk {
            live.disk_busy = true;
        }
        let mut wakes = Vec::new();
        for which in 0..2 {
            let (at, gen) = live.alarms[which].get();
            if gen != live.armed[which] {
                live.armed[which] = gen;
                if let Some(at) = at {
                    wakes.push((at, which, gen));
                }
            }
        }
        let actions = net::drain(&live.outbox);
        if disk {
            let d = if slow {
                self.rng.random_range(50..300)
            } else {
                self.rng.random_range(0..3)
            };
            self.at(self.now + d, Event::Disk { sid, inc });
        }
        for (at, which, gen) in wakes {
            let t = self.ms_of(sid, at);
            self.at(
                t,
                Event::Wake {
                    sid,
                    inc,
                    which,
                    gen,
                },
            );
        }
        for a in actions {
            if let NetAction::Frame { side: 0, bytes, .. } = &a {
                self.check_ack(sid, bytes)?;
            }
            self.net(sid, inc, a);
        }
        for c in 0..self.clients.len() {
            if self.clients[c]
                .conn
                .as_ref()
                .is_some_and(|k| k.sid == sid && k.inc == inc)
            {
                self.client_read(c)?;
            }
        }
        Ok(())
    }
}

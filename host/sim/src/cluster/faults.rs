//! Faults (crashes, partitions, link resets, slow disks) and the end of a run: healing, the
//! convergence it must reach, and the history check over the converged tree.

use super::*;

impl World {
    pub(super) fn fault(&mut self) -> Step {
        if !self.chaos {
            return Ok(());
        }
        let next = self.now + self.rng.random_range(1..=2 * self.cfg.fault_every_ms);
        self.at(next, Event::Fault);
        let n = self.nodes.len();
        let live: Vec<usize> = (0..n).filter(|&i| self.nodes[i].live.is_some()).collect();
        let leader = (0..n).find(|&i| {
            matches!(
                self.nodes[i].live.as_ref().and_then(|l| l.core.serving()),
                Some(Serving::Leading { .. })
            )
        });
        let kind = self.rng.random_range(0..10);
        let name = match kind {
            0 | 1 => {
                let target = if kind == 1 {
                    leader
                } else if live.is_empty() {
                    None
                } else {
                    Some(live[self.rng.random_range(0..live.len())])
                };
                let Some(i) = target else { return Ok(()) };
                self.crash(i);
                let back = self.now + self.rng.random_range(100..2_000);
                self.at(back, Event::Restart { sid: i as Sid + 1 });
                if kind == 1 {
                    "crash the leader"
                } else {
                    "crash and restart"
                }
            }
            2 => {
                let sid = self.rng.random_range(1..=n as Sid);
                for other in 1..=n as Sid {
                    if other != sid {
                        self.cut.insert((sid, other));
                        self.cut.insert((other, sid));
                    }
                }
                self.partitioned();
                "isolate one"
            }
            3 => {
                let mut side = vec![false; n];
                for s in side.iter_mut() {
                    *s = self.rng.random_bool(0.5);
                }
                for a in 0..n {
                    for b in 0..n {
                        if side[a] != side[b] {
                            self.cut.insert((a as Sid + 1, b as Sid + 1));
                        }
                    }
                }
                self.partitioned();
                "split"
            }
            4 => {
                let sid = self.rng.random_range(1..=n as Sid);
                self.close_links_of(sid);
                "link reset"
            }
            5 => {
                let i = self.rng.random_range(0..n);
                self.nodes[i].slow_disk_until = self.now + self.rng.random_range(200..1_500);
                "slow disk"
            }
            6 => {
                // One server's messages are lost one way (it hears the others; they do not
                // hear it), its leader's likeliest.
                let sid =
                    leader.map_or_else(|| self.rng.random_range(1..=n as Sid), |l| l as Sid + 1);
                for other in 1..=n as Sid {
                    if other != sid {
                        self.cut.insert((sid, other));
                    }
                }
                self.partitioned();
                "asymmetric"
            }
            7 => {
                let a = self.rng.random_range(1..=n as Sid);
                let b = self.rng.random_range(1..=n as Sid);
                let until = self.now + self.rng.random_range(300..2_000);
                self.clogged.insert((a, b), until);
                self.clogged.insert((b, a), until);
                "clog"
            }
            8 => {
                let i = self.rng.random_range(0..n);
                self.nodes[i].skew += self.rng.random_range(100..2_000);
                "clock jump"
            }
            _ => {
                // A majority of the voters at once (a power cut): what none of them had synced
                // is gone.
                let voters = self.cfg.voters;
                let mut order: Vec<usize> = (0..voters).collect();
                for k in (1..order.len()).rev() {
                    order.swap(k, self.rng.random_range(0..=k));
                }
                if self.rng.random_bool(0.5) {
                    // Half the time it strikes the voters whose fsync is in flight first, then
                    // the leader: the writes a quorum may already count on are the ones at stake.
                    let rank = |i: &usize| {
                        let busy = self.nodes[*i]
                            .live
                            .as_ref()
                            .is_some_and(|l| l.in_flight_entries > 0);
                        (!busy, Some(*i) != leader)
                    };
                    order.sort_by_key(rank);
                }
                for &i in &order[..voters / 2 + 1] {
                    self.crash(i);
                    let back = self.now + self.rng.random_range(100..2_000);
                    self.at(back, Event::Restart { sid: i as Sid + 1 });
                }
                "crash a majority"
            }
        };
        *self.report.faults.entry(name).or_default() += 1;
        self.note(format!("fault: {name}"));
        Ok(())
    }

    /// A learner just took in a chunk of a SNAP that is not its last: during the chaos, a
    /// quarter of the time the SNAP is cut off there on purpose (its link resets, the learner
    /// crashes, or the leader does), so the learner's abandoned install and its reload of the
    /// tree it still holds in its store run in every sweep, not only when a random fault
    /// happens to fall inside an image.
    pub(super) fn maybe_cut_snap(&mut self, link: u64, side: usize) {
        if !self.chaos || !self.rng.random_bool(0.25) {
            return;
        }
        let Some(q) = self.links.get(&link).filter(|q| q.open) else {
            return;
        };
        let (learner, leader) = (q.sids[side], q.sids[1 - side]);
        let name = match self.rng.random_range(0..3) {
            0 => {
                self.close_link(link);
                "cut a SNAP: link reset"
            }
            k => {
                let sid = if k == 1 { learner } else { leader };
                self.crash(Self::idx(sid));
                let back = self.now + self.rng.random_range(100..2_000);
                self.at(back, Event::Restart { sid });
                if k == 1 {
                    "cut a SNAP: the learner crashes"
                } else {
                    "cut a SNAP: the leader crashes"
                }
            }
        };
        self.report.snaps_cut += 1;
        *self.report.faults.entry(name).or_default() += 1;
        self.note(format!("fault: {name} ({learner} from {leader})"));
    }

    /// Every open quorum link of server `sid` closes.
    pub(super) fn close_links_of(&mut self, sid: Sid) {
        let links: Vec<u64> = self
            .links
            .iter()
            .filter(|(_, q)| q.open && q.sids.contains(&sid))
            .map(|(&l, _)| l)
            .collect();
        for l in links {
            self.close_link(l);
        }
    }

    /// A partition was just cut: a third of the time the links across it reset at once (the
    /// others stall, holding what is sent, until the peers' timeouts drop them or it heals);
    /// it heals within 2.5 s.
    fn partitioned(&mut self) {
        if self.rng.random_bool(0.33) {
            self.break_cut_links();
        }
        let heal = self.now + self.rng.random_range(200..2_500);
        self.at(heal, Event::Heal);
    }

    pub(super) fn break_cut_links(&mut self) {
        let links: Vec<u64> = self
            .links
            .iter()
            .filter(|(_, q)| q.open && !self.connected(q.sids[0], q.sids[1]))
            .map(|(&l, _)| l)
            .collect();
        for l in links {
            self.close_link(l);
        }
    }

    /// Server `i` crashes: what its store had not synced is lost, and a commit whose fsync had
    /// not returned may leave a torn final record.
    pub(super) fn crash(&mut self, i: usize) {
        let sid = self.nodes[i].sid;
        let Some(live) = self.nodes[i].live.take() else {
            return;
        };
        let torn = live.in_flight_entries > 0 && self.rng.random_bool(0.5);
        drop(live);
        self.note(format!(
            "{sid} crashes{}",
            if torn { " (its last record torn)" } else { "" }
        ));
        let node = &mut self.nodes[i];
        node.store = if torn {
            node.store.crash_with_torn_tail()
        } else {
            node.store.crash()
        };
        self.close_links_of(sid);
        for c in 0..self.clients.len() {
            if let Some(k) = self.clients[c].conn.as_ref().filter(|k| k.sid == sid) {
                k.sink.reset();
                self.wake(c, self.now + 1);
            }
        }
    }

    // ---- convergence ----

    pub(super) fn check_convergence(&mut self) -> Step {
        let leader = self
            .nodes
            .iter()
            .find_map(|n| match n.live.as_ref()?.core.serving() {
                Some(Serving::Leading { epoch }) => Some((n.sid, epoch)),
                _ => None,
            });
        let Some((leader, epoch)) = leader else {
            return Ok(());
        };
        let all_follow = self.nodes.iter().all(|n| match n.live.as_ref() {
            None => false,
            Some(l) => match l.core.serving() {
                Some(Serving::Leading { epoch: e }) => n.sid == leader && e == epoch,
                Some(Serving::Following {
                    leader: l2,
                    epoch: e,
                }) => l2 == leader && e == epoch,
                Some(Serving::Observing {
                    leader: l2,
                    epoch: e,
                }) => l2 == leader && e == epoch,
                _ => false,
            },
        });
        if !all_follow {
            return Ok(());
        }
        let healed = self.healed_at.expect("after healing");
        if !self.stopping {
            let written = self.ops.iter().any(|o| {
                matches!(
                    o.kind,
                    Kind::Set { .. } | Kind::Multi { .. } | Kind::Create { .. }
                ) && matches!(o.outcome, Outcome::Ok { .. } | Outcome::MultiOk(_))
                    && o.invoked >= healed
            });
            if written {
                self.stopping = true;
            }
            return Ok(());
        }
        let quiet = self
            .clients
            .iter()
            .all(|c| matches!(c.waiting, Waiting::Nothing))
            && self.nodes.iter().all(|n| {
                n.live
                    .as_ref()
                    .is_some_and(|l| !l.disk_busy && !l.storage.has_work())
            });
        if !quiet {
            return Ok(());
        }
        let states: BTreeSet<(i64, u64)> = self
            .nodes
            .iter()
            .filter_map(|n| {
                let t = n.live.as_ref()?.core.tree();
                Some((t.last_applied(), t.digest()))
            })
            .collect();
        if states.len() != 1 {
            return Ok(());
        }
        // A session a client was told had expired may outlive that answer: a leader that expired
        // it and lost its quorum before the close committed (ZooKeeper's leader answers the same
        // from its closing mark). Its successor expires it in turn, nobody using it: wait for it.
        let tree = self.nodes[Self::idx(leader)]
            .live
            .as_ref()
            .expect("the leader is up")
            .core
            .tree();
        if self.expired.iter().any(|s| tree.session(*s).is_some()) {
            return Ok(());
        }
        self.report.converge_ms = self.now - healed;
        let last = self.nodes[Self::idx(leader)]
            .live
            .as_ref()
            .expect("the leader is up")
            .core
            .tree();
        history::check(&self.ops, self.cfg.keys, &self.expired, last)?;
        let locks = lock::check(&self.ops)?;
        self.report.locks_granted = locks.granted;
        self.report.locks_granted_after_wait = locks.granted_after_wait;
        self.report.lock_timeouts = locks.timed_out;
        for o in &self.ops {
            match o.outcome {
                Outcome::Ok { .. } | Outcome::MultiOk(_) => self.report.ops_ok += 1,
                Outcome::Err(_) => self.report.ops_failed += 1,
                Outcome::Unknown | Outcome::Pending => self.report.ops_unknown += 1,
            }
            match (&o.kind, &o.outcome) {
                (Kind::Multi { .. }, Outcome::MultiOk(_)) => self.report.multis_ok += 1,
                (Kind::Multi { .. }, Outcome::Err(_)) => self.report.multis_failed += 1,
                (Kind::Add { .. }, Outcome::Ok { .. }) => self.report.adds_ok += 1,
                _ => {}
            }
            if matches!(o.kind, Kind::Read { synced: true, .. })
                && matches!(o.outcome, Outcome::Ok { .. })
            {
                self.report.synced_reads += 1;
            }
        }
        self.report.sessions_expired = self.expired.len() as u64;
        self.done = true;
        Ok(())
    }
}

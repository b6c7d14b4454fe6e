//! Dropping what ended queries left: releases from the coordinator, and
//! everything once the coordinator is gone for good.

use std::collections::BTreeSet;
use std::time::Duration;

use ffq_transport::zenoh_exchange::keys::coordinator_token_key;
use ffq_transport::zenoh_exchange::{AttemptRef, QueryId};

use super::Shared;
use crate::protocol::{Release, Released};

impl Shared {
    pub(super) fn release(&self, release: &Release) -> Released {
        // Ended queries first: no attempt of theirs may start or write
        // once the release is under way.
        for q in self.ended_queries(release) {
            self.store.mark_released(&q);
        }
        let matches = |a: &AttemptRef| match release {
            Release::Query(q) => &a.query == q,
            Release::Attempt(x) => a == x,
            Release::Stage(q, stage) => &a.query == q && a.stage == *stage,
            Release::AllExcept(keep) => !keep.contains(&a.query),
        };
        let mut tasks = 0;
        if let Ok(mut running) = self.running.lock() {
            running.retain(|a, h| {
                if matches(a) {
                    h.abort();
                    tasks += 1;
                    false
                } else {
                    true
                }
            });
        }
        let before = self.store.stats();
        let streams = match release {
            Release::Query(q) => self.store.release(q),
            Release::Attempt(a) => self.store.release_attempt(a),
            Release::Stage(q, stage) => self.store.release_stage(q, *stage),
            Release::AllExcept(keep) => {
                let mut n = 0;
                for q in self
                    .store
                    .stream_ids()
                    .into_iter()
                    .map(|s| s.query)
                    .collect::<BTreeSet<_>>()
                {
                    if !keep.contains(&q) {
                        n += self.store.release(&q);
                    }
                }
                n
            }
        };
        let after = self.store.stats();
        if let Ok(mut tables) = self.tables.lock() {
            match release {
                Release::Query(q) => {
                    tables.remove(q);
                }
                Release::AllExcept(keep) => tables.retain(|q, _| keep.contains(q)),
                Release::Attempt(_) | Release::Stage(..) => {}
            }
        }
        let released = Released {
            tasks,
            streams: streams as u64,
            frames: before.frames.saturating_sub(after.frames) as u64,
        };
        tracing::debug!(worker = %self.id, ?release, ?released, "released");
        released
    }
    /// Whether the coordinator's liveliness token answers right now.
    pub(super) async fn coordinator_alive(&self) -> bool {
        let key = coordinator_token_key(&self.cluster);
        match self
            .session
            .liveliness()
            .get(&key)
            .timeout(Duration::from_secs(1))
            .await
        {
            Ok(replies) => replies.recv_async().await.is_ok_and(|r| r.result().is_ok()),
            Err(_) => false,
        }
    }

    /// Nobody can release what the coordinator's queries left here any
    /// more: every task stops and every output and table goes. Nothing is
    /// marked released (a coordinator that comes back after all may
    /// assign the same queries again; it tells the worker what to drop).
    pub(super) fn drop_everything(&self) {
        let mut tasks = 0;
        if let Ok(mut running) = self.running.lock() {
            for (_, h) in running.drain() {
                h.abort();
                tasks += 1;
            }
        }
        let streams = self.store.release_all();
        if let Ok(mut tables) = self.tables.lock() {
            tables.clear();
        }
        tracing::warn!(worker = %self.id, tasks, streams,
            "coordinator gone; dropped every task, output and table");
    }

    /// The queries `release` ends on this worker: everything of them goes.
    pub(super) fn ended_queries(&self, release: &Release) -> Vec<QueryId> {
        match release {
            Release::Query(q) => vec![q.clone()],
            Release::Attempt(_) | Release::Stage(..) => vec![],
            Release::AllExcept(keep) => {
                let state = self.state();
                let mut held: BTreeSet<QueryId> = state.queries.into_iter().collect();
                held.retain(|q| !keep.contains(q));
                held.into_iter().collect()
            }
        }
    }
}

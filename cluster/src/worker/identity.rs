//! One live process per worker id. The coordinator knows a worker by its
//! id: a second process taking the id of a live one (even a paused one,
//! which stays alive for the coordinator until its lease runs out) would
//! answer in its place and hold none of its outputs. So a starting worker
//! asks the coordinator, before it declares anything, and is refused if
//! the coordinator counts a worker of that id alive. It asks through a
//! session of its own that connects to its configured endpoints only (it
//! connects to no peer gossip tells of): closing it never waits on a
//! connection to a paused peer.
//!
//! Not covered: a coordinator that does not answer within
//! [`ID_CHECK_WAIT`] (not started yet: the worker starts anyway, with a
//! warning); two processes starting with the same id at the same instant;
//! and a worker paused past its lease whose id was taken meanwhile (it was
//! declared lost; when it resumes, the coordinator tells it to drop what
//! it held, but both then answer on the id's keys).

use std::time::{Duration, Instant};

use ffq_transport::zenoh_exchange::{ClusterId, WorkerId};
use zenoh::Session;

use crate::error::{ClusterError, Result};
use crate::protocol::{ask_coordinator, StatusRequest};

/// How long a starting worker waits for the coordinator's answer.
const ID_CHECK_WAIT: Duration = Duration::from_secs(3);

/// Fails with [`ClusterError::DuplicateWorker`] if the coordinator counts a
/// worker of id `id` alive.
pub(super) async fn ensure_id_is_free(
    zenoh: &zenoh::Config,
    cluster: &ClusterId,
    id: &WorkerId,
) -> Result<()> {
    // Nobody connects to it, and it connects to nobody but its endpoints.
    let mut config = zenoh.clone();
    for (key, value) in [
        ("listen/endpoints", "[]"),
        ("scouting/gossip/autoconnect", "[]"),
    ] {
        config
            .insert_json5(key, value)
            .map_err(ClusterError::zenoh)?;
    }
    let session = zenoh::open(config).await.map_err(ClusterError::zenoh)?;
    let checked = ask_until_answered(&session, cluster, id).await;
    let _ = session.close().await;
    checked
}

async fn ask_until_answered(session: &Session, cluster: &ClusterId, id: &WorkerId) -> Result<()> {
    let start = Instant::now();
    loop {
        let asked = ask_coordinator(session, cluster, &StatusRequest, ID_CHECK_WAIT).await;
        match asked {
            Ok(status) => {
                let held = status.workers.iter().any(|w| &w.info.id == id && w.alive);
                return match held {
                    true => Err(ClusterError::DuplicateWorker(id.clone())),
                    false => Ok(()),
                };
            }
            Err(e) if start.elapsed() >= ID_CHECK_WAIT => {
                tracing::warn!(worker = %id, "no coordinator answered; starting without checking that the id is free: {e}");
                return Ok(());
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

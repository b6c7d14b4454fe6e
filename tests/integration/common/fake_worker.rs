//! A fake worker: a zenoh session of its own that declares a worker's
//! liveliness token and answers the coordinator's control requests as a
//! worker would, but runs nothing: assignments are accepted and never
//! reported, as a hung, wedged or hostile worker would do.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ffq::cluster::protocol::{worker_ctl_key, Released, WorkerInfo, WorkerRequest};
use ffq::cluster::{ClusterConfig, ClusterError};
use ffq_transport::zenoh_exchange::keys::worker_key;
use ffq_transport::zenoh_exchange::WorkerId;
use tokio::task::JoinHandle;
use zenoh::liveliness::LivelinessToken;

/// A worker that accepts tasks and never answers; dropping it leaves.
pub struct MuteWorker {
    assigned: Arc<AtomicUsize>,
    answers: JoinHandle<()>,
    _token: LivelinessToken,
    _session: zenoh::Session,
}

impl MuteWorker {
    /// Joins the cluster of `config` as worker `id` with `slots` slots.
    pub async fn start(config: &ClusterConfig, id: &str, slots: u32) -> MuteWorker {
        let session = zenoh::open(config.zenoh().unwrap()).await.unwrap();
        let id = WorkerId::new(id).unwrap();
        let ctl = session
            .declare_queryable(worker_ctl_key(&config.cluster, &id, "*"))
            .await
            .unwrap();
        let assigned = Arc::new(AtomicUsize::new(0));
        let answers = {
            let (assigned, id) = (Arc::clone(&assigned), id.clone());
            tokio::spawn(async move {
                while let Ok(query) = ctl.recv_async().await {
                    match WorkerRequest::receive(query).await {
                        Some(WorkerRequest::Info(_, reply)) => {
                            let info = WorkerInfo {
                                id: id.clone(),
                                slots,
                                operators: vec![],
                                pid: std::process::id(),
                            };
                            reply.send(Ok(info)).await
                        }
                        Some(WorkerRequest::Assign(_, reply)) => {
                            assigned.fetch_add(1, Ordering::SeqCst);
                            reply.send(Ok(())).await
                        }
                        Some(WorkerRequest::Release(_, reply)) => {
                            reply.send(Ok(Released::default())).await
                        }
                        Some(WorkerRequest::State(_, reply)) => {
                            reply
                                .send(Err(ClusterError::Remote("a mute worker".into())))
                                .await
                        }
                        None => {}
                    }
                }
            })
        };
        let token = session
            .liveliness()
            .declare_token(worker_key(&config.cluster, &id))
            .await
            .unwrap();
        MuteWorker {
            assigned,
            answers,
            _token: token,
            _session: session,
        }
    }

    /// Task attempts it accepted.
    pub fn assigned(&self) -> usize {
        self.assigned.load(Ordering::SeqCst)
    }
}

impl Drop for MuteWorker {
    fn drop(&mut self) {
        self.answers.abort();
    }
}

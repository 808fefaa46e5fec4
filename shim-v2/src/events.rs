//! Task events to containerd, forwarded one at a time and awaited.
//!
//! The shim library's `RemotePublisher` only queues an event; a background
//! task forwards it later. A shim that exits right after `Shutdown` then
//! loses what is still queued (the last task's `TaskExit` and `TaskDelete`),
//! and a client waiting for them waits forever. Here `publish` returns once
//! containerd has the event, in the order the calls took the connection, so
//! an event published before a reply reaches containerd before the reply,
//! and [`Publisher::flush`] waits for any still in flight.

use std::time::Duration;

use containerd_shim::event::Event;
use containerd_shim::protos::shim::event::Envelope;
use containerd_shim::protos::shim::events::ForwardRequest;
use containerd_shim::protos::shim_async::{Client, EventsClient};
use containerd_shim::protos::ttrpc::context::with_timeout;
use containerd_shim::util::{convert_to_any, timestamp};

/// How many times an event is offered to containerd before it is dropped
/// (containerd restarting is the usual reason for a failure).
const ATTEMPTS: u32 = 4;
/// The wait before the second attempt; doubled for each further one.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// How long one forward may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Forwards events to containerd's TTRPC address.
pub struct Publisher {
    address: String,
    namespace: String,
    /// The connection, made on first use and again after a failure. The
    /// lock orders the events and is what [`flush`](Self::flush) waits on.
    client: tokio::sync::Mutex<Option<EventsClient>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher of `namespace`'s events to containerd at `address` (a
    /// socket path, or an address with its `unix://` scheme).
    pub fn new(address: &str, namespace: &str) -> Publisher {
        let address = if address.contains("://") {
            address.to_string()
        } else {
            format!("unix://{address}")
        };
        Publisher {
            address,
            namespace: namespace.to_string(),
            client: tokio::sync::Mutex::new(None),
        }
    }

    /// Forwards `event`, retrying a few times over a failed connection;
    /// an event containerd never took is logged and dropped.
    pub async fn publish(&self, event: impl Event) {
        let topic = event.topic();
        let mut envelope = Envelope::new();
        envelope.set_topic(topic.clone());
        envelope.set_namespace(self.namespace.clone());
        let stamped = timestamp().and_then(|t| {
            envelope.set_timestamp(t);
            convert_to_any(Box::new(event))
        });
        match stamped {
            Ok(any) => envelope.set_event(any),
            Err(e) => {
                log::warn!("event {topic}: {e}");
                return;
            }
        }
        let mut req = ForwardRequest::new();
        req.set_envelope(envelope);

        let mut client = self.client.lock().await;
        let mut delay = FIRST_RETRY;
        for attempt in 1..=ATTEMPTS {
            match self.forward(&mut client, &req).await {
                Ok(()) => return,
                Err(e) if attempt == ATTEMPTS => {
                    log::warn!("event {topic} dropped after {ATTEMPTS} attempts: {e}");
                }
                Err(e) => {
                    log::debug!("event {topic}: {e}; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
    }

    /// Waits until every event whose [`publish`](Self::publish) has started
    /// is forwarded or dropped.
    pub async fn flush(&self) {
        drop(self.client.lock().await);
    }

    /// One attempt; the connection is kept only if it worked.
    async fn forward(
        &self,
        client: &mut Option<EventsClient>,
        req: &ForwardRequest,
    ) -> Result<(), String> {
        let c = match client.take() {
            Some(c) => c,
            None => EventsClient::new(
                Client::connect(&self.address)
                    .await
                    .map_err(|e| format!("connect to {}: {e}", self.address))?,
            ),
        };
        let timeout = i64::try_from(FORWARD_TIMEOUT.as_nanos()).unwrap_or(i64::MAX);
        c.forward(with_timeout(timeout), req)
            .await
            .map_err(|e| format!("forward: {e}"))?;
        *client = Some(c);
        Ok(())
    }
}

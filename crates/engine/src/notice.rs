//! What account tasks (and the session tasks under them) tell the engine's supervisor.

use crate::event::EngineEvent;
use crate::ground::{AccountId, CallId, TransferId};

/// What an account reports to the engine's supervisor.
#[derive(Debug)]
pub(crate) enum AccountNotice {
    Event(EngineEvent),
    CallOpened {
        call: CallId,
        account: AccountId,
    },
    CallClosed {
        call: CallId,
    },
    TransferOpened {
        transfer: TransferId,
        account: AccountId,
    },
    TransferClosed {
        transfer: TransferId,
    },
}

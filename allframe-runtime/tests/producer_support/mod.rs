//! Shared by the integration tests that run a producer: its settings and the position report
//! it ingests (`position.rs`, which the `producer` unit tests include too).

use allframe_runtime::__private::{LogFormat, ServiceSettings};
use allframe_runtime::Event;
use allframe_runtime::producer::{Ingest, Invalid};

mod position;

pub use position::{Report, Reported, position_ingest};

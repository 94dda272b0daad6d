//! `espo validate --engine rtl`: the card model with the RTL core (fpga/rtl, Verilator) as
//! its datapath (built with the `rtl` feature).

use std::sync::Arc;

use espo_driver::card::{Card, CardConfig};
use espo_driver::model::{MemLink, ModelDevice, ModelOptions, ModelParams};
use espo_harness::testbed::{CardUnderTest, ModelPort, TestCard, TestbedError};
use espo_rtl::{CycleLog, RtlDatapath};

/// The card model whose per-frame transform and SA table writes go to the RTL core; its
/// timing parameters describe that core ([`ModelParams::rtl_core`]).
#[derive(Debug, Default)]
pub struct RtlCard {
    /// Cycles of every packet the core transformed, over every card opened.
    pub log: CycleLog,
}

impl CardUnderTest for RtlCard {
    fn describe(&self) -> String {
        "card model with the RTL core (Verilator) as its datapath".into()
    }

    fn open(&mut self, config: CardConfig) -> Result<TestCard, TestbedError> {
        let dev = ModelDevice::new(ModelOptions::with_params(ModelParams::rtl_core()));
        let handle = dev.handle();
        let datapath = RtlDatapath::new(self.log.clone());
        handle.with(|m| m.attach_datapath(Box::new(datapath)));
        let (near, far) = MemLink::pair();
        handle.attach_link(Box::new(near));
        let card = Card::open(Arc::new(dev), config)?;
        Ok(TestCard {
            card,
            port: Box::new(ModelPort(far)),
            faults: Some(Box::new(handle.clone())),
            perf: Some(Box::new(handle)),
        })
    }
}

//! vfio-user messages on arbitrary bytes: the header and every payload espo parses give a
//! typed value or a typed error, never a panic; what parses emits back to the same value.
#![no_main]

use espo_driver::vfio_user::proto::{
    DeviceInfo, DmaAccess, DmaMap, DmaUnmap, FaultRecord, Header, IrqInfo, MAX_MESSAGE_BYTES,
    RegionAccess, RegionInfo, SetIrqs, Version,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Header::parse(data, MAX_MESSAGE_BYTES) {
        assert!(h.size >= 16 && h.size <= MAX_MESSAGE_BYTES);
        assert_eq!(Header::parse(&h.emit(), MAX_MESSAGE_BYTES), Ok(h));
    }
    if let Ok(v) = Version::parse(data) {
        assert_eq!(Version::parse(&v.emit()), Ok(v));
    }
    if let Ok(m) = DmaMap::parse(data) {
        assert_eq!(DmaMap::parse(&m.emit()), Ok(m));
    }
    if let Ok(m) = DmaUnmap::parse(data) {
        assert_eq!(DmaUnmap::parse(&m.emit()), Ok(m));
    }
    if let Ok(m) = DeviceInfo::parse(data) {
        assert_eq!(DeviceInfo::parse(&m.emit()), Ok(m));
    }
    if let Ok(m) = RegionInfo::parse(data) {
        assert_eq!(RegionInfo::parse(&m.emit()), Ok(m));
    }
    if let Ok(m) = IrqInfo::parse(data) {
        assert_eq!(IrqInfo::parse(&m.emit()), Ok(m));
    }
    if let Ok(m) = SetIrqs::parse(data) {
        assert_eq!(SetIrqs::parse(&m.emit()).as_ref(), Ok(&m));
    }
    for with_data in [false, true] {
        if let Ok(m) = RegionAccess::parse(data, with_data) {
            assert_eq!(m.data.len(), if with_data { m.count as usize } else { 0 });
            assert_eq!(RegionAccess::parse(&m.emit(), with_data).as_ref(), Ok(&m));
        }
        if let Ok(m) = DmaAccess::parse(data, with_data) {
            assert_eq!(DmaAccess::parse(&m.emit(), with_data).as_ref(), Ok(&m));
        }
    }
    if let Ok(m) = FaultRecord::parse(data) {
        assert_eq!(FaultRecord::parse(&m.emit()), Ok(m));
    }
});

//! IOVA bookkeeping: which I/O virtual addresses are mapped, and where a new mapping fits.
//!
//! The usable IOVA space is a list of windows (by default everything below the x86 MSI window
//! at `0xfee0_0000` from 1 MiB up, and 4 GiB–512 GiB), minus the ranges the kernel reserves
//! for the device's IOMMU group (`/sys/kernel/iommu_groups/N/reserved_regions`: the MSI
//! doorbell, firmware-owned RMRRs), which type1 refuses to map. Mappings never overlap, never
//! leave their window and are aligned to their page size; allocation is first fit.

use std::collections::BTreeMap;
use std::ops::Range;

/// Why an IOVA range could not be reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IovaRefusal {
    /// No window has a free, aligned gap of that size.
    Exhausted,
    /// The requested fixed range overlaps an existing mapping or lies outside every window.
    Overlap,
}

/// The default usable IOVA windows.
pub const DEFAULT_IOVA_WINDOWS: [Range<u64>; 2] =
    [0x10_0000..0xfee0_0000, 0x1_0000_0000..0x80_0000_0000];

/// Tracks the mapped IOVA ranges of one IOMMU address space.
#[derive(Debug, Clone)]
pub struct IovaSpace {
    windows: Vec<Range<u64>>,
    /// start → length of every live mapping.
    used: BTreeMap<u64, u64>,
}

impl IovaSpace {
    /// An empty space over `windows` (empty windows are dropped).
    pub fn new(windows: &[Range<u64>]) -> Self {
        let mut windows: Vec<_> = windows
            .iter()
            .filter(|w| w.start < w.end)
            .cloned()
            .collect();
        windows.sort_by_key(|w| w.start);
        Self {
            windows,
            used: BTreeMap::new(),
        }
    }

    /// Removes `range` from the windows, so nothing is allocated in it from now on.
    pub fn exclude(&mut self, range: Range<u64>) {
        if range.start >= range.end {
            return;
        }
        let mut windows = Vec::with_capacity(self.windows.len() + 1);
        for w in self.windows.drain(..) {
            if range.end <= w.start || w.end <= range.start {
                windows.push(w);
                continue;
            }
            if w.start < range.start {
                windows.push(w.start..range.start);
            }
            if range.end < w.end {
                windows.push(range.end..w.end);
            }
        }
        self.windows = windows;
    }

    /// The usable windows.
    pub fn windows(&self) -> &[Range<u64>] {
        &self.windows
    }

    /// Number of live mappings.
    pub fn mappings(&self) -> usize {
        self.used.len()
    }

    /// Whether `[iova, iova + len)` is currently reserved exactly.
    pub fn contains(&self, iova: u64, len: u64) -> bool {
        self.used.get(&iova) == Some(&len)
    }

    fn is_free(&self, start: u64, len: u64) -> bool {
        let Some(end) = start.checked_add(len) else {
            return false;
        };
        let inside = self
            .windows
            .iter()
            .any(|w| w.start <= start && end <= w.end);
        // The last mapping starting before `end` is the only one that can overlap.
        let clear = match self.used.range(..end).next_back() {
            Some((&s, &l)) => s + l <= start,
            None => true,
        };
        inside && clear && len > 0
    }

    /// Reserves `len` bytes aligned to `align` (a power of two) at the lowest free address.
    pub fn allocate(&mut self, len: u64, align: u64) -> Result<u64, IovaRefusal> {
        if len == 0 || !align.is_power_of_two() {
            return Err(IovaRefusal::Exhausted);
        }
        for window in &self.windows {
            let mut candidate = align_up(window.start, align);
            while let Some(c) = candidate {
                let Some(end) = c.checked_add(len) else { break };
                if end > window.end {
                    break;
                }
                // First mapping that ends after the candidate start.
                let blocker = self
                    .used
                    .range(..end)
                    .next_back()
                    .filter(|&(&s, &l)| s + l > c)
                    .map(|(&s, &l)| s + l);
                match blocker {
                    None => {
                        self.used.insert(c, len);
                        return Ok(c);
                    }
                    Some(next) => candidate = align_up(next, align),
                }
            }
        }
        Err(IovaRefusal::Exhausted)
    }

    /// Reserves exactly `[iova, iova + len)`.
    pub fn reserve(&mut self, iova: u64, len: u64) -> Result<(), IovaRefusal> {
        if !self.is_free(iova, len) {
            return Err(IovaRefusal::Overlap);
        }
        self.used.insert(iova, len);
        Ok(())
    }

    /// Releases the mapping that starts at `iova`; returns its length.
    pub fn release(&mut self, iova: u64) -> Option<u64> {
        self.used.remove(&iova)
    }
}

/// Parses a group's `reserved_regions` file: one `0xSTART 0xEND type` line per region, END
/// inclusive. Lines that do not parse are skipped.
pub fn parse_reserved_regions(text: &str) -> Vec<Range<u64>> {
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let start = hex(fields.next()?)?;
            let end = hex(fields.next()?)?;
            (start <= end).then(|| start..end.saturating_add(1))
        })
        .collect()
}

fn align_up(value: u64, align: u64) -> Option<u64> {
    value.checked_add(align - 1).map(|v| v & !(align - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one_window(window: Range<u64>) -> IovaSpace {
        IovaSpace::new(std::slice::from_ref(&window))
    }

    #[test]
    fn first_fit_reuses_released_gaps() {
        let mut space = one_window(0x1000..0x10000);
        let a = space.allocate(0x2000, 0x1000).unwrap();
        let b = space.allocate(0x1000, 0x1000).unwrap();
        assert_eq!((a, b), (0x1000, 0x3000));
        assert_eq!(space.release(a), Some(0x2000));
        assert_eq!(space.allocate(0x1000, 0x1000), Ok(0x1000));
        assert_eq!(space.allocate(0x1000, 0x1000), Ok(0x2000));
        assert_eq!(space.allocate(0x1000, 0x1000), Ok(0x4000));
    }

    #[test]
    fn alignment_and_exhaustion() {
        let mut space = one_window(0x1000..0x40_0000);
        assert_eq!(space.allocate(0x1000, 0x1000), Ok(0x1000));
        assert_eq!(space.allocate(0x20_0000, 0x20_0000), Ok(0x20_0000));
        assert_eq!(
            space.allocate(0x20_0000, 0x20_0000),
            Err(IovaRefusal::Exhausted)
        );
        assert_eq!(space.allocate(0, 0x1000), Err(IovaRefusal::Exhausted));
        assert_eq!(space.allocate(0x1000, 3), Err(IovaRefusal::Exhausted));
    }

    #[test]
    fn fixed_reservations_refuse_overlap_and_outside() {
        let mut space = one_window(0x1000..0x10000);
        space.reserve(0x4000, 0x2000).unwrap();
        assert_eq!(space.reserve(0x5000, 0x1000), Err(IovaRefusal::Overlap));
        assert_eq!(space.reserve(0x3000, 0x2000), Err(IovaRefusal::Overlap));
        assert_eq!(space.reserve(0x3000, 0x1000), Ok(()));
        assert_eq!(space.reserve(0x6000, 0x1000), Ok(()));
        assert_eq!(space.reserve(0xf000, 0x2000), Err(IovaRefusal::Overlap));
        assert_eq!(space.reserve(u64::MAX, 2), Err(IovaRefusal::Overlap));
        assert!(space.contains(0x4000, 0x2000));
        assert_eq!(space.mappings(), 3);
    }

    #[test]
    fn reserved_regions_are_carved_out() {
        let text = "0x00000000fee00000 0x00000000feefffff msi\n0x0000000000100000 0x00000000001fffff direct\nbogus\n";
        let reserved = parse_reserved_regions(text);
        assert_eq!(
            reserved,
            vec![0xfee0_0000..0xfef0_0000, 0x10_0000..0x20_0000]
        );
        let mut space = one_window(0x10_0000..0x1_0000_0000);
        for r in reserved {
            space.exclude(r);
        }
        assert_eq!(
            space.windows(),
            &[0x20_0000..0xfee0_0000, 0xfef0_0000..0x1_0000_0000]
        );
        assert_eq!(space.allocate(0x1000, 0x1000), Ok(0x20_0000));
        assert_eq!(
            space.reserve(0xfee0_0000, 0x1000),
            Err(IovaRefusal::Overlap)
        );
        // A region covering a whole window removes it.
        space.exclude(0xfef0_0000..0x1_0000_0000);
        assert_eq!(
            space.windows(),
            std::slice::from_ref(&(0x20_0000..0xfee0_0000))
        );
    }

    proptest! {
        #[test]
        fn mappings_never_overlap_and_stay_in_windows(
            ops in proptest::collection::vec((any::<bool>(), 1u64..8, 0usize..16), 1..200)
        ) {
            let windows = [0x1000..0x20000, 0x40000..0x48000];
            let mut space = IovaSpace::new(&windows);
            let mut live: Vec<(u64, u64)> = Vec::new();
            for (alloc, pages, pick) in ops {
                if alloc || live.is_empty() {
                    let len = pages * 0x1000;
                    if let Ok(iova) = space.allocate(len, 0x1000) {
                        prop_assert_eq!(iova % 0x1000, 0);
                        prop_assert!(windows.iter().any(|w| w.start <= iova && iova + len <= w.end));
                        for &(s, l) in &live {
                            prop_assert!(iova + len <= s || s + l <= iova, "overlap");
                        }
                        live.push((iova, len));
                    } else {
                        // Exhaustion must be real: no aligned gap of that size is free.
                        let free = (0..).map(|i| 0x1000 * i).take_while(|&a| a < 0x48000)
                            .any(|a| space.is_free(a, len));
                        prop_assert!(!free);
                    }
                } else {
                    let (s, l) = live.swap_remove(pick % live.len());
                    prop_assert_eq!(space.release(s), Some(l));
                }
            }
            prop_assert_eq!(space.mappings(), live.len());
        }
    }
}

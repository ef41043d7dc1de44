//! The sliding window of one limit: the last sub-windows in a fixed 152 bytes (160 with the
//! limit's policy), and their encoding for the backends that store a limit as one value.
//!
//! Sized for the check's speed: a check reads the head of the record and one or two 8-byte
//! slots, so a limit costs about three cache lines whatever its `max_requests`.

/// How many sub-windows a window is cut into.
pub const SUB_WINDOWS: usize = 16;

/// A window plus the sub-window that straddles its start.
const SLOTS: usize = SUB_WINDOWS + 1;
const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// How a window of some length is cut into sub-windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cut {
    /// The window's length in nanoseconds.
    pub(crate) window: i64,
    /// A sub-window's width: the window over [`SUB_WINDOWS`], rounded up.
    width: i64,
}

impl Cut {
    pub(crate) fn of(window_seconds: u32) -> Self {
        let window = i64::from(window_seconds) * NANOS_PER_SECOND;
        Self {
            window,
            width: (window + SUB_WINDOWS as i64 - 1) / SUB_WINDOWS as i64,
        }
    }

    /// Whether `head` can be a window's head: none yet, or the sub-window of an instant.
    fn holds_head(self, head: i64) -> bool {
        head == i64::MIN || (self.index_of(i64::MIN)..=self.index_of(i64::MAX)).contains(&head)
    }

    /// The sub-window of instant `t`.
    fn index_of(self, t: i64) -> i64 {
        t.div_euclid(self.width)
    }

    /// The instant `offset` nanoseconds into sub-window `index`.
    #[inline]
    fn instant(self, index: i64, offset: i64) -> i64 {
        let start = index.checked_mul(self.width);
        match start.and_then(|start| start.checked_add(offset)) {
            Some(t) => t,
            // Only the first sub-window of all starts before the earliest instant.
            None => (i128::from(index) * i128::from(self.width) + i128::from(offset))
                .clamp(i64::MIN.into(), i64::MAX.into()) as i64,
        }
    }
}

/// One sub-window in 8 bytes: how many admissions it counts (the high 20 bits) and the
/// latest of them in nanoseconds into the sub-window (the low 44: a day's sub-window is
/// 5.4 × 10¹² ns, under 2⁴³); 0 while it counts none.
///
/// A count saturates at [`Slot::MAX_COUNT`], which changes no decision: `max_requests` is
/// at most 10 000, so a sub-window counting more denies every check while it counts and is
/// forgotten whole when it stops. (One policy's sub-window never counts past its
/// `max_requests`; only re-cutting for a new window length can merge several.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Slot(u64);

impl Slot {
    const OFFSET_BITS: u32 = 44;
    const MAX_COUNT: u32 = (1 << (u64::BITS - Self::OFFSET_BITS)) - 1;
    const MAX_OFFSET: i64 = (1 << Self::OFFSET_BITS) - 1;

    fn new(count: u32, offset: i64) -> Self {
        debug_assert!(count <= Self::MAX_COUNT && (0..=Self::MAX_OFFSET).contains(&offset));
        Self(u64::from(count) << Self::OFFSET_BITS | offset as u64)
    }

    fn count(self) -> u32 {
        (self.0 >> Self::OFFSET_BITS) as u32
    }

    fn offset(self) -> i64 {
        (self.0 & Self::MAX_OFFSET as u64) as i64
    }
}

/// The last [`SLOTS`] sub-windows, newest first: `slots[k]` is sub-window `head - k`, so
/// the head is the first slot, in the cache line of the record's other fields. Moving the
/// head shifts the slots up (once per sub-window at most; 136 bytes), which spares every
/// read a remainder.
///
/// **Invariant:** a slot's latest admission lies in its sub-window (an admission goes to the
/// head, at an instant no earlier than the head's start). So the latest admissions of the
/// non-empty slots grow with their sub-windows: the newest one is the latest admission of
/// all, and the slots that still count at an instant (latest admission inside the window) are
/// the newest ones, after those that no longer do. With the running `total` and the bit set of non-empty slots, a
/// check reads only the newest non-empty slot and the oldest ones up to the first that
/// counts: usually two slots, not 17.
#[derive(Debug, Clone, PartialEq, Eq)]
#[repr(C)] // In this order: the head's slot shares a cache line with the fields before it.
pub(crate) struct SlidingWindow {
    head: i64,
    /// The sum of the counts.
    total: u32,
    /// Bit `k` is set when `slots[k]` counts any admission.
    filled: u32,
    slots: [Slot; SLOTS],
}

/// The live sub-windows of a window at one instant.
#[derive(Clone, Copy)]
pub(crate) struct Tally {
    /// Admissions counted.
    pub(crate) counted: u32,
    /// The earliest latest admission among the sub-windows that count, if any counts.
    pub(crate) earliest: Option<i64>,
}

/// What [`SlidingWindow::tally_in_head`] found: the tally, and how far into the head's
/// sub-window the instant judged at lies.
pub(crate) struct InHead {
    into: i64,
    pub(crate) tally: Tally,
}

/// The head's slot.
const HEAD: usize = 0;
/// The oldest sub-window's slot.
const LAST: usize = SLOTS - 1;

impl SlidingWindow {
    pub(crate) fn empty() -> Self {
        Self {
            head: i64::MIN,
            total: 0,
            filled: 0,
            slots: [Slot::default(); SLOTS],
        }
    }

    /// The latest admission of `slots[k]`.
    #[inline]
    fn latest_at(&self, k: usize, cut: Cut) -> i64 {
        cut.instant(self.head - k as i64, self.slots[k].offset())
    }

    /// The instant to judge at: `now`, or the latest admission if the clock went back, so a
    /// clock stepping backwards can never free capacity.
    #[inline]
    pub(crate) fn effective_now(&self, now: i64, cut: Cut) -> i64 {
        if self.filled == 0 {
            return now;
        }
        let newest = self.filled.trailing_zeros() as usize;
        now.max(self.latest_at(newest, cut))
    }

    /// The sub-window `t` lies in: most often the head, which two multiplications confirm,
    /// sparing the division (tens of cycles).
    #[inline]
    fn index_of(&self, t: i64, cut: Cut) -> i64 {
        let head_start = self.head.checked_mul(cut.width);
        let in_head = head_start.is_some_and(|start| {
            start <= t
                && t.checked_sub(cut.width)
                    .is_some_and(|before| before < start)
        });
        if in_head {
            self.head
        } else {
            cut.index_of(t)
        }
    }

    /// Makes sub-window `index` the head, forgetting those that fall out.
    #[inline]
    fn advance_to(&mut self, index: i64) {
        if index > self.head {
            self.shift_to(index);
        }
    }

    /// [`advance_to`](Self::advance_to) a later sub-window: once per sub-window at most, so
    /// kept out of line, away from the checks within the head.
    #[inline(never)]
    fn shift_to(&mut self, index: i64) {
        if self.head == i64::MIN || index - self.head >= SLOTS as i64 {
            *self = Self {
                head: index,
                ..Self::empty()
            };
            return;
        }
        let by = (index - self.head) as usize;
        for gone in &self.slots[SLOTS - by..] {
            self.total -= gone.count();
        }
        self.slots.copy_within(..SLOTS - by, by);
        self.slots[..by].fill(Slot::default());
        self.filled = (self.filled << by) & ((1 << SLOTS) - 1);
        self.head = index;
    }

    /// Moves the head to the sub-window of `t` if that is later, forgetting what falls out.
    #[inline]
    pub(crate) fn advance_to_instant(&mut self, t: i64, cut: Cut) {
        let index = self.index_of(t, cut);
        self.advance_to(index);
    }

    /// Counts `count` admissions at `t` in the sub-window of `t`, which becomes the head if
    /// it is later; or in the head if `t` is before the head's start (the clock went back):
    /// then at the head's start, later than `t`, never earlier. Returns the instant kept.
    #[inline]
    pub(crate) fn admit(&mut self, t: i64, count: u32, cut: Cut) -> i64 {
        let index = self.index_of(t, cut);
        let (index, t) = if index >= self.head {
            (index, t)
        } else {
            (self.head, cut.instant(self.head, 0))
        };
        self.advance_to(index);
        // Two multiplications where a remainder would divide.
        let offset = match index.checked_mul(cut.width) {
            Some(start) => t - start,
            None => t.rem_euclid(cut.width),
        };
        let head = self.slots[HEAD];
        let (before, offset) = if self.filled & 1 << HEAD != 0 {
            (head.count(), head.offset().max(offset))
        } else {
            (0, offset)
        };
        let after = before.saturating_add(count).min(Slot::MAX_COUNT);
        self.slots[HEAD] = Slot::new(after, offset);
        self.total += after - before;
        self.filled |= 1 << HEAD;
        t
    }

    /// [`effective_now`](Self::effective_now), [`advance_to_instant`](Self::advance_to_instant)
    /// and [`tally`](Self::tally) at `now` in a few instructions, for the common case: `now`
    /// in the head's sub-window, no earlier than its latest admission, while the oldest
    /// sub-window still counts. Then `now` is the instant to judge at, the head stays, and
    /// every sub-window counts. `None` otherwise: the general path answers.
    #[inline]
    pub(crate) fn tally_in_head(&self, now: i64, cut: Cut) -> Option<InHead> {
        let start = self.head.checked_mul(cut.width)?;
        let into = now.checked_sub(start)?;
        if !(0..cut.width).contains(&into) || self.slots[HEAD].offset() > into {
            return None;
        }
        if self.filled == 0 {
            let tally = Tally {
                counted: 0,
                earliest: None,
            };
            return Some(InHead { into, tally });
        }
        // The oldest non-empty slot, where the checks of a steady stream find it: the last
        // slot, or the head alone. Both are fixed places, so the CPU reads the slot while
        // `filled` still loads, where an index computed from `filled` would wait for it.
        let oldest = if self.filled & 1 << LAST != 0 {
            LAST
        } else if self.filled == 1 << HEAD {
            HEAD
        } else {
            (u32::BITS - 1 - self.filled.leading_zeros()) as usize
        };
        // Its latest admission, and the window's start, from the head's start: both within
        // a few windows of 0, so the arithmetic cannot overflow.
        let latest = self.slots[oldest].offset() - oldest as i64 * cut.width;
        if latest <= into - cut.window {
            return None;
        }
        let tally = Tally {
            counted: self.total,
            earliest: Some(start + latest),
        };
        Some(InHead { into, tally })
    }

    /// [`admit`](Self::admit)s one admission at the instant [`tally_in_head`](Self::tally_in_head)
    /// judged.
    #[inline]
    pub(crate) fn admit_in_head(&mut self, at: &InHead) {
        let head = self.slots[HEAD];
        debug_assert!(head.count() < Slot::MAX_COUNT && head.offset() <= at.into);
        self.slots[HEAD] = Slot::new(head.count() + 1, at.into);
        self.total += 1;
        self.filled |= 1 << HEAD;
    }

    /// The sub-windows whose latest admission is inside `(t - window, t]`: all but the
    /// oldest ones, which are skipped from the old end.
    #[inline]
    pub(crate) fn tally(&self, t: i64, cut: Cut) -> Tally {
        // `None` when the window reaches past the earliest instant: then it holds them all.
        let since = t.checked_sub(cut.window);
        let mut counted = self.total;
        for k in self.filled_oldest_first() {
            let latest = self.latest_at(k, cut);
            if since.is_none_or(|since| latest > since) {
                return Tally {
                    counted,
                    earliest: Some(latest),
                };
            }
            counted -= self.slots[k].count();
        }
        Tally {
            counted,
            earliest: None,
        }
    }

    /// The latest admission of the sub-window whose leaving the window takes `leaving`
    /// admissions out of it: of the sub-windows that count (the oldest of them has its
    /// latest admission at `earliest`, as a [`Tally`] says), oldest first, the one at which
    /// their counts reach `leaving`. `None` if they count fewer.
    #[cold]
    #[inline(never)]
    pub(crate) fn latest_once_left(&self, earliest: i64, leaving: u32, cut: Cut) -> Option<i64> {
        let mut left = 0;
        self.admissions(cut)
            .skip_while(|&(latest, _)| latest < earliest)
            .find_map(|(latest, count)| {
                left += count;
                (left >= leaving).then_some(latest)
            })
    }

    /// The non-empty slots, oldest first.
    #[inline]
    fn filled_oldest_first(&self) -> impl Iterator<Item = usize> {
        let mut filled = self.filled;
        std::iter::from_fn(move || {
            (filled != 0).then(|| {
                let k = (u32::BITS - 1 - filled.leading_zeros()) as usize;
                filled &= !(1 << k);
                k
            })
        })
    }

    /// The non-empty sub-windows as (latest admission, count), oldest first.
    fn admissions(&self, cut: Cut) -> impl Iterator<Item = (i64, u32)> + '_ {
        (self.filled_oldest_first()).map(move |k| (self.latest_at(k, cut), self.slots[k].count()))
    }

    /// The window of `admissions` (latest instant, count; oldest first) cut by `cut`, each
    /// moved to the sub-window of its latest instant: later, never earlier, so nothing is
    /// under-counted.
    fn rebuilt(admissions: impl IntoIterator<Item = (i64, u32)>, cut: Cut) -> Self {
        let mut rebuilt = Self::empty();
        for (latest, count) in admissions {
            rebuilt.admit(latest, count, cut);
        }
        rebuilt
    }

    /// The window cut anew by `to` (it was cut by `from`): rare, so kept out of the check.
    #[cold]
    #[inline(never)]
    pub(crate) fn recut(&self, from: Cut, to: Cut) -> Self {
        Self::rebuilt(self.admissions(from), to)
    }

    /// Bytes of the stored form: the head (8), then each slot, newest first (8).
    pub(crate) const ENCODED_LEN: usize = 8 + SLOTS * 8;
    /// The form before packed slots: the head (8), then per slot `i % SLOTS` (sub-window
    /// `i`) its count (4) and its latest admission in nanoseconds since the epoch (8).
    const OLD_ENCODED_LEN: usize = 8 + SLOTS * 12;

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head.to_le_bytes());
        for slot in &self.slots {
            out.extend_from_slice(&slot.0.to_le_bytes());
        }
    }

    /// Reads what [`encode`](Self::encode) wrote, or the older form, for a window cut by
    /// `cut`; `None` if the bytes are no such window.
    pub(crate) fn decode(bytes: &[u8], cut: Cut) -> Option<Self> {
        if ![Self::ENCODED_LEN, Self::OLD_ENCODED_LEN].contains(&bytes.len()) {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
        let head = u64_at(0) as i64;
        if !cut.holds_head(head) {
            return None;
        }
        match bytes.len() {
            Self::ENCODED_LEN => {
                let mut window = Self::empty();
                window.head = head;
                for k in 0..SLOTS {
                    let slot = Slot(u64_at(8 + k * 8));
                    if slot.count() == 0 {
                        if slot.offset() != 0 {
                            return None;
                        }
                        continue;
                    }
                    if slot.offset() >= cut.width || head == i64::MIN {
                        return None;
                    }
                    window.slots[k] = slot;
                    window.total = window.total.checked_add(slot.count())?;
                    window.filled |= 1 << k;
                }
                Some(window)
            }
            Self::OLD_ENCODED_LEN => {
                let mut admissions = Vec::with_capacity(SLOTS);
                for age in (0..SLOTS as i64).rev() {
                    let index = head.checked_sub(age)?;
                    let at = 8 + index.rem_euclid(SLOTS as i64) as usize * 12;
                    let count = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
                    let latest = u64_at(at + 4) as i64;
                    if count > 0 {
                        if cut.index_of(latest) != index {
                            return None;
                        }
                        admissions.push((latest, count));
                    }
                }
                admissions
                    .iter()
                    .try_fold(0u32, |total, &(_, count)| total.checked_add(count))?;
                Some(Self::rebuilt(admissions, cut))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
impl SlidingWindow {
    /// What [`effective_now`](Self::effective_now) and [`tally`](Self::tally) tell, computed
    /// the long way, from every slot: (instant judged at, admissions counted, earliest).
    pub(crate) fn scanned(&self, now: i64, cut: Cut) -> (i64, u32, Option<i64>) {
        let admitted = || {
            (0..SLOTS)
                .filter(|&k| self.slots[k].count() > 0)
                .map(|k| (self.latest_at(k, cut), self.slots[k].count()))
        };
        let t = admitted().map(|(latest, _)| latest).fold(now, i64::max);
        let live = || admitted().filter(|&(latest, _)| latest > t - cut.window);
        let counted = live().map(|(_, count)| count).sum();
        (t, counted, live().map(|(latest, _)| latest).min())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_days_sub_window_fits_a_slots_offset_and_counts_saturate() {
        assert!(Cut::of(86_400).width <= Slot::MAX_OFFSET);
        let cut = Cut::of(60);
        let mut window = SlidingWindow::empty();
        window.admit(0, Slot::MAX_COUNT - 1, cut);
        window.admit(5, 10, cut);
        assert_eq!(window.slots[HEAD].count(), Slot::MAX_COUNT);
        assert_eq!(window.slots[HEAD].offset(), 5);
        assert_eq!(window.total, Slot::MAX_COUNT);
    }

    #[test]
    fn the_sub_window_of_an_instant_is_found_with_or_without_dividing() {
        let cut = Cut::of(10);
        let width = cut.width;
        let mut window = SlidingWindow::empty();
        for t in [
            -1,
            0,
            1,
            width - 1,
            width,
            5 * width + 7,
            5 * width - 1,
            i64::MIN,
            i64::MAX,
        ] {
            assert_eq!(window.index_of(t, cut), t.div_euclid(width), "{t}");
            window.head = t.div_euclid(width);
            for delta in [-width, -1, 0, 1, width] {
                if let Some(near) = t.checked_add(delta) {
                    assert_eq!(window.index_of(near, cut), near.div_euclid(width), "{near}");
                }
            }
        }
    }

    /// The window as the encoder before offsets wrote it.
    fn old_bytes(window: &SlidingWindow, cut: Cut) -> Vec<u8> {
        let mut by_slot = [(0u32, 0i64); SLOTS];
        for k in window.filled_oldest_first() {
            let index = window.head - k as i64;
            let slot = index.rem_euclid(SLOTS as i64) as usize;
            by_slot[slot] = (window.slots[k].count(), window.latest_at(k, cut));
        }
        let mut out = window.head.to_le_bytes().to_vec();
        for (count, latest) in by_slot {
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&latest.to_le_bytes());
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn both_stored_forms_decode_to_the_window(
            admissions in proptest::collection::vec((0i64..40_000, 1u32..5), 0..40),
            seconds in 1u32..=86_400,
        ) {
            let cut = Cut::of(seconds);
            let mut window = SlidingWindow::empty();
            let mut ms = 0;
            for (step, count) in admissions {
                ms += step;
                let t = ms * 1_000_000;
                window.advance_to_instant(t, cut);
                for _ in 0..count {
                    window.admit(window.effective_now(t, cut), 1, cut);
                }
            }
            let mut bytes = Vec::new();
            window.encode(&mut bytes);
            proptest::prop_assert_eq!(SlidingWindow::decode(&bytes, cut), Some(window.clone()));
            // The old form decodes to a window that judges the same.
            if window.filled != 0 {
                let old = SlidingWindow::decode(&old_bytes(&window, cut), cut);
                let old = old.expect("the old form decodes");
                let (t, now) = (window.effective_now(0, cut), old.effective_now(0, cut));
                proptest::prop_assert_eq!(t, now);
                let (a, b) = (window.tally(t, cut), old.tally(t, cut));
                proptest::prop_assert_eq!((a.counted, a.earliest), (b.counted, b.earliest));
            }
        }
    }
}

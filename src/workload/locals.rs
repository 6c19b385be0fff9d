//! [`Locals`]: one running journey instance's own values — its variables
//! (a fixed slot table: read by index, never by name while the traffic
//! runs) and its row of each data table.

use super::model::{MAX_DATA_TABLES, MAX_VARS};

/// One journey instance's own values: its variables (by slot) and its
/// row of each table. Reused from instance to instance: its buffers only
/// grow, to at most [`MAX_VARS`] values of `MAX_VALUE_BYTES`. `Debug`
/// shows no value.
#[derive(Clone, Default)]
pub struct Locals {
    values: Vec<Vec<u8>>,
    /// Bit `slot`: the variable holds a value.
    set: u32,
    /// Bit `slot`: its value came as a JSON number.
    number: u32,
    /// Row of each table of the workload (by table index).
    rows: [u32; MAX_DATA_TABLES],
}

impl std::fmt::Debug for Locals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Locals({} set)", self.set.count_ones())
    }
}

impl Locals {
    pub fn new() -> Locals {
        Locals::default()
    }

    /// Empty for a new instance with `vars` variables.
    pub(crate) fn reset(&mut self, vars: usize) {
        let vars = vars.min(MAX_VARS);
        if self.values.len() < vars {
            self.values.resize_with(vars, Vec::new);
        }
        for value in &mut self.values {
            value.clear();
        }
        self.set = 0;
        self.number = 0;
        self.rows = [0; MAX_DATA_TABLES];
    }

    /// Bit per slot that holds a value.
    pub(crate) fn set_slots(&self) -> u32 {
        self.set
    }

    pub(crate) fn get(&self, slot: u8) -> Option<(&[u8], bool)> {
        let bit = 1u32 << slot;
        (self.set & bit != 0).then(|| (self.values[usize::from(slot)].as_slice(), self.number & bit != 0))
    }

    pub(crate) fn set(&mut self, slot: u8, text: &[u8], number: bool) {
        let Some(value) = self.values.get_mut(usize::from(slot)) else { return };
        value.clear();
        value.extend_from_slice(text);
        let bit = 1u32 << slot;
        self.set |= bit;
        if number {
            self.number |= bit;
        } else {
            self.number &= !bit;
        }
    }

    /// Every slot set to `text` (and rows at 0): renders a step's sample.
    pub(crate) fn fill_for_samples(&mut self, text: &[u8], number: bool) {
        self.reset(MAX_VARS);
        for slot in 0..MAX_VARS as u8 {
            self.set(slot, text, number);
        }
    }

    pub(crate) fn set_row(&mut self, table: u8, row: usize) {
        if let Some(slot) = self.rows.get_mut(usize::from(table)) {
            *slot = u32::try_from(row).unwrap_or(0);
        }
    }

    pub(crate) fn row(&self, table: u8) -> usize {
        self.rows.get(usize::from(table)).map_or(0, |r| *r as usize)
    }

    /// Bytes held by its buffers.
    pub fn memory_bytes(&self) -> usize {
        self.values.iter().map(Vec::capacity).sum::<usize>() + self.values.capacity() * std::mem::size_of::<Vec<u8>>()
    }
}

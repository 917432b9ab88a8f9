//! The data half of [`GgufReader`]: after the header, hands out each tensor's
//! bytes whole ([`Event::Tensor`]) or as pieces of the fed chunks
//! ([`Event::TensorPiece`]), skipping the alignment padding between tensors.

use super::{Event, GgufReader, Phase, Stop, TensorData, TensorPiece};

impl GgufReader {
    /// Absolute offset of tensor `next` and its size, or `None` past the last
    /// tensor.
    fn tensor_extent(&self, next: usize) -> Option<(u64, u64)> {
        let header = self
            .header
            .as_ref()
            .expect("the data phase follows the header");
        let info = header.tensors.get(next)?;
        Some((header.data_offset + info.offset, info.n_bytes))
    }

    /// Consumes the padding before `start` (up to all of `input`); `false`
    /// when `input` ran out first.
    fn skip_to(&mut self, start: u64, input: &mut &[u8]) -> bool {
        if self.pos < start {
            let skip = (start - self.pos).min(input.len() as u64);
            *input = &input[skip as usize..];
            self.pos += skip;
        }
        self.pos >= start
    }

    /// Consumes everything after the last tensor (trailing padding).
    fn skip_rest(&mut self, input: &mut &[u8]) {
        self.pos += input.len() as u64;
        *input = &[];
    }

    /// Tensor `next`'s (start, size), with the padding before it consumed first when
    /// `at_start`. `None` when `input` ran out before the tensor, or when there is no such
    /// tensor (then the trailing bytes are consumed).
    fn reach_tensor(
        &mut self,
        next: usize,
        at_start: bool,
        input: &mut &[u8],
    ) -> Option<(u64, u64)> {
        let Some((start, n_bytes)) = self.tensor_extent(next) else {
            self.skip_rest(input);
            return None;
        };
        if at_start && !self.skip_to(start, input) {
            return None;
        }
        Some((start, n_bytes))
    }

    /// Whole mode: hands out tensor `next` once all of it has arrived, without
    /// a copy when it lies inside `input`, else from `pending`. `Ok(false)`
    /// when `input` ran out first.
    pub(super) fn whole_step<E>(
        &mut self,
        next: usize,
        input: &mut &[u8],
        on_event: &mut dyn FnMut(Event<'_>) -> Result<(), E>,
    ) -> Result<bool, Stop<E>> {
        // Skip the padding before this tensor without buffering it.
        let Some((_, n_bytes)) = self.reach_tensor(next, self.pending.is_empty(), input) else {
            return Ok(false);
        };
        if self.pending.is_empty() && (input.len() as u64) >= n_bytes {
            let (bytes, rest) = input.split_at(n_bytes as usize);
            *input = rest;
            self.pos += n_bytes;
            self.emit_whole(next, bytes, on_event)?;
        } else {
            let need = n_bytes - self.pending.len() as u64;
            let part = need.min(input.len() as u64) as usize;
            if self.pending.len() + part > self.pending.capacity() {
                // Grow with the data that has arrived: at most twice what is buffered, so a
                // header that claims a huge tensor and then trickles in bytes costs no more
                // memory than those bytes (the fuzzer's chunked feeding found the doubling on
                // every chunk that this check prevents).
                let want = (self.pending.len() + part).max(self.pending.capacity() * 2);
                self.pending
                    .reserve_exact(want.min(n_bytes as usize) - self.pending.len());
            }
            self.pending.extend_from_slice(&input[..part]);
            *input = &input[part..];
            if (self.pending.len() as u64) < n_bytes {
                return Ok(false);
            }
            self.pos += n_bytes;
            let bytes = std::mem::take(&mut self.pending);
            self.emit_whole(next, &bytes, on_event)?;
        }
        self.phase = Phase::Data {
            next: next + 1,
            done: 0,
        };
        Ok(true)
    }

    fn emit_whole<E>(
        &self,
        index: usize,
        bytes: &[u8],
        on_event: &mut dyn FnMut(Event<'_>) -> Result<(), E>,
    ) -> Result<(), Stop<E>> {
        let header = self
            .header
            .as_ref()
            .expect("the data phase follows the header");
        let ev = TensorData {
            index,
            info: &header.tensors[index],
            bytes,
        };
        on_event(Event::Tensor(ev)).map_err(Stop::Sink)
    }

    /// Piece mode: hands out what `input` holds of tensor `next` (of which
    /// `done` bytes came before) as one piece. `Ok(false)` when `input` ran
    /// out before the tensor's end.
    pub(super) fn piece_step<E>(
        &mut self,
        next: usize,
        done: u64,
        input: &mut &[u8],
        on_event: &mut dyn FnMut(Event<'_>) -> Result<(), E>,
    ) -> Result<bool, Stop<E>> {
        let Some((start, n_bytes)) = self.reach_tensor(next, done == 0, input) else {
            return Ok(false);
        };
        debug_assert_eq!(self.pos, start + done);
        let take = (n_bytes - done).min(input.len() as u64) as usize;
        if take > 0 {
            let (bytes, rest) = input.split_at(take);
            *input = rest;
            self.pos += take as u64;
            let header = self
                .header
                .as_ref()
                .expect("the data phase follows the header");
            let piece = TensorPiece {
                index: next,
                info: &header.tensors[next],
                offset: done,
                bytes,
            };
            on_event(Event::TensorPiece(piece)).map_err(Stop::Sink)?;
        }
        let done = done + take as u64;
        if done < n_bytes {
            self.phase = Phase::Data { next, done };
            return Ok(false);
        }
        self.phase = Phase::Data {
            next: next + 1,
            done: 0,
        };
        Ok(true)
    }
}

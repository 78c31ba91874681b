// tilec emulator: the L2 model (issue #18). Private to the runtime library (emu_runtime.cc).
//
// While a launch runs, every global access of a block is logged as 32-byte granules (emu_state.h, l2_note);
// when a block exits its log is sorted and deduplicated. After the launch the blocks are replayed through a
// set-associative, LRU, write-back cache the size of the arch's L2, as the hardware issues them:
// - in linear block order (blockIdx.x fastest), in waves of `wave_blocks` (SMs x resident blocks per SM);
// - the accesses of one wave are concurrent: a sector the wave touches is looked up once (its blocks' requests
//   merge in flight), in address order, whichever blocks touch it;
// - LRU per set carries across waves; the cache starts empty at the launch and its dirty sectors are written
//   back at the end, so each launch's DRAM bytes are its own (no reuse across kernels is assumed).
// A load of a sector the cache lacks fetches that sector from DRAM (a miss); a store allocates the sector
// without fetching it (write-allocate with byte masks, as NVIDIA's L2 does for partial writes) and marks it
// dirty; a dirty sector costs one sector of DRAM writes when its line is evicted or the launch ends.
// The set of a line: NVIDIA does not publish its L2 address hash; we rotate each aligned run of `sets`
// consecutive lines by a hash of the run's number, so a contiguous tensor spreads over every set evenly (exact
// counts stay easy to reason about) while power-of-two strides do not all alias onto one set.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "emu_state.h"

namespace tl_emu {
// What the Python side asks for (`arm`ed before a launch on the same OS thread) and what it gets back. The
// layout is mirrored by tilec.backend.emu.l2.L2Request (ctypes); all fields are 64-bit.
struct L2Request {
  uint64_t size_bytes, line_bytes, sector_bytes, ways, wave_blocks;   // in
  uint64_t waves, sectors_loaded, sectors_stored;                     // out: waves; sector lookups per wave
  uint64_t hits, misses, writebacks;                                  // out: load hits, fetches, write-backs
};

inline uint64_t l2_mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

class L2Sim {
 public:
  explicit L2Sim(L2Request* r)
      : r_(r), spl_(r->line_bytes / r->sector_bytes), gps_(r->sector_bytes >> kGranuleShift),
        sets_(r->size_bytes / r->line_bytes / r->ways), tag_(sets_ * r->ways, 0), stamp_(sets_ * r->ways, 0),
        valid_(sets_ * r->ways, 0), dirty_(sets_ * r->ways, 0) {}

  // One wave: the sorted, deduplicated granule entries of its blocks, concatenated.
  void wave(std::vector<uint64_t>& entries) {
    r_->waves++;
    // Granules to sectors; a sector's load and store entries end up adjacent after the sort.
    for (uint64_t& e : entries) e = ((e >> 1) / gps_) << 1 | (e & 1);
    std::sort(entries.begin(), entries.end());
    for (size_t i = 0; i < entries.size();) {
      uint64_t sector = entries[i] >> 1;
      bool load = false, store = false;
      for (; i < entries.size() && entries[i] >> 1 == sector; ++i) (entries[i] & 1 ? store : load) = true;
      touch(sector, load, store);
    }
  }

  // The end of the launch: every dirty sector still cached is written back.
  void flush() {
    for (uint32_t d : dirty_) r_->writebacks += uint64_t(__builtin_popcount(d));
  }

 private:
  void touch(uint64_t sector, bool load, bool store) {
    uint64_t line = sector / spl_;
    uint32_t bit = 1u << (sector % spl_);
    size_t base = size_t((line % sets_ + l2_mix(line / sets_)) % sets_) * r_->ways;
    size_t way = base, victim = base;
    bool found = false;
    for (size_t k = base; k < base + r_->ways; ++k) {
      if (tag_[k] == line + 1) {
        way = k;
        found = true;
        break;
      }
      if (stamp_[k] < stamp_[victim]) victim = k;   // empty ways have stamp 0: they go first
    }
    if (!found) {
      way = victim;
      r_->writebacks += uint64_t(__builtin_popcount(dirty_[way]));
      tag_[way] = line + 1;
      valid_[way] = dirty_[way] = 0;
    }
    stamp_[way] = ++clock_;
    if (load) {
      r_->sectors_loaded++;
      if (valid_[way] & bit)
        r_->hits++;
      else
        r_->misses++;
    }
    if (store) {
      r_->sectors_stored++;
      dirty_[way] |= bit;
    }
    valid_[way] |= bit;
  }

  L2Request* r_;
  uint64_t spl_, gps_, sets_, clock_ = 0;
  std::vector<uint64_t> tag_, stamp_;
  std::vector<uint32_t> valid_, dirty_;
};

// Sort and deduplicate a finished block's log into `out`, and empty the log for the next block.
inline void l2_finish_block(SectorLog* g, std::vector<uint64_t>& out) {
  std::sort(g->p, g->p + g->n);
  out.assign(g->p, std::unique(g->p, g->p + g->n));
  g->n = 0;
  std::fill(g->recent, g->recent + kRecent, ~uint64_t(0));
}

// Replay the launch's blocks (per-block sorted granule lists, in linear order) through the cache.
inline void l2_simulate(L2Request* r, std::vector<std::vector<uint64_t>>& blocks) {
  L2Sim sim(r);
  std::vector<uint64_t> wave;
  size_t step = size_t(std::max<uint64_t>(1, r->wave_blocks));
  for (size_t lo = 0; lo < blocks.size(); lo += step) {
    wave.clear();
    for (size_t b = lo; b < std::min(blocks.size(), lo + step); ++b) {
      wave.insert(wave.end(), blocks[b].begin(), blocks[b].end());
      std::vector<uint64_t>().swap(blocks[b]);
    }
    sim.wave(wave);
  }
  sim.flush();
}
}  // namespace tl_emu

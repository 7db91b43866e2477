// Tile binning on the CPU, shared by rasterize and rasterize_soft: items (triangles of one view)
// with an inclusive pixel box are listed in every square tile of the image that the box touches.
//
// Exact counts, no overflow and no atomics: the items are cut into chunks of a size fixed
// independently of the thread count; each chunk counts its entries per tile (parallel over
// chunks), an exclusive prefix sum in (tile, chunk) order lays the bins out, and each chunk then
// fills its own slots (parallel over chunks). Every bin hence lists its items in ascending index
// order, the same for any thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace rastlit {

// Inclusive pixel box of an item.
struct PixelBox {
  int x0, y0, x1, y1;
};

// The tiles of an image: TS x TS pixels, row-major, the last row and column cut by the image.
// TS is a compile-time constant, so the per-item divisions by it stay cheap (shifts).
template <int TS>
struct TileGrid {
  static constexpr int tile_size = TS;
  int height, width, tiles_x, tiles_y;
  int64_t num_tiles;

  TileGrid(int h, int w)
      : height(h), width(w), tiles_x((w + TS - 1) / TS), tiles_y((h + TS - 1) / TS),
        num_tiles(int64_t((w + TS - 1) / TS) * ((h + TS - 1) / TS)) {}

  // Inclusive pixel range of tile `tile`.
  PixelBox tile_pixels(int64_t tile) const {
    const int x0 = int(tile % tiles_x) * TS, y0 = int(tile / tiles_x) * TS;
    return {x0, y0, std::min(x0 + TS, width) - 1, std::min(y0 + TS, height) - 1};
  }
};

// Calls visit(tile, t) for every item t in [begin, end) and every tile its box touches, in
// that order (items ascending, tiles row-major).
template <int TS, typename ItemBox, typename Visit>
void for_each_item_tile(int64_t begin, int64_t end, int tiles_x, ItemBox& item_box, Visit visit) {
  for (int64_t t = begin; t < end; ++t) {
    PixelBox b;
    if (!item_box(t, &b)) continue;
    for (int ty = b.y0 / TS; ty <= b.y1 / TS; ++ty)
      for (int tx = b.x0 / TS; tx <= b.x1 / TS; ++tx) visit(int64_t(ty) * tiles_x + tx, t);
  }
}

// Bins items 0..n-1 into the tiles of `grid`, run by the team of the enclosing OpenMP parallel
// region (orphaned worksharing: every thread of the team must call it; outside a parallel region
// it runs on the calling thread alone). item_box(t, &box) returns false for an item that goes into
// no bin, else true with its inclusive pixel box (clamped to the image) in box.
// Out: bins[tile_begin[tile] .. tile_begin[tile + 1]) are the items of tile `tile` in ascending
// order (int32: n < 2^31). counts is scratch (kept by the caller so its memory is reused).
template <int TS, typename ItemBox>
void bin_items_to_tiles_team(int64_t n, const TileGrid<TS>& grid, ItemBox item_box, std::vector<int64_t>& counts,
                             std::vector<int64_t>& tile_begin, std::vector<int32_t>& bins) {
  const int tiles_x = grid.tiles_x;
  const int64_t num_tiles = grid.num_tiles;
  const int64_t chunk = std::max<int64_t>(4096, (n + 63) / 64);
  const int64_t num_chunks = std::max<int64_t>(1, (n + chunk - 1) / chunk);
#pragma omp single
  counts.assign(size_t(num_chunks * num_tiles), 0);
  // 1. Count pass: entries per (chunk, tile).
#pragma omp for schedule(dynamic, 1)
  for (int64_t ch = 0; ch < num_chunks; ++ch) {
    int64_t* cnt = counts.data() + ch * num_tiles;
    for_each_item_tile<TS>(ch * chunk, std::min(n, (ch + 1) * chunk), tiles_x, item_box,
                           [&](int64_t tile, int64_t) { ++cnt[tile]; });
  }
  // 2. Exclusive prefix sum in (tile, chunk) order, rewritten in place as starting offsets.
#pragma omp single
  {
    tile_begin.resize(size_t(num_tiles + 1));
    int64_t total = 0;
    for (int64_t tile = 0; tile < num_tiles; ++tile) {
      tile_begin[tile] = total;
      for (int64_t ch = 0; ch < num_chunks; ++ch) {
        int64_t& c = counts[ch * num_tiles + tile];
        const int64_t k = c;
        c = total;
        total += k;
      }
    }
    tile_begin[num_tiles] = total;
    bins.resize(size_t(total));
  }
  // 3. Fill pass: each chunk writes its items at its own offsets, in ascending order.
#pragma omp for schedule(dynamic, 1)
  for (int64_t ch = 0; ch < num_chunks; ++ch) {
    int64_t* cursor = counts.data() + ch * num_tiles;
    for_each_item_tile<TS>(ch * chunk, std::min(n, (ch + 1) * chunk), tiles_x, item_box,
                           [&](int64_t tile, int64_t t) { bins[cursor[tile]++] = int32_t(t); });
  }
}

// The same in a parallel region of its own (num_threads threads).
template <int TS, typename ItemBox>
void bin_items_to_tiles(int64_t n, const TileGrid<TS>& grid, int num_threads, ItemBox item_box,
                        std::vector<int64_t>& counts, std::vector<int64_t>& tile_begin, std::vector<int32_t>& bins) {
#pragma omp parallel num_threads(num_threads)
  bin_items_to_tiles_team(n, grid, item_box, counts, tile_begin, bins);
}

// Items given by a compact array of inclusive pixel boxes, an empty box (x0 > x1) for an item that
// goes into no bin: 16 bytes per item, read twice, instead of each item's whole setup.
// Run by the enclosing parallel region's team, as bin_items_to_tiles_team.
template <int TS>
void bin_boxes_to_tiles_team(int64_t n, const TileGrid<TS>& grid, const PixelBox* boxes, std::vector<int64_t>& counts,
                             std::vector<int64_t>& tile_begin, std::vector<int32_t>& bins) {
  bin_items_to_tiles_team(
      n, grid,
      [boxes](int64_t t, PixelBox* box) {
        *box = boxes[t];
        return box->x0 <= box->x1;
      },
      counts, tile_begin, bins);
}

// The common case: per-item setups S with an inclusive pixel box (x0, y0, x1, y1), binned where
// valid[t] is set.
template <int TS, typename S>
void bin_setups_to_tiles(int64_t n, const TileGrid<TS>& grid, int num_threads, const S* setups,
                         const unsigned char* valid, std::vector<int64_t>& counts, std::vector<int64_t>& tile_begin,
                         std::vector<int32_t>& bins) {
  bin_items_to_tiles(
      n, grid, num_threads,
      [setups, valid](int64_t t, PixelBox* box) {
        if (!valid[t]) return false;
        const S& s = setups[t];
        *box = {s.x0, s.y0, s.x1, s.y1};
        return true;
      },
      counts, tile_begin, bins);
}

}  // namespace rastlit

// Frame codec throughput. Baseline in the same run: memcpy of the same payload (the cost floor
// of moving bytes). scripts/bench.sh prints each figure as a ratio to its baseline.
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "rap/fabric/frame.h"

using namespace rap::fabric;

static void BM_Baseline_Memcpy(benchmark::State& st) {
  const auto n = static_cast<std::size_t>(st.range(0));
  std::vector<std::uint8_t> src(n, 0xab), dst(n + kDataOverhead);
  for (auto _ : st) {
    std::memcpy(dst.data() + kDataOverhead, src.data(), n);
    benchmark::DoNotOptimize(dst.data());
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * n));
}

static void BM_EncodeData(benchmark::State& st) {
  const auto n = static_cast<std::size_t>(st.range(0));
  std::vector<std::uint8_t> src(n, 0xab), dst(n + kDataOverhead);
  std::uint64_t seq = 0;
  for (auto _ : st) {
    encode_data_prefix(dst.data(), 5, seq, static_cast<std::uint32_t>(n));
    std::memcpy(dst.data() + kDataOverhead, src.data(), n);
    seq += n;
    benchmark::DoNotOptimize(dst.data());
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * n));
}

static void BM_DecodeData(benchmark::State& st) {
  const auto n = static_cast<std::size_t>(st.range(0));
  std::vector<std::uint8_t> payload(n, 0xcd), buf;
  encode(buf, 5, Data{0, payload});
  for (auto _ : st) {
    auto r = decode_frame(buf, kMaxMaxFrameSize);
    benchmark::DoNotOptimize(r.consumed);
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * n));
}

static void BM_EncodeDecodeSmallControl(benchmark::State& st) {
  std::vector<std::uint8_t> buf;
  buf.reserve(64);
  for (auto _ : st) {
    buf.clear();
    encode(buf, 7, StreamCredit{65536});
    auto r = decode_frame(buf, kMaxMaxFrameSize);
    benchmark::DoNotOptimize(r.consumed);
  }
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
}

BENCHMARK(BM_Baseline_Memcpy)->Arg(1024)->Arg(16384)->Arg(262144);
BENCHMARK(BM_EncodeData)->Arg(1024)->Arg(16384)->Arg(262144);
BENCHMARK(BM_DecodeData)->Arg(1024)->Arg(16384)->Arg(262144);
BENCHMARK(BM_EncodeDecodeSmallControl);
BENCHMARK_MAIN();

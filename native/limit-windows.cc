// Charges and refunds of the limiter's sliding windows in shared memory (src/shm/limit-windows.ts
// holds the layout, the packing and the proof that one CAS per charge is exact across processes;
// this file is the same algorithm on 64-bit words).
//
// Why native: the head of a window is one 64-bit word (epoch and count packed), and JavaScript can
// only compare-and-swap a 64-bit word through BigInt64Array, where every load, every value built for
// the swap and every swap result is a new heap BigInt: about 225 bytes of garbage per charge, five
// charges and refunds per limited request. Here a charge allocates nothing and its ring of up to 60
// buckets is summed with plain 64-bit loads; a call costs about 40 ns of Node-API overhead.
//
// Raw Node-API (not node-addon-api) on purpose: node-addon-api's CallbackInfo allocates on the heap
// for more than six arguments, and these functions take seven.
//
//   attach(buffer, byteOffset, byteLength, out: Float64Array(2)) -> External
//   charge(handle, head, highBits, buckets, epoch, cost, limit)   -> epoch charged, or -1 when refused
//   refund(handle, head, highBits, buckets, epoch, charged, amount) -> 1 when given back, else 0
//
// `head` is the index of the window's head word (in 64-bit words from byteOffset); the ring is the
// `buckets` words after it. `out[0]` and `out[1]` receive the usage seen before charging and the epoch
// it was counted at. Counts travel as doubles: they stay below 2^53 (at most 60 buckets of 2^41).

#include <node_api.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace {

struct Windows {
  int64_t* words;
  size_t count;
  double* out;
  // Keep the buffer and the output array alive as long as the handle is.
  napi_ref buffer;
  napi_ref outArray;
};

// A word's packing: the low 32 + highBits bits hold count + 2^(31 + highBits), the rest the epoch.
struct Packing {
  int countBits;
  double bias;
  double range;
  uint64_t countMask;

  explicit Packing(int highBits = 0)
      : countBits(32 + highBits),
        bias(std::ldexp(1.0, 31 + highBits)),
        range(std::ldexp(1.0, 32 + highBits)),
        countMask((uint64_t{1} << (32 + highBits)) - 1) {}

  double Epoch(uint64_t word) const { return static_cast<double>(word >> countBits); }
  double Count(uint64_t word) const { return static_cast<double>(word & countMask) - bias; }
};

inline uint64_t Load(const int64_t* p) { return static_cast<uint64_t>(__atomic_load_n(p, __ATOMIC_SEQ_CST)); }
// The ring: a relaxed load is enough (see limit-windows.ts: ring words only shrink or are ignored).
inline uint64_t LoadRelaxed(const int64_t* p) { return static_cast<uint64_t>(__atomic_load_n(p, __ATOMIC_RELAXED)); }

inline bool Cas(int64_t* p, uint64_t expected, uint64_t desired) {
  int64_t e = static_cast<int64_t>(expected);
  return __atomic_compare_exchange_n(p, &e, static_cast<int64_t>(desired), false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

napi_value Number(napi_env env, double value) {
  napi_value v;
  napi_create_double(env, value, &v);
  return v;
}

// Packs (epoch, count); false (with a RangeError pending) when the count does not fit.
bool Encode(napi_env env, const Packing& packing, double epoch, double count, uint64_t* word) {
  const double biased = count + packing.bias;
  if (!(biased >= 0 && biased < packing.range)) {
    napi_throw_range_error(env, nullptr, "limiter count outside the window's range");
    return false;
  }
  *word = (static_cast<uint64_t>(epoch) << packing.countBits) | static_cast<uint64_t>(biased);
  return true;
}

// One call of charge or refund: the window it names, checked to lie in the attached region, and the
// three numbers that follow (epoch, then cost and limit, or charged and amount).
struct Call {
  Windows* windows;
  int64_t* head;
  Packing packing;
  int64_t buckets;
  double epoch;
  double a;
  double b;
};

// Reads the seven arguments shared by charge and refund; false with an exception pending when they
// are not a handle and six numbers or name a window outside the region.
bool ReadCall(napi_env env, napi_callback_info info, Call* call) {
  size_t argc = 7;
  napi_value argv[7];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 7) {
    napi_throw_type_error(env, nullptr, "limit windows: expected 7 arguments");
    return false;
  }
  void* data = nullptr;
  if (napi_get_value_external(env, argv[0], &data) != napi_ok || data == nullptr) {
    napi_throw_type_error(env, nullptr, "limit windows: not a handle from attach()");
    return false;
  }
  double values[6];
  for (int i = 0; i < 6; ++i) {
    if (napi_get_value_double(env, argv[i + 1], &values[i]) != napi_ok) {
      napi_throw_type_error(env, nullptr, "limit windows: expected numbers");
      return false;
    }
  }
  Windows* w = static_cast<Windows*>(data);
  // Checked here too, not only by the caller: a wrong index would read or write outside the region.
  if (!(values[0] >= 0 && values[1] >= 0 && values[1] <= 10 && values[2] >= 1 && values[2] <= 4096 &&
        values[0] + values[2] + 1 <= static_cast<double>(w->count) && values[3] >= 0 && values[3] < 4.0e12)) {
    napi_throw_range_error(env, nullptr, "limit windows: head, packing, buckets or epoch out of range");
    return false;
  }
  call->windows = w;
  call->head = w->words + static_cast<int64_t>(values[0]);
  call->packing = Packing(static_cast<int>(values[1]));
  call->buckets = static_cast<int64_t>(values[2]);
  call->epoch = values[3];
  call->a = values[4];
  call->b = values[5];
  return true;
}

napi_value Attach(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  bool isBuffer = false;
  if (argc < 4 || napi_is_arraybuffer(env, argv[0], &isBuffer) != napi_ok || !isBuffer) {
    napi_throw_type_error(env, nullptr, "limit windows: attach(buffer, byteOffset, byteLength, out)");
    return nullptr;
  }
  void* base = nullptr;
  size_t total = 0;
  napi_get_arraybuffer_info(env, argv[0], &base, &total);
  double offset = -1;
  double length = -1;
  napi_get_value_double(env, argv[1], &offset);
  napi_get_value_double(env, argv[2], &length);
  if (!(offset >= 0 && length >= 0 && offset + length <= static_cast<double>(total) &&
        std::fmod(offset, 8) == 0 && std::fmod(length, 8) == 0)) {
    napi_throw_range_error(env, nullptr, "limit windows: region outside the buffer or not 8-byte aligned");
    return nullptr;
  }
  bool isTyped = false;
  napi_typedarray_type type;
  size_t outLength = 0;
  void* outData = nullptr;
  if (napi_is_typedarray(env, argv[3], &isTyped) != napi_ok || !isTyped ||
      napi_get_typedarray_info(env, argv[3], &type, &outLength, &outData, nullptr, nullptr) != napi_ok ||
      type != napi_float64_array || outLength < 2) {
    napi_throw_type_error(env, nullptr, "limit windows: out must be a Float64Array of at least 2");
    return nullptr;
  }
  Windows* w = new Windows{reinterpret_cast<int64_t*>(static_cast<char*>(base) + static_cast<size_t>(offset)),
                           static_cast<size_t>(length) / 8, static_cast<double*>(outData), nullptr, nullptr};
  napi_create_reference(env, argv[0], 1, &w->buffer);
  napi_create_reference(env, argv[3], 1, &w->outArray);
  napi_value handle;
  napi_create_external(
      env, w,
      [](napi_env env, void* data, void*) {
        Windows* w = static_cast<Windows*>(data);
        napi_delete_reference(env, w->buffer);
        napi_delete_reference(env, w->outArray);
        delete w;
      },
      nullptr, &handle);
  return handle;
}

// Sum of ring counts with an epoch in (oldest, below): the window's older buckets, without a copy of
// the head's own bucket (epoch >= below). Empty words have epoch 0, outside every window.
double RingSum(const int64_t* ring, int64_t buckets, const Packing& packing, double oldest, double below) {
  const double after = oldest > 0 ? oldest : 0;
  double sum = 0;
  for (int64_t j = 0; j < buckets; ++j) {
    const uint64_t word = LoadRelaxed(ring + j);
    const double epoch = packing.Epoch(word);
    if (epoch > after && epoch < below) sum += packing.Count(word);
  }
  return sum;
}

napi_value Charge(napi_env env, napi_callback_info info) {
  Call call;
  if (!ReadCall(env, info, &call)) return nullptr;
  Windows* w = call.windows;
  const Packing& packing = call.packing;
  const int64_t buckets = call.buckets;
  const double epoch = call.epoch;
  const double cost = call.a;
  const double limit = call.b;
  int64_t* headWord = call.head;
  for (;;) {
    const uint64_t word = Load(headWord);
    const bool empty = word == 0;
    const double headEpoch = empty ? 0 : packing.Epoch(word);
    const double headCount = empty ? 0 : packing.Count(word);
    const double at = headEpoch > epoch ? headEpoch : epoch;
    const double oldest = at - static_cast<double>(buckets);
    double used = headEpoch > oldest ? headCount : 0;
    if (buckets > 1) used += RingSum(headWord + 1, buckets, packing, oldest, headEpoch);
    w->out[0] = used;
    w->out[1] = at;
    // A charge of 0 still needs room: a request that reserves no tokens is refused once they are spent.
    if (cost >= 0 && used + (cost > 0 ? cost : 1) > limit) return Number(env, -1);
    if (cost == 0) return Number(env, at);

    uint64_t next;
    if (headEpoch == at && !empty) {
      if (!Encode(env, packing, at, headCount + cost, &next)) return nullptr;
      if (Cas(headWord, word, next)) return Number(env, at);
      continue;
    }
    // The head holds an older bucket still inside the window: keep it in the ring before moving on.
    if (buckets > 1 && !empty && headEpoch > oldest && headCount != 0) {
      int64_t* ring = headWord + 1 + static_cast<int64_t>(std::fmod(headEpoch, static_cast<double>(buckets)));
      const uint64_t previous = Load(ring);
      if (previous != word && !Cas(ring, previous, word)) continue;
    }
    if (!Encode(env, packing, at, cost, &next)) return nullptr;
    if (Cas(headWord, word, next)) return Number(env, at);
  }
}

napi_value Refund(napi_env env, napi_callback_info info) {
  Call call;
  if (!ReadCall(env, info, &call)) return nullptr;
  const Packing& packing = call.packing;
  const int64_t buckets = call.buckets;
  const double epoch = call.epoch;
  const double charged = call.a;
  const double amount = call.b;
  if (amount == 0) return Number(env, 0);
  int64_t* headWord = call.head;
  for (;;) {
    const uint64_t word = Load(headWord);
    const double headEpoch = word == 0 ? 0 : packing.Epoch(word);
    uint64_t next;
    if (headEpoch == charged) {
      if (!Encode(env, packing, charged, packing.Count(word) - amount, &next)) return nullptr;
      if (Cas(headWord, word, next)) return Number(env, 1);
      continue;
    }
    // Behind the charge: the window was reset since. Ahead: the bucket is in the ring, or gone.
    if (headEpoch < charged || buckets == 1) return Number(env, 0);
    const double at = headEpoch > epoch ? headEpoch : epoch;
    if (charged <= at - static_cast<double>(buckets)) return Number(env, 0);
    int64_t* ring = headWord + 1 + static_cast<int64_t>(std::fmod(charged, static_cast<double>(buckets)));
    const uint64_t previous = Load(ring);
    if (previous == 0 || packing.Epoch(previous) != charged) return Number(env, 0);
    if (!Encode(env, packing, charged, packing.Count(previous) - amount, &next)) return nullptr;
    if (Cas(ring, previous, next)) return Number(env, 1);
  }
}

}  // namespace

// Called from shm.cc's module initializer: one addon, one binary.
void InitLimitWindows(napi_env env, napi_value exports) {
  const struct {
    const char* name;
    napi_callback fn;
  } functions[] = {{"windowsAttach", Attach}, {"windowsCharge", Charge}, {"windowsRefund", Refund}};
  for (const auto& f : functions) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.fn, nullptr, &fn);
    napi_set_named_property(env, exports, f.name, fn);
  }
}
